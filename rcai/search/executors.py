"""Where the expensive evaluations of a search run: trainings of subnets from scratch, side by side.

One seam, `Executor.map(fn, payloads) -> results in order`, registered by name:
- `local`: a spawn process pool on this machine whose workers die with their parent
  (rcai/procs.py), so a killed search leaves no training running and holding its folder's lock;
- `ray`: tasks on a Ray cluster (`pip install 'rcai[distributed]'`; `ray_address` None starts a
  local one, whose processes a watchdog (rcai/procs.py `reaper`) ends if the search is killed; "auto"
  or "HOST:PORT" joins one, checked to answer within seconds before anything is written). Run folders
  are plain files: on a cluster of several machines `--out` must be on a filesystem they share.
Results do not depend on the executor: every training is seeded and single-threaded.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

from ..errors import RcaiError
from ..procs import owned_pool, reaper
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
NO_RAY = "--executor ray needs Ray: pip install 'rcai[distributed]'"


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
            raise RcaiError(NO_RAY) from None
        self._ray, self._reaper = ray, None
        if not ray.is_initialized():
            check_address(address)
            if address is None:  # a local cluster: its processes end with this one, however it ends
                self._reaper = reaper()
            try:
                ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:  # no cluster at "auto", a refused token...
                if self._reaper is not None:
                    self._reaper.fire()  # what it had started
                raise RcaiError(f"ray: cannot {'join ' + address if address else 'start a local cluster'} ({str(e).splitlines()[0][:200]})") from None

    def map(self, fn, payloads):
        task = self._ray.remote(num_cpus=1)(fn)
        return self._ray.get([task.remote(p) for p in payloads])

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
    if name == "ray":
        if importlib.util.find_spec("ray") is None:
            raise RcaiError(NO_RAY)
        check_address(address)


def make_executor(name: str, jobs: int, address: str | None = None) -> Executor:
    return EXECUTORS.get(name)(jobs, address)
