"""Kill loop (issues 11, 24 and 33): SIGKILL real `rcai` processes at random moments, resume each to
completion, and compare with an uninterrupted run of the same command.

Scenarios (micro preset, one thread): `rcai profile` (op table), `rcai profile --archs`,
`rcai train`, the search phase of `rcai search` and its fine-tune phase, `rcai quality collect`
(a pool of 2 training workers), a sample-based `rcai search --strategy evolution`, `rcai search --strategy halving` (a pool of 2 training workers), the same killed
inside its rung transitions (search-halving-transition: the moment a survivor's folder names the next rung's
steps before that rung is evaluated) and on a local Ray cluster it starts (search-halving-ray), and
`rcai predictor train`. For each: rows lost (a complete row seen before a kill and missing at the
end), rows duplicated (an op, a (subnet, round), a log step, a subnet or a proposal twice), stuck (a resume
that fails: the run can never finish), orphans
(processes the killed command started that are still alive 5 s after the kill: only the command
itself is killed, as by `kill -9 PID` or the OOM killer, so its workers must end with it), and
whether the resumed result equals the uninterrupted one (weights bit for bit, log rows, subnets,
records; for measured tables the op set and every non-timing column: timings are re-measurements
and are reported beside the reference's own spread).

    PYTHONPATH=. .venv/bin/python benchmarks/kill_loop.py [--kills 5] [--seed 0] [--only NAME ...]
Writes benchmarks/results/reliability.md and reliability.csv (not with --only).

The test suite covers the same ground with one kill at a fixed moment per scenario, and is what guards
it: tests/test_profile.py::test_sequential_profile_resumes_after_kill_without_losing_rows and
tests/test_fidelity.py (profile, --archs), tests/test_reliability.py::test_archs_resume_after_a_kill_between_onnx_and_json,
tests/test_train.py::test_train_resume_after_kill_equals_uninterrupted and test_reliability.py's
test_train_killed_before_first_checkpoint_logs_each_step_once (train), test_reliability.py::test_search_resume_is_bit_identical_in_each_phase
(search and fine-tune), tests/test_reliability_newer.py::test_killed_collect_leaves_no_worker_and_its_rerun_resumes_identically
(quality collect, orphans), tests/test_strategies.py::test_cli_search_killed_and_resumed_equals_uninterrupted (evolution) and
tests/test_halving.py::test_resumes_after_sigkill_to_the_uninterrupted_result (halving). Only here: repeated kills at random
moments, and `rcai predictor train`. Kept because it produced the committed results/reliability.md.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import git_rev, load1, machine, write

# this checkout's rcai, the one the rcai processes it starts run (ENV's PYTHONPATH): compare() reads their files
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rcai.procs import descendants, group, start_time  # noqa: E402

PY = [sys.executable, "-m", "rcai"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
TRAIN = ["train", "--preset", "micro", "--steps", "300", "--batch-size", "2", "--eval-steps", "2", "--eval-images", "1", "--json"]
SEARCH_STEPS, FT_STEPS = 100, 100
SEARCH = ["search", "--preset", "micro", "--search-steps", str(SEARCH_STEPS), "--warmup-steps", "10", "--finetune-steps", str(FT_STEPS), "--batch-size", "2",
          "--sample-steps", "10", "--eval-steps", "2", "--eval-images", "1", "--json"]
COLLECT = ["quality", "collect", "--preset", "micro", "--frac", "0.6", "--frac", "0.9", "--per-frac", "2", "--steps", "60", "--jobs", "2", "--json"]
EVOLUTION = ["search", "--preset", "micro", "--strategy", "evolution", "--proxy", "naswot", "--evaluations", "60", "--sample-steps", "10", "--json"]
HALVING = ["search", "--preset", "micro", "--strategy", "halving", "--rung", "20", "--rung", "40", "--initial", "4", "--brackets", "1", "--jobs", "2",
           "--batch-size", "2", "--sample-steps", "10", "--json"]
ORPHAN_WAIT_S = 5.0


def start(args: list[str], env: dict[str, str] = ENV) -> subprocess.Popen:
    return subprocess.Popen(PY + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(args: list[str], env: dict[str, str] = ENV) -> tuple[int, str]:
    """Run to completion: (exit code, stderr); a resume that fails is a run stuck for good."""
    p = subprocess.run(PY + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=900)
    return p.returncode, p.stderr


def kill(p: subprocess.Popen) -> tuple[str, int]:
    """SIGKILL the command alone (not its process group: what `kill -9 PID` or the OOM killer does),
    then count its orphans: the processes below it or in its group still alive ORPHAN_WAIT_S after
    the kill. They are then ended with the group, so that they cannot disturb the next run."""
    tree = {pid: start_time(pid) for pid in descendants(p.pid)}
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    tree.update({pid: start_time(pid) for pid in group(p.pid)})  # any started after the snapshot

    def alive() -> list[int]:
        return [pid for pid, t in tree.items() if t is not None and start_time(pid) == t]

    t0 = time.perf_counter()
    while alive() and time.perf_counter() - t0 < ORPHAN_WAIT_S:
        time.sleep(0.05)
    orphans = alive() + [pid for pid in group(p.pid) if pid not in tree]
    if orphans:  # ended here, group and stragglers that left it (a Ray cluster's processes), so they cannot disturb the next run
        for pid in [p.pid, *orphans]:
            try:
                (os.killpg if pid == p.pid else os.kill)(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _, err = p.communicate()
    return err, len(orphans)


def lines(path: Path) -> list[str]:
    """Complete lines only (a torn last line is what a kill may leave)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text[: text.rfind("\n") + 1].splitlines() if "\n" in text else []


