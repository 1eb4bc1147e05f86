"""Identical files before and after a refactor: a micro training, micro halving, bo and DARTS
searches, run by the CLI into one folder, every file hashed.

    python benchmarks/identical_runs.py run OUT [--table T]   # runs the three, writes OUT/hashes.json
    python benchmarks/identical_runs.py compare A B           # which files match, which differ

Run it on the commit before a change and on the commit after (the same --table: a profiled table
differs run to run, so profile one once and pass it to both). Files that carry wall times
(metrics.json's seconds, timing lines of logs) differ run to run by nature: `compare` lists them
apart, with the keys that differ.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

TIMING_KEYS = ("seconds", "time", "wall", "elapsed", "per_s", "_s", "started", "finished", "date", "host", "pid")


def _rcai(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "rcai", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def run(out: Path, table: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if table is None:
        table = str(out / "cpu-micro.csv")
        _rcai("profile", "--device", "cpu", "--preset", "micro", "--out", table, "--threads", "1")
    _rcai("train", "--preset", "micro", "--out", str(out / "train"), "--steps", "4", "--batch-size", "2", "--eval-steps", "2",
          "--eval-images", "1", "--json")
    common = ["--preset", "micro", "--cost-table", table, "--latency-budget-ms", "1e9", "--sample-steps", "10", "--json"]
    _rcai("search", "--strategy", "halving", *common, "--out", str(out / "halving"), "--rung", "2", "--rung", "4", "--initial", "4",
          "--brackets", "1", "--jobs", "2", "--batch-size", "2")
    _rcai("search", "--strategy", "bo", *common, "--out", str(out / "bo"), "--rung", "2", "--rung", "4", "--initial", "2",
          "--trainings", "2", "--jobs", "2", "--batch-size", "2")
    _rcai("search", "--strategy", "darts", *common, "--out", str(out / "darts"), "--search-steps", "6", "--warmup-steps", "2",
          "--finetune-steps", "2", "--batch-size", "2")
    hashes = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(out.rglob("*")) if p.is_file() and p.name != "hashes.json" and not p.name.endswith(".lock")}
    (out / "hashes.json").write_text(json.dumps(hashes, indent=1))


def _diff_keys(a, b, at: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in sorted(set(a) | set(b)) for k in _diff_keys(a.get(key), b.get(key), f"{at}.{key}" if at else str(key))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [k for i, (x, y) in enumerate(zip(a, b)) for k in _diff_keys(x, y, f"{at}[{i}]")]
    return [] if a == b else [at or "<root>"]


def _json_lines(path: Path):
    text = path.read_text()
    if path.suffix == ".csv":  # rows as {column: value}
        import csv
        import io

        return list(csv.DictReader(io.StringIO(text)))
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _timed_note(a: Path, b: Path, key: str) -> bool:
    """A note that differs only in its trailing "in N s" (the search's wall time)."""
    import re

    if not key.startswith("notes["):
        return False
    i = int(key[6:-1])
    strip = lambda p: re.sub(r" in [0-9.]+ s", "", json.loads(p.read_text())["notes"][i])  # noqa: E731
    return strip(a) == strip(b)


def compare(a: Path, b: Path) -> int:
    ha, hb = (json.loads((d / "hashes.json").read_text()) for d in (a, b))
    same = sorted(k for k in ha if hb.get(k) == ha[k])
    print(f"identical: {len(same)} files")
    for k in same:
        print(f"  = {k}")
    bad = 0
    for k in sorted(set(ha) | set(hb)):
        if k in same:
            continue
        if k not in ha or k not in hb:
            print(f"  ! {k}: only in {'after' if k not in ha else 'before'}")
            bad += 1
            continue
        try:
            keys = _diff_keys(_json_lines(a / k), _json_lines(b / k))
        except (json.JSONDecodeError, UnicodeDecodeError):
            keys = ["<binary>"]
        timing = all(any(t in key.rsplit(".", 1)[-1] for t in TIMING_KEYS) or _timed_note(a / k, b / k, key) for key in keys) and keys != ["<binary>"]
        print(f"  {'~' if timing else '!'} {k}: {'timing only: ' if timing else ''}{', '.join(keys[:8])}")
        bad += not timing
    print(f"{bad} files differ beyond wall times")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--table")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.cmd == "run":
        run(args.out, args.table)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
