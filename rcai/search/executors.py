"""Where the expensive evaluations of a search run: trainings of subnets from scratch, side by side.

One seam, `Executor.map(fn, payloads) -> results in order` (and `imap_unordered`, results as they
finish), registered by name. Every training job (rcai/train/job.py) is dispatched through it; the
executor gives each of its workers a slot, a training device and a number of torch threads:
- `local`: a spawn process pool on this machine whose workers die with their parent
  (rcai/procs.py), so a killed search leaves no training running and holding its folder's lock.
  On the CPU each worker trains with `threads` torch threads; with a CUDA training device the
  workers are spread over every GPU of the machine (worker i on cuda:i mod GPUs), several
  trainings per GPU when there are more workers than GPUs;
- `ray`: tasks on a Ray cluster (`pip install 'rcai[distributed]'`, imported only here; `ray_address`
  None starts a local one, whose processes a watchdog (rcai/procs.py `reaper`) ends if the search is
  killed; "auto" or "HOST:PORT" joins one, checked to answer within seconds before anything is
  written), each task asking for `threads` CPUs and, with a CUDA training device, a fraction of a GPU
  (`gpus_per_job`, default 1 / jobs). Run folders are plain files: on a cluster of several machines
  `--out` must be on a filesystem they share.
Results do not depend on the executor on the CPU: every training is seeded (rcai/train/device.py
says what repeats across devices).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Sequence

from ..errors import RcaiError
from ..procs import owned_pool, reaper
from ..registry import Registry
from ..config import require_counts


class Executor(ABC):
    def __init__(self, jobs: int, address: str | None = None, train_device: str = "auto", threads: int = 1,
                 gpus_per_job: float | None = None):
        from ..train.device import check_train_device

        require_counts({"jobs": jobs, "threads": threads})
        self.jobs, self.address, self.threads = jobs, address, threads
        self.train_device = check_train_device(train_device)
        if gpus_per_job is not None and not 0 < gpus_per_job <= 1:
            raise RcaiError(f"gpus_per_job must lie in (0, 1], got {gpus_per_job!r}")
        self.gpus_per_job = gpus_per_job

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], payloads: Sequence[Any]) -> list[Any]: ...

    def imap_unordered(self, fn: Callable[[Any], Any], payloads: Sequence[Any]) -> Iterator[Any]:
        """Results as they finish (default: in order, once all are done)."""
        yield from self.map(fn, payloads)

    def train(self, jobs: Sequence[Any], ordered: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
        """Run training jobs (rcai.train.job.TrainJob): (index into `jobs`, metrics), in order or as they finish."""
        from ..train.job import run_indexed

        items = list(enumerate(jobs))
        yield from (self.map(run_indexed, items) if ordered else self.imap_unordered(run_indexed, items))

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


EXECUTORS: Registry[type] = Registry("executor")
NO_RAY = "--executor ray needs Ray: pip install 'rcai[distributed]'"


def device_slots(train_device: str, workers: int) -> list[str | None]:
    """The training device of each local worker: a GPU each, round robin over this machine's GPUs,
    where the device is `auto` or `cuda` without an index (None: the job's own device)."""
    from ..train.device import check_train_device, cuda_count

    name = check_train_device(train_device)
    gpus = cuda_count()
    if name in ("auto", "cuda") and gpus:
        return [f"cuda:{i % gpus}" for i in range(workers)]
    return [None if name == "auto" else name] * workers


@EXECUTORS.register("local")
class LocalPool(Executor):
    def __init__(self, jobs: int, address: str | None = None, train_device: str = "auto", threads: int = 1,
                 gpus_per_job: float | None = None):
        from ..train.device import resolve_train_device

        super().__init__(jobs, address, train_device, threads, gpus_per_job)
        resolve_train_device(train_device)  # cuda without a GPU here: one line, before any worker starts

    def _pool(self, n: int):
        from ..train.job import claim_slot

        return owned_pool(n, claim_slot, device_slots(self.train_device, n), self.threads)

    def _here(self, fn, payloads):
        """In this process (one worker): its slot is the first GPU or the CPU, for the call only."""
        from ..train import job as train_job

        old = dict(train_job._SLOT)
        train_job.set_slot(device_slots(self.train_device, 1)[0], self.threads)
        try:
            for p in payloads:
                yield fn(p)
        finally:
            train_job.set_slot(old["device"], old["threads"])

    def map(self, fn, payloads):
        if len(payloads) <= 1 or self.jobs == 1:
            return list(self._here(fn, payloads))
        with self._pool(min(self.jobs, len(payloads))) as pool:
            return pool.map(fn, payloads, chunksize=1)

    def imap_unordered(self, fn, payloads):
        if len(payloads) <= 1 or self.jobs == 1:
            yield from self._here(fn, payloads)
            return
        with self._pool(min(self.jobs, len(payloads))) as pool:
            yield from pool.imap_unordered(fn, payloads)


def ray_resources(threads: int, cuda: bool, jobs: int, gpus_per_job: float | None = None) -> dict[str, float]:
    """What each Ray task asks for: its CPU threads, and with a CUDA training device a fraction of a
    GPU (`gpus_per_job`, default 1 / jobs: `jobs` trainings share one GPU)."""
    out: dict[str, float] = {"num_cpus": threads}
    if cuda:
        out["num_gpus"] = gpus_per_job or 1.0 / jobs
    return out


def _ray_task(payload):
    """A Ray task: the job runs with the task's threads; Ray's CUDA_VISIBLE_DEVICES makes its GPU cuda:0."""
    fn, item, threads, cuda = payload
    from ..train.job import set_slot

    set_slot("cuda:0" if cuda else None, threads)
    return fn(item)


@EXECUTORS.register("ray")
class RayCluster(Executor):
    def __init__(self, jobs: int, address: str | None = None, train_device: str = "auto", threads: int = 1,
                 gpus_per_job: float | None = None):
        super().__init__(jobs, address, train_device, threads, gpus_per_job)
        try:
            import ray
        except ImportError:
            raise RcaiError(NO_RAY) from None
        self._ray, self._reaper = ray, None
        # On a cluster the GPUs are the workers', not this machine's: cuda asks Ray for them; auto
        # means cuda where this machine has a GPU (a local cluster), else the CPU.
        from ..train.device import cuda_count

        self.cuda = self.train_device.startswith("cuda") or (self.train_device == "auto" and cuda_count() > 0)
        if not ray.is_initialized():
            check_address(address)
            if address is None:  # a local cluster: its processes end with this one, however it ends
                self._reaper = reaper()
            try:
                ray.init(address=address, num_cpus=None if address else jobs * threads, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:  # no cluster at "auto", a refused token...
                if self._reaper is not None:
                    self._reaper.fire()  # what it had started
                raise RcaiError(f"ray: cannot {'join ' + address if address else 'start a local cluster'} ({str(e).splitlines()[0][:200]})") from None

    def map(self, fn, payloads):
        task = self._ray.remote(**ray_resources(self.threads, self.cuda, self.jobs, self.gpus_per_job))(_ray_task)
        return self._ray.get([task.remote((fn, p, self.threads, self.cuda)) for p in payloads])

    def close(self) -> None:
        self._ray.shutdown()
        if self._reaper is not None:
            self._reaper.disarm()


def check_address(address: str | None, timeout_s: float = 5.0) -> None:
    """A Ray address that is "auto", or [ray://]HOST:PORT with something listening there (one line,
    within `timeout_s`, instead of Ray's minutes of retries or its traceback)."""
    import socket

    if address is None or address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [IPv6]
    if not sep or not bare or (":" in bare and bare == host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise RcaiError(f"ray address {address!r}: expected auto or HOST:PORT")
    try:
        socket.create_connection((bare, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RcaiError(f"ray address {address}: no cluster answers there ({getattr(e, 'strerror', None) or e})") from None


def check_executor(name: str, address: str | None) -> None:
    """Refuse an unknown executor or an unreachable Ray address before a search writes anything."""
    import importlib.util

    EXECUTORS.get(name)
    if address and name != "ray":
        raise RcaiError(f"--ray-address {address}: joins a Ray cluster, read only with --executor ray (not {name})")
    if name == "ray":
        if importlib.util.find_spec("ray") is None:
            raise RcaiError(NO_RAY)
        check_address(address)


def make_executor(name: str, jobs: int, address: str | None = None, train_device: str = "auto", threads: int = 1,
                  gpus_per_job: float | None = None) -> Executor:
    return EXECUTORS.get(name)(jobs, address, train_device, threads, gpus_per_job)