def log_rows(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "step_s"} for line in lines(run / "log.jsonl")]


def same_weights(a: Path, b: Path) -> bool:
    import torch

    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checkpoint_state(out: Path) -> str:
    """Where a killed train/search run stood: its last log step and its last checkpoint."""
    import torch

    steps = [json.loads(x)["step"] for x in lines(out / "log.jsonl")]
    ck = "none"
    if (out / "checkpoint.pt").exists():
        st = torch.load(out / "checkpoint.pt", weights_only=True)
        ck = f"{st.get('phase', 'train')} step {st['step']}"
    return f"log step {steps[-1] if steps else None}, checkpoint {ck}"


class Scenario:
    """Run `args` uninterrupted into `ref`, then `kills` times: start on `out`, wait for `ready`, sleep a
    random part of the reference time, SIGKILL; then resume to completion and `compare`."""

    name = ""
    env = ENV

    def __init__(self, work: Path, rng: random.Random):
        self.work, self.rng = work, rng
        self.ref, self.out = work / f"{self.name}-ref", work / f"{self.name}-killed"
        self.events: list[str] = []

    def args(self, out: Path, resume: bool) -> list[str]: ...

    def rows_file(self, out: Path) -> Path: ...

    def row_key(self, line: str) -> str: ...

    def ready(self, out: Path, since_ns: int) -> bool:
        """This process has written a row (it is doing the work, not importing torch or writing a header)."""
        f = self.rows_file(out)
        try:
            return f.stat().st_mtime_ns >= since_ns and len(self.progress_rows(out)) > 0 and self.in_phase(out)
        except FileNotFoundError:
            return False

    def in_phase(self, out: Path) -> bool:
        return True

    def identity(self, line: str) -> str:
        """What must survive a kill unchanged: the whole row (logs: all but the step's wall time)."""
        if self.rows_file(self.ref).name == "log.jsonl":
            return json.dumps({k: v for k, v in json.loads(line).items() if k != "step_s"}, sort_keys=True)
        return line

    def started(self, out: Path) -> bool:
        return (out / "config.json").exists()

    def kill_delay(self, left: float) -> float:
        """When to kill, once ready: a random moment in the first half of the work left."""
        return self.rng.uniform(0.0, 0.5 * left * self.work_s)

    def reference(self) -> None:
        """The uninterrupted run, timed: in all, and from its first write to its last row (the work
        a kill can interrupt)."""
        t0, since = time.perf_counter(), time.time_ns()
        p = start(self.args(self.ref, False), self.env)
        t_ready = t_last = None
        n = 0
        while p.poll() is None:
            now = time.perf_counter()
            if t_ready is None and self.ready(self.ref, since):
                t_ready = now
            if t_ready is not None and len(self.progress_rows(self.ref)) > n:
                n, t_last = len(self.progress_rows(self.ref)), now
            time.sleep(0.02)
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{self.name}: reference run failed:\n{err}")
        self.ref_s = time.perf_counter() - t0
        self.work_s = max(0.5, t_last - t_ready) if t_ready and t_last else self.ref_s
        self.ref_rows = len(self.progress_rows(self.ref))

    def progress_rows(self, out: Path) -> list[str]:
        return lines(self.rows_file(out))[1 if self.header else 0:]

    def dup_keys(self, out: Path) -> list[str]:
        return [self.row_key(r) for r in self.progress_rows(out)]

    def one_round(self, kills_left: int) -> dict:
        """A fresh output, killed up to `kills_left` times (each time after new work was written),
        then resumed to completion and compared with the reference."""
        shutil.rmtree(self.out, ignore_errors=True)
        for f in self.out.parent.glob(self.out.name + ".*"):  # its lock file, left by a kill
            f.unlink()
        seen, kills, torn, orphans = set(), 0, 0, 0
        while kills < kills_left:
            since = time.time_ns()
            p = start(self.args(self.out, self.started(self.out)), self.env)
            t0 = time.perf_counter()
            while not self.ready(self.out, since) and p.poll() is None and time.perf_counter() - t0 < 300:
                time.sleep(0.02)
            left = max(0.05, 1 - len(self.progress_rows(self.out)) / max(self.ref_rows, 1))
            time.sleep(self.kill_delay(left))
            if p.poll() is not None:  # finished before the kill: nothing left to interrupt
                self.events.append("finished before the next kill")
                break
            err, left_behind = kill(p)
            kills += 1
            orphans += left_behind
            torn += err.count("dropped an incomplete last line")
            seen |= {self.identity(r) for r in self.progress_rows(self.out)}
            self.events.append(self.state(self.out))
        code, err = finish(self.args(self.out, self.started(self.out)), self.env)
        torn += err.count("dropped an incomplete last line")
        keys = self.dup_keys(self.out)
        stuck = code != 0
        if stuck:
            self.events.append(f"resume failed ({code}): {err.strip().splitlines()[-1][:200] if err.strip() else ''}")
        return {"kills": kills, "orphans": orphans, "stuck": int(stuck), "rows_seen_before_kills": len(seen),
                "rows_lost": len(seen - {self.identity(r) for r in self.progress_rows(self.out)}),
                "rows_duplicated": len(keys) - len(set(keys)), "torn_lines_repaired": torn,
                **({"identical": False, "what": "the resume failed", "timing": ""} if stuck else self.compare())}

    def run(self, kills: int, max_rounds: int = 4) -> dict:
        """Rounds of `one_round` until `kills` kills (a short run may finish before its kills are spent)."""
        self.reference()
        rounds = []
        while sum(r["kills"] for r in rounds) < kills and len(rounds) < max_rounds:
            self.events.append(f"round {len(rounds) + 1}:")
            rounds.append(self.one_round(kills - sum(r["kills"] for r in rounds)))
        total = {k: sum(r[k] for r in rounds) for k in ("kills", "orphans", "stuck", "rows_seen_before_kills", "rows_lost", "rows_duplicated", "torn_lines_repaired")}
        return {"scenario": self.name, **total, "rounds": len(rounds), "identical": all(r["identical"] for r in rounds),
                "ref_s": round(self.ref_s, 1), "work_s": round(self.work_s, 1), "what": rounds[-1]["what"],
                "timing": "; ".join(r["timing"] for r in rounds if r["timing"])}

    header = False

    def state(self, out: Path) -> str:
        return f"{len(self.progress_rows(out))} rows"


