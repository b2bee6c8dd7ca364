"""The package's shape: no import cycle, small files, short functions.

These read the source with ``ast`` (nothing is imported or run), so they are fast.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "larvax"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
# Functions allowed to stay longer than MAX_FUNCTION_LINES, each with its reason.
LONG_FUNCTIONS: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = ("larvax",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The larvax modules ``module`` imports anywhere in its source (at module level or lazily
    inside a function: a lazy import hides a cycle, it does not remove it), resolved to known
    module names."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()

    def add(name: str) -> None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)

    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for a in n.names:
                if a.name.startswith("larvax"):
                    add(a.name)
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = package
                for _ in range(n.level - 1):
                    base = base.rpartition(".")[0]
                name = f"{base}.{n.module}" if n.module else base
            else:
                name = n.module or ""
            if name.startswith("larvax"):
                for a in n.names:
                    full = f"{name}.{a.name}"
                    add(full if full in known else name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_larvax_modules():
    sources = _sources()
    known = set(sources)
    graph = {}
    for m, p in sources.items():
        # A package's __init__ re-exporting its submodules is not a cycle of logic: drop the
        # edge from a submodule to its own parent package's __init__.
        deps = _imports(p, m, known)
        graph[m] = {d for d in deps if not m.startswith(d + ".")}
    assert _cycles(graph) == []


def test_no_source_file_over_the_limit():
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long == {}


def test_long_functions_are_few_and_listed():
    long = {}
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(SRC)}:{node.name}"] = n
    assert len(LONG_FUNCTIONS) <= 3
    assert set(long) <= set(LONG_FUNCTIONS), long
