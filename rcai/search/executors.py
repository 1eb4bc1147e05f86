"""Where the expensive evaluations of a search run: trainings of subnets from scratch, side by side.

One seam, `Executor.map(fn, payloads) -> results in order` (and `imap_unordered`, results as they
finish), registered by name. Every training job (rcai/train/job.py) is dispatched through
`Executor.train`, which places each job from the device the job carries (`place`) and gives it the
executor's torch threads; no worker holds a device of its own:
- `local`: a spawn process pool on this machine whose workers die with their parent
  (rcai/procs.py), so a killed search leaves no training running and holding its folder's lock.
  On the CPU each job trains with `threads` torch threads; jobs whose device is `auto` or `cuda`
  are spread over every GPU of the machine (job i on cuda:i mod GPUs), several trainings per GPU
  when there are more jobs than GPUs;
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
    def __init__(self, jobs: int, address: str | None = None, threads: int = 1, gpus_per_job: float | None = None):
        require_counts({"jobs": jobs, "threads": threads})
        self.jobs, self.address, self.threads = jobs, address, threads
        if gpus_per_job is not None and not 0 < gpus_per_job <= 1:
            raise RcaiError(f"gpus_per_job must lie in (0, 1], got {gpus_per_job!r}")
        self.gpus_per_job = gpus_per_job

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], payloads: Sequence[Any], gpu: bool = False) -> list[Any]:
        """fn over payloads, results in order (`gpu`: each task needs a GPU, where the executor asks for one)."""

    def imap_unordered(self, fn: Callable[[Any], Any], payloads: Sequence[Any], gpu: bool = False) -> Iterator[Any]:
        """Results as they finish (default: in order, once all are done)."""
        yield from self.map(fn, payloads, gpu)

    def place(self, device: str, i: int) -> str:
        """Where the i-th of a batch of jobs runs whose training device is `device` (a job's own)."""
        return spread(device, i)

    def train(self, jobs: Sequence[Any], ordered: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
        """Run training jobs (rcai.train.job.TrainJob), each placed by the executor (its device
        spread over the GPUs, its torch threads the executor's): (index into `jobs`, metrics), in
        order or as they finish."""
        from ..train.job import run_indexed

        items = [(i, job.placed(self.place(job.device, i), self.threads)) for i, job in enumerate(jobs)]
        gpu = any(wants_gpu(job.device) for _, job in items)
        yield from (self.map(run_indexed, items, gpu) if ordered else self.imap_unordered(run_indexed, items, gpu))

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


EXECUTORS: Registry[type] = Registry("executor")
NO_RAY = "--executor ray needs Ray: pip install 'rcai[distributed]'"


def spread(device: str, i: int) -> str:
    """The i-th job's device on this machine: `auto` or `cuda` without an index take a GPU each,
    round robin over this machine's GPUs (several jobs per GPU when there are more jobs than GPUs);
    any other device (cpu, cuda:<i>, auto without a GPU) is the job's own, resolved where it runs."""
    from ..train.device import check_train_device, cuda_count

    name = check_train_device(device)
    gpus = cuda_count() if name in ("auto", "cuda") else 0
    return f"cuda:{i % gpus}" if gpus else name


def wants_gpu(device: str) -> bool:
    """A job of this device needs a GPU from a cluster: cuda[:i], or auto where this machine has one
    (a local cluster)."""
    from ..train.device import cuda_count

    return device.startswith("cuda") or (device == "auto" and cuda_count() > 0)


@EXECUTORS.register("local")
class LocalPool(Executor):
    def _pool(self, n: int):
        return owned_pool(n, _worker_threads, self.threads)

    def map(self, fn, payloads, gpu=False):
        if len(payloads) <= 1 or self.jobs == 1:
            return [fn(p) for p in payloads]
        with self._pool(min(self.jobs, len(payloads))) as pool:
            return pool.map(fn, payloads, chunksize=1)

    def imap_unordered(self, fn, payloads, gpu=False):
        if len(payloads) <= 1 or self.jobs == 1:
            yield from (fn(p) for p in payloads)
            return
        with self._pool(min(self.jobs, len(payloads))) as pool:
            yield from pool.imap_unordered(fn, payloads)


def _worker_threads(threads: int) -> None:
    """Pool initializer: a worker's torch runs with `threads` threads (a training job sets its own too)."""
    import torch

    torch.set_num_threads(threads)


def ray_resources(threads: int, cuda: bool, jobs: int, gpus_per_job: float | None = None) -> dict[str, float]:
    """What each Ray task asks for: its CPU threads, and with a CUDA training device a fraction of a
    GPU (`gpus_per_job`, default 1 / jobs: `jobs` trainings share one GPU)."""
    out: dict[str, float] = {"num_cpus": threads}
    if cuda:
        out["num_gpus"] = gpus_per_job or 1.0 / jobs
    return out


def _ray_task(payload):
    """A Ray task: fn on one payload with the task's threads."""
    from ..threads import torch_threads

    fn, item, threads = payload
    with torch_threads(threads):
        return fn(item)


@EXECUTORS.register("ray")
class RayCluster(Executor):
    def __init__(self, jobs: int, address: str | None = None, threads: int = 1, gpus_per_job: float | None = None):
        super().__init__(jobs, address, threads, gpus_per_job)
        try:
            import ray
        except ImportError:
            raise RcaiError(NO_RAY) from None
        self._ray, self._reaper = ray, None
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

    def place(self, device: str, i: int) -> str:
        """On a cluster the GPUs are the workers': a task that asked Ray for one sees it as cuda:0
        (Ray sets CUDA_VISIBLE_DEVICES); the CPU stays the job's own device."""
        return "cuda:0" if wants_gpu(device) else device

    def map(self, fn, payloads, gpu=False):
        task = self._ray.remote(**ray_resources(self.threads, gpu, self.jobs, self.gpus_per_job))(_ray_task)
        return self._ray.get([task.remote((fn, p, self.threads)) for p in payloads])

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


def make_executor(name: str, jobs: int, address: str | None = None, threads: int = 1, gpus_per_job: float | None = None) -> Executor:
    return EXECUTORS.get(name)(jobs, address, threads, gpus_per_job)