class ProfileOps(Scenario):
    name, header = "profile", True

    def args(self, out, resume):
        return ["profile", "--preset", "micro", "--threads", "1", "--out", str(out / "t.csv"), "--json"]

    def started(self, out):
        return False  # the same command resumes

    def rows_file(self, out):
        return out / "t.csv"

    def row_key(self, line):
        return line.split(",")[0]

    def compare(self):
        from rcai.cost.table import CostTable, COUNT_COLUMNS, SPEC_COLUMNS

        a, b = CostTable.load(self.ref / "t.csv"), CostTable.load(self.out / "t.csv")
        same = a.rows.keys() == b.rows.keys() and all(a.rows[k][c] == b.rows[k][c] for k in a.rows for c in SPEC_COLUMNS + COUNT_COLUMNS)
        ratio = [b.rows[k]["median_ms"] / a.rows[k]["median_ms"] for k in a.rows]
        return {"identical": same, "what": f"{len(a.rows)} op keys and every FLOPs/params/bytes column",
                "timing": f"median op latency killed/ref {statistics.median(ratio):.3f} (range {min(ratio):.2f}-{max(ratio):.2f}): re-measurements"}


class ProfileArchs(Scenario):
    name, header = "profile-archs", True

    def args(self, out, resume):
        return ["profile", "--preset", "micro", "--threads", "1", "--skip-ops", "--archs", "5", "--rounds", "2", "--archs-out", str(out), "--json"]

    def started(self, out):
        return False

    def rows_file(self, out):  # the interleaved method's raw calls, one line per subnet and round (first group)
        return out / "rounds" / "g000.csv"

    def progress_rows(self, out):  # every group's lines, named by their group
        return [f"{f.stem},{x}" for f in sorted((out / "rounds").glob("g*.csv")) for x in lines(f)[1:]]

    def row_key(self, line):
        return ",".join(line.split(",")[:3])  # group, round, subnet

    def compare(self):
        names = sorted(p.name for p in (self.ref / "subnets").iterdir())
        same_subnets = names == sorted(p.name for p in (self.out / "subnets").iterdir()) and all(
            sha(self.ref / "subnets" / n) == sha(self.out / "subnets" / n) for n in names)
        same_onnx = all(sha(self.ref / "models" / f"{n[:-5]}.onnx") == sha(self.out / "models" / f"{n[:-5]}.onnx") for n in names)
        ref, got = (list(csv.DictReader(open(d / "dataset.csv"))) for d in (self.ref, self.out))
        rows_ok = [r["model"] for r in ref] == [r["model"] for r in got] and all(len(r["round_ms"].split("|")) == 2 for r in got)
        ratio = [float(g["latency_ms"]) / float(r["latency_ms"]) for r, g in zip(ref, got)]
        return {"identical": same_subnets and same_onnx and rows_ok, "what": f"{len(names)} subnet.json + ONNX files byte for byte, 2 rounds each",
                "timing": f"median subnet latency killed/ref {statistics.median(ratio):.3f} (range {min(ratio):.2f}-{max(ratio):.2f}): re-measurements"}


