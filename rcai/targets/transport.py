"""How the remote target reaches its host: one long-lived worker process per session, spoken to in
JSON lines over its stdin/stdout (see worker.py for the protocol).

`ssh` starts the worker with the ssh binary: BatchMode (keys or an agent, never a password prompt),
host keys checked as the user's ssh config says (never disabled here), the destination after `--`
so no host string is read as an ssh option, and the remote command built with shlex quoting. The
host needs only Python with numpy and the target's runtime: the worker (this rcai package, as a
zip) is sent over the session's stdin at start. `local` runs the same worker in a subprocess on
this machine with a temp dir as the "remote" dir (no network).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import RcaiError
from .worker import READY_PREFIX, REPLY_PREFIX  # the protocol's one definition

WORKER = "rcai.targets.worker"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../rcai

# Runs on the host as `python -c BOOT DIR MODULE`: reads "RCAI-ZIP <sha256> <bytes>\n" + the zip of rcai
# from stdin, keeps it in DIR (once per content), imports MODULE (a worker) from it and serves the session.
BOOT = (
    "import hashlib,importlib,os,sys\n"
    "d=os.path.expanduser(sys.argv[1]);os.makedirs(d,exist_ok=True)\n"
    "h=sys.stdin.buffer.readline().split();z=sys.stdin.buffer.read(int(h[2]));s=h[1].decode()\n"
    "assert h[0]==b'RCAI-ZIP' and hashlib.sha256(z).hexdigest()==s,'rcai worker: bad upload'\n"
    "p=os.path.join(d,'rcai-worker-'+s[:16]+'.zip')\n"
    "if not os.path.exists(p):\n"
    " open(p+'.tmp','wb').write(z);os.replace(p+'.tmp',p)\n"
    "sys.path.insert(0,p)\n"
    "sys.exit(importlib.import_module(sys.argv[2]).serve(d))\n"
)


@lru_cache(maxsize=1)
def worker_zip() -> bytes:
    """This rcai package's .py files as a deterministic zip (same code -> same bytes -> same hash)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(PACKAGE_ROOT.rglob("*.py")):
            info = zipfile.ZipInfo(str(Path("rcai") / f.relative_to(PACKAGE_ROOT)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, f.read_bytes())
    return buf.getvalue()


class SessionLost(RcaiError):
    """The worker process or the connection to it went away (the caller may reconnect)."""

    def __init__(self, where: str, what: str, code: int, tail: str):
        super().__init__(f"{where}: connection lost ({what}; exit {code}: {tail})")
        self.code, self.tail = code, tail


class Session:
    """A running worker: request() sends one JSON line and waits for its `RCAI-REPLY` line."""

    def __init__(self, cmd: list[str], where: str, env: dict[str, str] | None = None, cwd: str | None = None,
                 preamble: bytes = b"", ready_timeout_s: float = 120.0):
        self.where = where
        self._err = tempfile.TemporaryFile()  # stderr to a file: a full pipe would stall the worker
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                         env=env, cwd=cwd, start_new_session=True)
        except FileNotFoundError:
            raise RcaiError(f"{where}: {cmd[0]!r} not found on this machine") from None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            if preamble:
                self.proc.stdin.write(preamble)
                self.proc.stdin.flush()
        except OSError:
            pass  # the process died already: the wait below reports why
        hello = self._wait(READY_PREFIX, ready_timeout_s, "start the worker")
        self.ready = json.loads(hello)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr_tail(self) -> str:
        self._err.seek(0)
        lines = [ln.strip() for ln in self._err.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1][-300:] if lines else "no message"

    def _wait(self, prefix: str, timeout_s: float, what: str) -> str:
        while True:
            try:
                raw = self._lines.get(timeout=timeout_s)
            except queue.Empty:
                self.close()
                raise RcaiError(f"{self.where}: no answer within {timeout_s:.0f} s ({what})") from None
            if raw is None:
                code = self.proc.wait()
                raise SessionLost(self.where, what, code, self.stderr_tail())
            line = raw.decode(errors="replace").rstrip("\n")
            at = line.find(prefix)  # a native library may have written to the line before us
            if at >= 0:
                return line[at + len(prefix):]

    def request(self, obj: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # reported by the wait: EOF on stdout follows a dead process
        return json.loads(self._wait(REPLY_PREFIX, timeout_s, str(obj.get("mode"))))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


def _entry(module: str) -> str:
    if not re.fullmatch(r"rcai(\.[a-z_]+)+", module):
        raise RcaiError(f"worker module {module!r}: not an rcai module")
    return module


class Transport(ABC):
    name: ClassVar[str]

    @abstractmethod
    def describe(self) -> str:
        """Where the worker runs, for messages ('pi@10.0.0.5', 'local:/tmp/...')."""

    @abstractmethod
    def open(self, entry: str = WORKER) -> Session:
        """Start a worker serving one session: `entry` is the worker's module (one with serve(DIR))."""


class LocalTransport(Transport):
    """remote_dir: the stand-in remote dir (default: a temp dir removed with this object).
    python: interpreter running the worker (default: this one)."""

    name = "local"

    def __init__(self, remote_dir: str | None = None, python: str | None = None):
        if remote_dir is None:
            remote_dir = tempfile.mkdtemp(prefix="rcai-remote-")
            weakref.finalize(self, shutil.rmtree, remote_dir, True)
        self.dir = Path(remote_dir)
        self.python = python or sys.executable

    def describe(self) -> str:
        return f"local:{self.dir}"

    def open(self, entry: str = WORKER) -> Session:
        env = dict(os.environ)
        root = str(PACKAGE_ROOT.parent)  # so the worker imports this very rcai
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        return Session([self.python, "-m", _entry(entry), "--serve", str(self.dir)], self.describe(), env=env)


@dataclass(frozen=True)
class HostSpec:
    """`[user@]host[:port]`; IPv6 in brackets (`user@[::1]:22`)."""

    host: str
    user: str | None = None
    port: int | None = None

    @property
    def dest(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return self.dest + (f":{self.port}" if self.port else "")


_BAD = re.compile(r"[\x00-\x1f\x7f]")


def parse_host(text: str, user: str | None = None, port: int | None = None) -> HostSpec:
    """Split `user@addr[:port]`. Refused: empty parts, a user or host starting with '-' (it would be an
    ssh option), control characters. Anything else goes to ssh verbatim, as one argument after `--`."""
    raw = str(text or "").strip()
    if not raw:
        raise RcaiError("--host: empty host")
    if _BAD.search(raw):
        raise RcaiError(f"--host {raw!r}: control characters in the host")
    u, at, hostport = raw.rpartition("@")
    u = u if at else None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise RcaiError(f"--host {raw!r}: unclosed '['")
        host, rest = hostport[1:end], hostport[end + 1:]
        p = rest[1:] if rest.startswith(":") else (None if not rest else "bad")
    elif hostport.count(":") == 1:
        host, p = hostport.split(":")
    else:
        host, p = hostport, None
    if p is not None:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise RcaiError(f"--host {raw!r}: bad port {p!r}")
        port = int(p)
    user = u if u is not None else user
    if not host:
        raise RcaiError(f"--host {raw!r}: no host name")
    for part, what in ((host, "host"), (user, "user")):
        if part is not None and (part.startswith("-") or not part):
            raise RcaiError(f"--host {raw!r}: the {what} must not be empty or start with '-'")
    if port is not None and not 0 < int(port) < 65536:
        raise RcaiError(f"--host {raw!r}: bad port {port}")
    return HostSpec(host, user, None if port is None else int(port))


class SshTransport(Transport):
    """host ('pi', 'user@pi', 'user@10.0.0.5:2222'), user, port, key (identity file), ssh_config (an
    ssh_config file for `ssh -F`; default: the user's own, or $RCAI_SSH_CONFIG), remote_dir (created
    if missing; '~' is the remote home), python (interpreter on the host, with numpy and the
    target's runtime)."""

    name = "ssh"

    def __init__(self, host: str | None = None, user: str | None = None, port: int | None = None,
                 key: str | None = None, remote_dir: str | None = None, python: str | None = None,
                 ssh_config: str | None = None, connect_timeout_s: int = 15):
        if not host:
            raise RcaiError("ssh transport: no host given")
        self.spec = parse_host(host, user, port)
        self.dest = self.spec.dest
        self.remote_dir = remote_dir or "~/.cache/rcai-worker"
        self.python = python or "python3"
        ssh_config = ssh_config or os.environ.get("RCAI_SSH_CONFIG")
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(connect_timeout_s)}",
                "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        if ssh_config:
            opts += ["-F", str(Path(ssh_config).expanduser())]
        if key:
            opts += ["-i", str(Path(key).expanduser())]
        if self.spec.port:
            opts += ["-p", str(self.spec.port)]
        self.ssh = ["ssh", *opts]

    def describe(self) -> str:
        return str(self.spec)

    def command(self, entry: str = WORKER) -> list[str]:
        """The ssh argv: options, `--`, the destination, then one remote shell command (quoted)."""
        remote = shlex.join([self.python, "-c", BOOT, self.remote_dir, _entry(entry)])
        return [*self.ssh, "--", self.dest, remote]

    def open(self, entry: str = WORKER) -> Session:
        z = worker_zip()
        preamble = f"RCAI-ZIP {hashlib.sha256(z).hexdigest()} {len(z)}\n".encode() + z
        try:
            return Session(self.command(entry), self.describe(), preamble=preamble)
        except SessionLost as e:
            raise RcaiError(f"{self.describe()}: cannot start the worker over ssh (exit {e.code}: {e.tail})") from None


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
