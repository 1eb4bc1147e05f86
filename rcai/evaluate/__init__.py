"""Judging a search result the way ../shared/DESIGN.md asks: beside baselines at matched latency
(baselines.py), each architecture trained from scratch on one protocol (jobs.py), the records in a
resumable journal (journal.py; reuse.py imports an earlier run's figures), the whole loops timed
together (timing.py), records paired over training seeds (pairs.py; the statistics: rcai/stats.py) and
the quality metric's own noise (noise.py)."""
from .baselines import MatchedLatency, uniform_arch
from .jobs import JobConfig, run_all, run_job, worker
from .journal import append, finished, records
from .pairs import seed_pairs
from .noise import eval_noise
from .timing import measure_loops

__all__ = ["MatchedLatency", "uniform_arch", "JobConfig", "run_all", "run_job", "worker", "append", "finished", "records", "seed_pairs", "eval_noise", "measure_loops"]