class Train(Scenario):
    name = "train"

    def args(self, out, resume):
        return TRAIN + ["--out", str(out)] + (["--resume"] if resume else [])

    def rows_file(self, out):
        return out / "log.jsonl"

    def row_key(self, line):
        return str(json.loads(line)["step"])

    def state(self, out):
        return checkpoint_state(out)

    def compare(self):
        same = same_weights(self.ref / "model.pt", self.out / "model.pt") and log_rows(self.ref) == log_rows(self.out)
        m = [json.loads((d / "metrics.json").read_text())["psnr"] for d in (self.ref, self.out)]
        return {"identical": same and m[0] == m[1], "what": "model.pt bit for bit, every log row, PSNR", "timing": ""}


class Search(Scenario):
    """Kills land in the search phase (`phase="search"`) or in the fine-tune phase."""

    def __init__(self, work, rng, table: Path, phase: str):
        self.name, self.phase, self.table = f"search-{phase}", phase, table
        super().__init__(work, rng)

    def args(self, out, resume):
        return SEARCH + ["--cost-table", str(self.table), "--out", str(out)] + (["--resume"] if resume else [])

    def rows_file(self, out):
        return out / "log.jsonl"

    def row_key(self, line):
        return str(json.loads(line)["step"])

    def _steps(self, out):
        return [json.loads(x)["step"] for x in lines(out / "log.jsonl")]

    def in_phase(self, out):  # a log line of the phase exists (fine-tune logs steps after the search's)
        steps = self._steps(out)
        return bool(steps) if self.phase == "search" else any(s > SEARCH_STEPS for s in steps)

    def progress_rows(self, out):  # progress within the phase
        rows = super().progress_rows(out)
        return [r for r in rows if (json.loads(r)["step"] > SEARCH_STEPS) == (self.phase == "finetune")]

    def dup_keys(self, out):  # the whole log, both phases
        return [str(x) for x in self._steps(out)]


    def state(self, out):
        return checkpoint_state(out)

    def compare(self):
        same = all(same_weights(self.ref / n, self.out / n) for n in ("supernet.pt", "subnet.pt"))
        same &= (self.ref / "subnet.json").read_text() == (self.out / "subnet.json").read_text() and log_rows(self.ref) == log_rows(self.out)
        return {"identical": same, "what": "supernet.pt and subnet.pt bit for bit, subnet.json, every log row", "timing": ""}


