"""Where the expensive evaluations of a search run: trainings of subnets from scratch, side by side.

One seam, `Executor.map(fn, payloads) -> results in order`, registered by name:
- `local`: a spawn process pool on this machine whose workers die with their parent
  (rcai/procs.py), so a killed search leaves no training running and holding its folder's lock;
- `ray`: tasks on a Ray cluster (`pip install 'rcai[distributed]'`; `ray_address` None starts a
  local one, "auto" or "HOST:PORT" joins one). Run folders are plain files: on a cluster of several
  machines `--out` must be on a filesystem they share.
Results do not depend on the executor: every training is seeded and single-threaded.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

from ..errors import RcaiError
from ..procs import owned_pool
from ..registry import Registry
from ..config import require_counts


class Executor(ABC):
    def __init__(self, jobs: int, address: str | None = None):
        require_counts({"jobs": jobs})
        self.jobs, self.address = jobs, address

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], payloads: Sequence[Any]) -> list[Any]: ...

    def close(self) -> None:
        pass


EXECUTORS: Registry[type] = Registry("executor")


@EXECUTORS.register("local")
class LocalPool(Executor):
    def map(self, fn, payloads):
        if len(payloads) <= 1 or self.jobs == 1:
            return [fn(p) for p in payloads]
        with owned_pool(min(self.jobs, len(payloads))) as pool:
            return pool.map(fn, payloads, chunksize=1)


@EXECUTORS.register("ray")
class RayCluster(Executor):
    def __init__(self, jobs: int, address: str | None = None):
        super().__init__(jobs, address)
        try:
            import ray
        except ImportError:
            raise RcaiError("--executor ray needs Ray: pip install 'rcai[distributed]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False, log_to_driver=False)

    def map(self, fn, payloads):
        task = self._ray.remote(num_cpus=1)(fn)
        return self._ray.get([task.remote(p) for p in payloads])

    def close(self) -> None:
        self._ray.shutdown()


def make_executor(name: str, jobs: int, address: str | None = None) -> Executor:
    return EXECUTORS.get(name)(jobs, address)
