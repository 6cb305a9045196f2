"""The import graph: no cycles, and no module importing from a layer above its own.

Layers, bottom up (README, Layout): the executors; the client and the flow; the features that
commands run (compare, bench); the commands; the entry points (cli, web). Every import counts,
function-level ones included.
"""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = ("executors", "imgsearch")


def _layer(module: str) -> str:
    if module.startswith("executors"):
        return "executors"
    if module.startswith("imgsearch.cli"):
        return "cli"
    if module.startswith("imgsearch.web"):
        return "web"
    if module.startswith("imgsearch.commands"):
        return "commands"
    if module.startswith(("imgsearch.compare", "imgsearch.bench", "imgsearch.report")):
        return "features"
    return "client"


# What each layer may import. The web page is an entry point like the command line: it sits on
# the client and the flow, never on the commands or the compare/bench features.
ALLOWED = {
    "executors": {"executors"},
    "client": {"executors", "client"},
    "features": {"executors", "client", "features"},
    "commands": {"executors", "client", "features", "commands"},
    "web": {"executors", "client", "web"},
    "cli": {"executors", "client", "features", "commands", "web", "cli"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that `module` imports (``from a.b import c`` counts a.b.c when that is a module)."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, set(modules)) for m, p in modules.items()}


def test_no_module_imports_from_a_layer_above_its_own():
    upward = sorted(
        f"{m} ({_layer(m)}) imports {d} ({_layer(d)})" for m, deps in _graph().items() for d in deps if _layer(d) not in ALLOWED[_layer(m)]
    )
    assert upward == []


def test_the_import_graph_has_no_cycles():
    graph = _graph()
    # A package importing its own submodules (its __init__ re-exporting them) is not a cycle.
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The graph is only as good as its parser: a local import and a relative one are both edges."""
    pkg = tmp_path / "imgsearch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from imgsearch.web import page\n")
    (pkg / "b.py").write_text("from .a import f\n")
    known = {"imgsearch", "imgsearch.a", "imgsearch.b", "imgsearch.web", "imgsearch.web.page"}
    assert _imports("imgsearch.a", pkg / "a.py", known) == {"imgsearch.web.page"}
    assert _imports("imgsearch.b", pkg / "b.py", known) == {"imgsearch.a"}