class QualityCollect(Scenario):
    """`rcai quality collect` with a pool of 2 workers: kills land while subnets train; a rerun of the
    same command continues (records kept, each killed subnet's run folder resumed)."""

    name = "quality-collect"

    def __init__(self, work, rng, table: Path):
        self.table = table
        super().__init__(work, rng)

    def args(self, out, resume):
        return COLLECT + ["--cost-table", str(self.table), "--out", str(out)]

    def started(self, out):
        return False  # the same command resumes

    def rows_file(self, out):
        return out / "results.jsonl"

    def row_key(self, line):
        return json.loads(line)["id"]

    def ready(self, out, since_ns):  # a worker of this process has logged a training step
        return any(f.stat().st_mtime_ns >= since_ns for f in out.glob("q*/train/log.jsonl"))

    def state(self, out):
        training = [f"{f.parent.parent.name} step {json.loads(lines(f)[-1])['step']}" for f in sorted(out.glob("q*/train/log.jsonl")) if lines(f)]
        return f"{len(self.progress_rows(out))} subnets recorded ({', '.join(training)})"

    def compare(self):
        recs = [sorted(map(json.loads, lines(d / "results.jsonl")), key=lambda r: r["id"]) for d in (self.ref, self.out)]
        return {"identical": recs[0] == recs[1], "what": f"{len(recs[0])} subnet records (choices, quality, PSNR gain, params)", "timing": ""}


class SampleSearch(Scenario):
    """`rcai search --strategy evolution --proxy naswot`: the journal replays after a kill (--resume)."""

    name = "search-evolution"

    def __init__(self, work, rng, table: Path):
        self.table = table
        super().__init__(work, rng)

    def args(self, out, resume):
        return EVOLUTION + ["--cost-table", str(self.table), "--out", str(out)] + (["--resume"] if resume else [])

    def rows_file(self, out):
        return out / "evaluations.jsonl"

    def row_key(self, line):
        return str(json.loads(line)["i"])

    def compare(self):
        rows = [[{k: v for k, v in json.loads(x).items() if k not in ("eval_s", "wall_s")} for x in lines(d / "evaluations.jsonl")] for d in (self.ref, self.out)]
        same = rows[0] == rows[1] and (self.ref / "subnet.json").read_text() == (self.out / "subnet.json").read_text()
        return {"identical": same, "what": f"{len(rows[0])} journal rows (proposal, score), subnet.json", "timing": ""}


class HalvingSearch(SampleSearch):
    """`rcai search --strategy halving` with a pool of 2 training workers: kills land while candidates
    train; --resume replays the journal and each killed training resumes from its own folder."""

    name = "search-halving"

    def args(self, out, resume):
        return HALVING + ["--cost-table", str(self.table), "--out", str(out)] + (["--resume"] if resume else [])

    def ready(self, out, since_ns):  # a worker of this process has logged a training step
        return any(f.stat().st_mtime_ns >= since_ns for f in out.glob("trainings/*/train/log.jsonl"))

    def state(self, out):
        training = [f"{f.parent.parent.name[:6]} step {json.loads(lines(f)[-1])['step']}" for f in sorted(out.glob("trainings/*/train/log.jsonl")) if lines(f)]
        return f"{len(self.progress_rows(out))} journal rows ({', '.join(training)})"


class HalvingTransition(HalvingSearch):
    """Issue 33: every kill lands inside a rung transition, the moment a survivor's training folder
    says the next rung's steps (config.json rewritten as the extension starts) and its log holds no
    evaluation of that rung yet. Before the fix every resume of such a run failed (KeyError: 40)."""

    name = "search-halving-transition"
    last_rung = int(HALVING[HALVING.index("--rung", HALVING.index("--rung") + 1) + 1])

    def in_transition(self, out: Path, since_ns: int) -> list[str]:
        found = []
        for cfg in out.glob("trainings/*/train/config.json"):
            try:
                fresh, steps = cfg.stat().st_mtime_ns >= since_ns, json.loads(cfg.read_text())["steps"]
            except (OSError, ValueError, KeyError):
                continue
            evaluated = {json.loads(x)["step"] for x in lines(cfg.parent / "log.jsonl") if "quality" in x}
            if fresh and steps == self.last_rung and self.last_rung not in evaluated:
                found.append(f"{cfg.parent.parent.name[:6]} (config steps {steps}, log to step {max(evaluated, default=0)})")
        return found

    def ready(self, out, since_ns):
        self._since = since_ns
        return bool(self.in_transition(out, since_ns))

    def kill_delay(self, left):
        return 0.0  # at once: inside the window

    def state(self, out):
        return f"{len(self.progress_rows(out))} journal rows; killed in the transition of {', '.join(self.in_transition(out, self._since)) or '?'}"


