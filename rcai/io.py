"""Atomic file writes: a run killed at any point leaves either the old file or the new one.
Appends repair a line torn by a kill before adding theirs. OS errors on these paths (disk full,
read-only folder) are one-line RcaiErrors naming the path."""
from __future__ import annotations

import contextlib
import io as _io
import json
import math
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def os_errors(path: str | os.PathLike, doing: str = "cannot write"):
    """OSError (ENOSPC, EROFS, EACCES...) inside the block -> one-line RcaiError naming `path`."""
    from .errors import RcaiError

    try:
        yield
    except OSError as e:
        raise RcaiError(f"{path}: {doing} ({e.strerror or e})") from None


def refuse_special(path: Path) -> None:
    """Writes replace or extend regular files only: never a device node, folder or fifo given as --out."""
    from .errors import RcaiError

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise RcaiError(f"{path}: cannot write ({e.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a fifo" if stat.S_ISFIFO(mode) else "not a regular file"
        raise RcaiError(f"{path}: exists and is {kind}; refusing to replace it (give a file path)")


def _atomic(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    path = Path(path)
    refuse_special(path)
    tmp = None
    with os_errors(path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
            write(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return _atomic(path, write)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return _atomic(path, write)


def _finite(obj: Any, where: str, bad: list[str]) -> Any:
    """`obj` with every NaN/infinite float replaced by None (its field recorded in `bad`)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        bad.append(where or "value")
        return None
    if isinstance(obj, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), bad) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, f"{where}[{i}]", bad) for i, v in enumerate(obj)]
    return obj


def json_text(path: str | os.PathLike, obj: Any) -> str:
    """Strict JSON: NaN and infinity are not JSON (other readers reject `NaN`/`Infinity`). A
    non-finite number is written as null and named in a warning; its source should not make one."""
    bad: list[str] = []
    obj = _finite(obj, "", bad)
    if bad:
        print(f"warning: {path}: {', '.join(bad[:5])} not a finite number, written as null", file=sys.stderr)
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """`obj` as strict JSON (json_text), written atomically."""
    return atomic_write_text(path, json_text(path, obj))


def atomic_write_pair(first: tuple[Path, bytes], last: tuple[Path, bytes]) -> None:
    """Two files that belong together (a model and its sidecar): `last` only ever exists beside its
    own `first`. Both are written to temp files first (a full disk leaves the old files as they
    were), then the old `last` is removed, `first` renamed in, then `last`: a kill in between leaves
    `first` alone, never a new `last` beside an old `first` or a `last` without one."""
    tmps: list[str] = []
    try:
        for path, data in (first, last):
            refuse_special(path)
            with os_errors(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                tmps.append(tmp)
                with os.fdopen(fd, "wb") as f:
                    os.fchmod(f.fileno(), 0o666 & ~_UMASK)
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
        with os_errors(last[0]):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(last[0])
            os.replace(tmps[0], first[0])
            os.replace(tmps[1], last[0])
    finally:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save into memory first, so a full disk is an OSError (not torch's RuntimeError)."""
    import torch

    buf = _io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_csv(path: str | os.PathLike, rows: list[dict[str, Any]], fieldnames: list[str] | None = None) -> Path:
    """Rows of dicts as CSV (columns: `fieldnames`, else the first row's keys), written atomically."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames or list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def load_torch(path: str | os.PathLike, what: str = "torch file") -> Any:
    """torch.load with weights_only=True (no arbitrary pickle); a missing or unreadable file is a
    one-line RcaiError naming it."""
    import torch

    from .errors import RcaiError

    path = Path(path)
    if not path.is_file():
        raise RcaiError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():  # torch's warnings about a pickle it then refuses: the one line below says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with code (UnpicklingError), a truncated file...
        raise RcaiError(f"{path}: not a readable {what} ({type(e).__name__})") from None


def repair_torn_line(path: Path) -> int:
    """Drop an incomplete last line (cut by a kill) so the next append starts on a line of its own;
    say so on stderr. Returns the number of bytes dropped."""
    with os_errors(path), open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        tail = min(size, 1 << 16)
        while True:  # find the last newline (lines are short; read backwards in blocks if not)
            f.seek(size - tail)
            block = f.read(tail)
            nl = block.rfind(b"\n")
            if nl >= 0 or tail == size:
                break
            tail = min(size, tail * 2)
        keep = size - tail + nl + 1 if nl >= 0 else 0
        f.seek(keep)
        dropped = f.read(200).decode("utf-8", "replace")
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    print(f"warning: {path}: dropped an incomplete last line ({size - keep} bytes, cut by a kill?): {dropped!r}", file=sys.stderr)
    return size - keep


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one full line and fsync it: a kill can lose at most the line being written,
    never a line already returned from here. A torn last line left by an earlier kill is dropped
    first (repair_torn_line), so the new line is never glued onto it."""
    path = Path(path)
    refuse_special(path)
    with os_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            repair_torn_line(path)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, stop_at_bad: bool = False) -> list[Any]:
    """The records of a JSON-lines file ([] if it does not exist). An unparsable line (cut by a kill)
    is skipped, or with `stop_at_bad` ends the read (a journal replays only up to it)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if stop_at_bad:
                break
    return out


def read_json(path: str | os.PathLike, expect: type | None = None) -> Any:
    """JSON from `path`; with `expect` (dict, list) a file of another type is a one-line error."""
    from .errors import RcaiError

    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise RcaiError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise RcaiError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RcaiError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if expect is not None and not isinstance(obj, expect):
        raise RcaiError(f"{path}: expected a JSON {'object' if expect is dict else expect.__name__}, got {type(obj).__name__}")
    return obj
