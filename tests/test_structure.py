"""The package's shape holds: no import cycles, no import hidden in a function without a reason, and no
class or function too long to read.

Every check here is run twice: on the package, and on a small package planted in a temporary directory
with exactly the violation it exists to catch, so a check that quietly stopped finding anything fails.
Only the standard library's `ast` reads the code; nothing is imported.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "server" / "ratchet"

# Import cycles left to break, each as the test reports it (a path back to its start); each entry fails
# the test once it is broken, so the list only shrinks. Empty: the package has none.
KNOWN_CYCLES: tuple[tuple[str, ...], ...] = ()

# An import inside a function must say, in a comment on its line, the cost it avoids: the start-up of a
# process that does not need the module (`start-up`), or an optional dependency that may not be installed
# (`optional`). Anything else (an import dodging a cycle, or an import left where it was first needed)
# belongs at the top of the module.
JUSTIFIED = re.compile(r"#.*\b(start-up|optional)\b", re.IGNORECASE)

MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 120
# Functions that are data tables: long because they list, not because they do. Each with its reason.
DATA_TABLES: dict[str, str] = {
    "record/roles.py::_guards": "PostgreSQL's trigger functions and triggers, one SQL statement per guard",
}
# Today's code over the limits, to be split; each entry must still be over (a fixed one fails the test
# until it is removed here), so this list only shrinks.
OVERSIZE: dict[str, str] = {}


def _modules(package: Path) -> dict[str, Path]:
    """Every module of `package` by its dotted name (`ratchet.cli.parser`; a package by its own name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports at module level, in `if`/`try` blocks there too: those run when the module is imported,
    and those under `if TYPE_CHECKING:` (a type from another module is a dependency on it all the same).
    Not those inside a function or class body."""
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            todo += [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            todo += [*node.body, *node.orelse, *node.finalbody, *(s for h in node.handlers for s in h.body)]


def _resolve(name: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The package's modules an import statement in module `name` names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    base = node.module or ""
    if node.level:  # relative: from the module's package up
        package = name if modules[name].name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
    return targets or ([base] if base in modules else [])


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports when it is imported."""
    modules = _modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {t for node in _top_level_imports(tree) for t in _resolve(name, node, modules) if t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Each strongly connected group of more than one module (Tarjan's algorithm), as one cycle through
    it from its first module in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_one_cycle(graph, g) for g in groups)


def _one_cycle(graph: dict[str, set[str]], group: set[str]) -> tuple[str, ...]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: (start,)}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    return paths[v]
                if w not in paths:
                    paths[w] = (*paths[v], w)
                    nxt.append(w)
        frontier = nxt
    return tuple(sorted(group))


@dataclass(frozen=True)
class Hidden:
    """An import inside a function, where it was found and whether its line names the cost it avoids."""

    where: str
    line: str
    justified: bool


def function_imports(package: Path) -> list[Hidden]:
    """Every import statement inside a function body, anywhere in the package."""
    found = []
    for path in sorted(package.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for fn in ast.walk(ast.parse(source)):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    text = lines[node.lineno - 1]
                    where = f"{path.relative_to(package).as_posix()}:{node.lineno}"
                    found.append(Hidden(where, text.strip(), bool(JUSTIFIED.search(text))))
    return sorted(set(found), key=lambda h: (h.where.partition(":")[0], int(h.where.partition(":")[2])))


def _over(node: ast.AST, rel: str, prefix: str, found: dict[str, int]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + child.name
            assert child.end_lineno is not None
            length = child.end_lineno - child.lineno + 1
            limit = MAX_CLASS_LINES if isinstance(child, ast.ClassDef) else MAX_FUNCTION_LINES
            if length > limit:
                found[f"{rel}::{name}"] = length
            _over(child, rel, name + ".", found)


def oversize(package: Path) -> dict[str, int]:
    """`path::Qualified.name` -> its length in lines, for each class over MAX_CLASS_LINES and each function
    (or method) over MAX_FUNCTION_LINES."""
    found: dict[str, int] = {}
    for path in sorted(package.rglob("*.py")):
        _over(ast.parse(path.read_text(encoding="utf-8")), path.relative_to(package).as_posix(), "", found)
    return found


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "planted"
    for rel, text in {"__init__.py": "", **files}.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(textwrap.dedent(text))
    return package


# -- import cycles -----------------------------------------------------------------------------------


def test_no_import_cycles() -> None:
    found = cycles(import_graph(PACKAGE))
    unknown = [c for c in found if c not in KNOWN_CYCLES]
    assert unknown == [], "import cycles (top-level imports), each as a path back to its start:\n" + "\n".join(
        " -> ".join((*c, c[0])) for c in unknown
    )
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert gone == [], f"these cycles are broken now: remove them from KNOWN_CYCLES: {gone}"


def test_the_cycle_check_finds_a_planted_cycle(tmp_path: Path) -> None:
    package = _plant(
        tmp_path,
        {
            "a.py": "from planted.b import thing\n",
            "b.py": "import planted.c\nthing = 1\n",
            "c.py": "from planted import a\n",
            "sub/__init__.py": "",
            "sub/d.py": "from . import e\n",
            "sub/e.py": "from .d import x\n",
            "late.py": "def f():\n    from planted import a\n",  # in a function: not a cycle at import time
            "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from planted import hinted\n",
            "hinted.py": "import planted.typed\n",  # a cycle through a type hint is a cycle
        },
    )
    graph = import_graph(package)
    assert graph["planted.late"] == set()
    assert cycles(graph) == [
        ("planted.a", "planted.b", "planted.c"),
        ("planted.hinted", "planted.typed"),
        ("planted.sub.d", "planted.sub.e"),
    ]


# -- imports inside functions ------------------------------------------------------------------------


def test_every_import_inside_a_function_names_the_cost_it_avoids() -> None:
    hidden = function_imports(PACKAGE)
    bare = [f"{h.where}: {h.line}" for h in hidden if not h.justified]
    assert bare == [], (
        f"{len(bare)} of {len(hidden)} imports inside functions name no cost they avoid; move them to the top "
        "of the module, or say on the line what importing there saves (`# start-up: ...`, `# optional: ...`):\n"
        + "\n".join(bare)
    )


def test_the_function_import_check_finds_a_planted_one(tmp_path: Path) -> None:
    package = _plant(
        tmp_path,
        {
            "m.py": """\
                import json


                def bare():
                    import os
                    return os


                async def nested():
                    def inner():
                        from planted import m
                    return inner


                def kept():
                    import sqlite3  # start-up: only `serve` opens a database
                    from planted import m  # optional: needs psycopg
                    return sqlite3, m
            """,
        },
    )
    hidden = function_imports(package)
    assert [(h.where, h.justified) for h in hidden] == [
        ("m.py:5", False),
        ("m.py:11", False),
        ("m.py:16", True),
        ("m.py:17", True),
    ]


# -- sizes ---------------------------------------------------------------------------------------------


def test_no_class_or_function_over_its_size_limit() -> None:
    found = oversize(PACKAGE)
    new = {k: n for k, n in found.items() if k not in DATA_TABLES and k not in OVERSIZE}
    assert new == {}, (
        f"over {MAX_CLASS_LINES} lines (a class) or {MAX_FUNCTION_LINES} (a function), in lines: {new}; split it "
        "(a data table goes in DATA_TABLES, with its reason)"
    )
    fixed = sorted(k for k in (*DATA_TABLES, *OVERSIZE) if k not in found)
    assert fixed == [], f"within the limits now (or gone): remove from DATA_TABLES/OVERSIZE: {fixed}"


def test_the_size_check_finds_planted_long_code(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    methods = "".join(f"    def m{i}(self):\n" + "".join(f"        y = {j}\n" for j in range(9)) for i in range(30))
    package = _plant(
        tmp_path,
        {
            "fits.py": f"def f():\n{body}",  # exactly the limit
            "long.py": f"def f():\n{body}    x = 0\n",
            "big.py": f"class Big:\n{methods}",
        },
    )
    assert oversize(package) == {
        "long.py::f": MAX_FUNCTION_LINES + 1,
        "big.py::Big": 301,
    }
