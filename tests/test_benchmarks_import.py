"""Every benchmark script imports against the current library (bench_flops.py imported a constant
that had moved and failed at start; nothing ran it). One subprocess imports them all as modules,
without running their main()."""
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

CODE = """
import importlib.util, sys
bad = []
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location(path.rsplit('/', 1)[-1][:-3], path)
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except Exception as e:
        bad.append(f"{path}: {type(e).__name__}: {e}")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


def test_every_benchmark_script_imports():
    scripts = sorted(str(p) for p in BENCHMARKS.glob("*.py"))
    assert len(scripts) >= 20
    # cwd benchmarks/: `python -c` puts it on sys.path, as running a script there does (`from common import ...`)
    done = subprocess.run([sys.executable, "-c", CODE, *scripts], cwd=BENCHMARKS, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
