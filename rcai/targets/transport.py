"""How the remote target reaches its host: copy files into a work dir there, run the worker.

`local` runs the worker in a subprocess on this machine with a temp dir as the "remote" dir (what
the tests use: same worker, same files, no network). `ssh` uses the ssh/scp binaries with
BatchMode (keys or an agent, never a password prompt); unverified: no Jetson reachable from the
development machine.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import weakref
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import RcaiError

WORKER = "rcai.targets.worker"


class Transport(ABC):
    name: ClassVar[str]

    @abstractmethod
    def describe(self) -> str:
        """Where the worker runs, for messages ('jetson@10.0.0.5', 'local:/tmp/...')."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether the work dir holds a file `name` (to skip re-uploading a model)."""

    @abstractmethod
    def put(self, local: Path, name: str) -> None:
        """Copy a local file into the work dir as `name`."""

    @abstractmethod
    def get(self, name: str, local: Path) -> None:
        """Copy `name` from the work dir to a local path."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Delete `name` from the work dir if it is there."""

    @abstractmethod
    def run_worker(self, request_name: str, timeout_s: float) -> subprocess.CompletedProcess:
        """Run `python -m rcai.targets.worker REQUEST` in the work dir; stdout/stderr as text."""


def _run(cmd: list[str], timeout_s: float, where: str, **kw: Any) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, **kw)
    except FileNotFoundError:
        raise RcaiError(f"{where}: {cmd[0]!r} not found on this machine") from None
    except subprocess.TimeoutExpired:
        raise RcaiError(f"{where}: no answer within {timeout_s:.0f} s ({shlex.join(cmd[:3])} ...)") from None


class LocalTransport(Transport):
    """workdir: the stand-in remote dir (default: a temp dir removed with this object).
    python: interpreter running the worker (default: this one)."""

    name = "local"

    def __init__(self, remote_dir: str | None = None, python: str | None = None):
        if remote_dir is None:
            remote_dir = tempfile.mkdtemp(prefix="rcai-remote-")
            weakref.finalize(self, shutil.rmtree, remote_dir, True)
        self.dir = Path(remote_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.python = python or sys.executable

    def describe(self) -> str:
        return f"local:{self.dir}"

    def exists(self, name: str) -> bool:
        return (self.dir / name).is_file()

    def put(self, local: Path, name: str) -> None:
        shutil.copyfile(local, self.dir / name)

    def get(self, name: str, local: Path) -> None:
        if not (self.dir / name).is_file():
            raise RcaiError(f"{self.describe()}: worker wrote no {name}")
        shutil.copyfile(self.dir / name, local)

    def remove(self, name: str) -> None:
        (self.dir / name).unlink(missing_ok=True)

    def run_worker(self, request_name: str, timeout_s: float) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # so the worker imports this very rcai
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        cmd = [self.python, "-m", WORKER, request_name]
        return _run(cmd, timeout_s, self.describe(), cwd=self.dir, env=env)


class SshTransport(Transport):
    """host ('jetson' or 'user@jetson'), user, port, key (identity file), remote_dir (created if
    missing), python (interpreter on the host, which must have rcai installed). Unverified."""

    name = "ssh"

    def __init__(self, host: str | None = None, user: str | None = None, port: int | None = None,
                 key: str | None = None, remote_dir: str | None = None, python: str | None = None,
                 connect_timeout_s: int = 15):
        if not host:
            raise RcaiError("ssh transport: no host given")
        self.dest = f"{user}@{host}" if user and "@" not in host else host
        self.remote_dir = remote_dir or "/tmp/rcai-remote"
        self.python = python or "python3"
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(connect_timeout_s)}"]
        if key:
            opts += ["-i", str(Path(key).expanduser())]
        self.ssh = ["ssh", *opts, *(["-p", str(port)] if port else []), self.dest]
        self.scp = ["scp", "-q", *opts, *(["-P", str(port)] if port else [])]
        self._dir_made = False

    def describe(self) -> str:
        return self.dest

    def _remote(self, name: str) -> str:
        return f"{self.remote_dir.rstrip('/')}/{name}"

    def _shell(self, command: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
        if not self._dir_made:
            mk = _run([*self.ssh, f"mkdir -p {shlex.quote(self.remote_dir)}"], 120, self.dest)
            if mk.returncode != 0:
                raise RcaiError(f"{self.dest}: cannot reach the host or create {self.remote_dir} ({mk.stderr.strip()[-300:]})")
            self._dir_made = True
        return _run([*self.ssh, command], timeout_s, self.dest)

    def exists(self, name: str) -> bool:
        return self._shell(f"test -f {shlex.quote(self._remote(name))}").returncode == 0

    def _copy(self, src: str, dst: str) -> None:
        self._shell("true")  # make sure the dir exists first
        r = _run([*self.scp, src, dst], 3600, self.dest)
        if r.returncode != 0:
            raise RcaiError(f"{self.dest}: scp {src} -> {dst} failed ({r.stderr.strip()[-300:]})")

    def put(self, local: Path, name: str) -> None:
        self._copy(str(local), f"{self.dest}:{self._remote(name)}")

    def get(self, name: str, local: Path) -> None:
        self._copy(f"{self.dest}:{self._remote(name)}", str(local))

    def remove(self, name: str) -> None:
        self._shell(f"rm -f {shlex.quote(self._remote(name))}")

    def run_worker(self, request_name: str, timeout_s: float) -> subprocess.CompletedProcess:
        q = shlex.quote
        return self._shell(f"cd {q(self.remote_dir)} && {q(self.python)} -m {WORKER} {q(request_name)}", timeout_s)


TRANSPORTS: dict[str, Callable[..., Transport]] = {"local": LocalTransport, "ssh": SshTransport}


def make_transport(name: str, **settings: Any) -> Transport:
    """A transport by name; settings left as None are dropped (each has its own defaults)."""
    if name not in TRANSPORTS:
        raise RcaiError(f"unknown transport {name!r}; known: {', '.join(sorted(TRANSPORTS))}")
    settings = {k: v for k, v in settings.items() if v is not None}
    try:
        return TRANSPORTS[name](**settings)
    except TypeError as e:
        raise RcaiError(f"{name} transport: {e}") from None