class HalvingRay(HalvingSearch):
    """Issue 33: `--executor ray` with the local Ray cluster the search starts: its processes (GCS,
    raylet, agents, the workers training) must end with the killed search, and the resume (a new
    cluster) must give the uninterrupted journal. HOME is the work folder: Ray's ~/.ray auth token
    is not left in the user's."""

    name = "search-halving-ray"

    def __init__(self, work, rng, table: Path):
        super().__init__(work, rng, table)
        self.env = {**ENV, "HOME": str(work), "RAY_USAGE_STATS_ENABLED": "0"}

    def args(self, out, resume):
        return super().args(out, resume) + ["--executor", "ray"]

    def kill_delay(self, left):
        return self.rng.uniform(0.0, min(5.0, 0.5 * left * self.work_s))  # within the trainings, not after them


class PredictorTrain(Scenario):
    """`rcai predictor train`: no partial state to resume (one file, written atomically at the end); a
    kill at a random moment of the run, the same command again, the same predictor."""

    name = "predictor-train"

    def __init__(self, work, rng, data: Path):
        self.data = data
        super().__init__(work, rng)

    def args(self, out, resume):
        return ["predictor", "train", "--latency-data", str(self.data), "--out", str(out / "p.pt"), "--seed", "0", "--epochs", "600", "--json"]

    def started(self, out):
        return False

    def rows_file(self, out):
        return out / "p.pt"

    def progress_rows(self, out):
        return []

    def dup_keys(self, out):
        return []

    def ready(self, out, since_ns):
        self._since = since_ns
        return True

    def kill_delay(self, left):
        return self.rng.uniform(0.2, 0.8) * self.ref_s  # imports, graph encoding or training

    def state(self, out):
        temps = list(out.glob(".p.pt.*"))
        p = out / "p.pt"
        done = "no p.pt" if not p.exists() else "p.pt of an earlier run" if p.stat().st_mtime_ns < self._since else "p.pt written by the killed run"
        return done + (f", {len(temps)} temp files" if temps else "")

    def compare(self):
        import torch

        a, b = (torch.load(d / "p.pt", weights_only=True) for d in (self.ref, self.out))
        meta = [{k: v for k, v in json.loads(x["meta_json"]).items() if k != "created"} for x in (a, b)]
        same = a["state_dict"].keys() == b["state_dict"].keys() and all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
        same &= meta[0] == meta[1] and not list(self.out.glob(".p.pt.*"))
        return {"identical": same, "what": "predictor weights bit for bit, its metadata but the date, no temp file left", "timing": ""}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=5, help="kill attempts per scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--only", nargs="*", default=None, help="run these scenarios only (their inputs' references too); writes no results "
                    "unless --results names them")
    ap.add_argument("--results", default=None, help="results/NAME.md and NAME.csv (default reliability; with --only: none)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    who = machine()
    work = Path(tempfile.mkdtemp(prefix="rcai-kill-loop-"))
    t0 = time.perf_counter()
    results = []
    try:
        table = work / "profile-ref" / "t.csv"  # the search and collect scenarios use the reference table
        data = work / "profile-archs-ref" / "dataset.csv"  # the predictor's training data
        scenarios = [ProfileOps(work, rng), ProfileArchs(work, rng), Train(work, rng), Search(work, rng, table, "search"),
                     Search(work, rng, table, "finetune"), QualityCollect(work, rng, table), SampleSearch(work, rng, table),
                     HalvingSearch(work, rng, table), HalvingTransition(work, rng, table), HalvingRay(work, rng, table), PredictorTrain(work, rng, data)]
        for sc in scenarios:
            if args.only is not None and sc.name not in args.only:
                if sc.name in ("profile", "profile-archs"):
                    sc.reference()  # an input of the others
                continue
            results.append(sc.run(args.kills))
            print(json.dumps(results[-1]), flush=True)
            results[-1]["events"] = "; ".join(sc.events)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t0
    load_end = load1()
    if args.only is not None and args.results is None:
        return
    name = args.results or "reliability"
    cols = ["scenario", "kills", "orphans", "stuck", "rounds", "rows_seen_before_kills", "rows_lost", "rows_duplicated", "torn_lines_repaired", "identical", "ref_s", "work_s"]
    with open(Path(__file__).resolve().parent / "results" / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols + ["what", "timing", "events"])
        w.writeheader()
        w.writerows(results)
    kills = sum(r["kills"] for r in results)
    md = [
        "# Kill loop: SIGKILL at random moments, resume, compare (issues 11, 24 and 33)",
        "",
        f"`benchmarks/kill_loop.py --kills {args.kills} --seed {args.seed}{' --only ' + ' '.join(args.only) if args.only else ''}"
        f"{' --results ' + args.results if args.results else ''}` at {git_rev()}; {who}, load avg {load_end:.2f} at the end; {total / 60:.1f} min in all. Micro preset, one thread per process. Real `rcai` processes killed "
        "with SIGKILL (the command alone, as by `kill -9 PID` or the OOM killer: its workers are not signalled) once each has written "
        "new work (a table row, a measurement row, a log line; for the fine-tune scenario a fine-tune log line; for quality collect a "
        "training log line of one of its pool workers; for predictor train, which writes only its result, at a random moment of 20-80% "
        "of the uninterrupted run's time), at a uniformly random moment of the first half of the work the uninterrupted run still had left; "
        "then the same command (`--resume` for train/search) again, and so on; the last run goes to completion and is compared with the "
        "uninterrupted reference. A scenario whose run finishes before its kills are spent starts a new round from scratch. "
        f"Orphans: processes the killed command had started (its process tree and process group) still alive {ORPHAN_WAIT_S:g} s after the kill. "
        "search-halving-transition kills at once when a training folder of the run names the last rung's steps and its log holds no "
        "evaluation of that rung yet (inside the rung transition); search-halving-ray runs the trainings on the local Ray cluster the "
        "search starts (its GCS, raylet, agents and workers count as orphans if alive) and kills within 5 s of a training log line. "
        "Stuck: a resume that fails (the run can never finish).",
        "",
        f"**{kills} kills**: "
        f"rows lost {sum(r['rows_lost'] for r in results)}, rows duplicated {sum(r['rows_duplicated'] for r in results)}, "
        f"orphan processes {sum(r['orphans'] for r in results)}, runs stuck (a resume that fails) {sum(r['stuck'] for r in results)}, "
        f"resumed = uninterrupted in {sum(bool(r['identical']) for r in results)} of {len(results)} scenarios.",
        "",
        "| scenario | kills | orphans | stuck | rounds | complete rows seen at kills | rows lost | rows duplicated | torn lines repaired | resumed = uninterrupted | compared | ref run s (work s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        md.append(f"| {r['scenario']} | {r['kills']} | {r['orphans']} | {r['stuck']} | {r['rounds']} | {r['rows_seen_before_kills']} | {r['rows_lost']} | {r['rows_duplicated']} | "
                  f"{r['torn_lines_repaired']} | {'yes' if r['identical'] else '**no**'} | {r['what']} | {r['ref_s']} ({r['work_s']}) |")
    md += ["", "Rows: table rows (op keys), `rounds/gNNN.csv` rows (subnet or reference kernel, round), `log.jsonl` steps, `results.jsonl` subnets, "
           "`evaluations.jsonl` proposals (predictor train has none: its result is one file). A row is lost when it was "
           "complete on disk after a kill and is missing at the end; duplicated when its key appears twice in the final file.",
           "", "Measured tables cannot be bit-identical to another run (they are new measurements); beside them, the killed run's "
           "latencies relative to the reference run:", ""]
    md += [f"- {r['scenario']}: {r['timing']}" for r in results if r["timing"]]
    md += ["", "What each kill interrupted:", ""] + [f"- {r['scenario']}: {r['events']}" for r in results]
    path = write(f"{name}.md", "\n".join(md) + "\n")
    print(path)


if __name__ == "__main__":
    main()
