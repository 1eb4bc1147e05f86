"""rcai's packages import only downwards (the layering of ../shared/DESIGN.md), and no module
imports itself in a circle. Function-level imports count: an upward import hidden in a function is
a cycle in disguise. The walk is static (ast), so it sees every import whether or not it runs."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "rcai"

# Lowest first; a unit may import its own layer's other units only without a cycle between them.
LAYERS: list[set[str]] = [
    {"rcai", "errors", "io", "lock", "registry", "config", "progress", "metrics", "onnx_export", "procs", "stats", "latency_data",
     "threads", "precisions", "memory", "runfolder"},
    {"presets"},  # typed configs of the network, its schedule and recipe: below everything that builds them
    {"model"},
    {"space"},
    {"diffusion", "data"},
    {"targets"},
    {"cost", "predictor"},
    {"train"},
    {"oneshot"},  # the one-shot supernet: trained once (a training), judged with inherited weights; searched over by a strategy
    {"proxies"},  # quality estimators: zero-cost proxies and short training, used by the search strategies
    {"search"},
    {"deploy"},
    {"evaluate"},  # judging a search result: matched-latency baselines, training jobs, journal, loop timing
    {"pipeline_search"},  # the pipeline's search stage per strategy
    {"pipeline", "report"},
    {"cli", "__main__"},
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = ("rcai",) + f.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> rcai modules it imports (anywhere in the file), resolved to real modules."""
    graph: dict[str, set[str]] = {}
    for mod, f in mods.items():
        pkg = mod if f.name == "__init__.py" else mod.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for a in node.names:  # `from pkg import submodule` imports the submodule
                    found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[mod] = {m for m in found if m in mods and m != mod}
    return graph


def unit(mod: str) -> str:
    parts = mod.split(".")[1:]
    if not parts:
        return "rcai"
    return parts[0]  # a package (or a top-level module): a cycle between packages fails test_no_cycle_between_packages


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


GRAPH = imports(modules())


def test_every_package_has_a_layer():
    assert sorted({unit(m) for m in GRAPH} - set(LAYER)) == []


def test_packages_import_only_downwards():
    upward = [f"{m} -> {t}" for m, ts in GRAPH.items() for t in ts if LAYER[unit(t)] > LAYER[unit(m)]]
    assert upward == []


def test_no_cycle_between_packages():
    packages: dict[str, set[str]] = {}
    for m, ts in GRAPH.items():
        packages.setdefault(unit(m), set()).update(unit(t) for t in ts if unit(t) != unit(m))
    assert cycles(packages) == []


def test_no_cycle_between_modules():
    # a package's __init__ re-exports its modules; a module importing its own package's __init__
    # would close a circle, so those edges count too
    assert cycles(GRAPH) == []


def test_the_walk_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert unit("rcai.presets") == "presets" and unit("rcai.space.subnet") == "space" and unit("rcai.space") == "space"
