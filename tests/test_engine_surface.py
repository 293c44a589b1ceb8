"""`Engine`'s public surface is what the edges use, and nothing outside the engine reaches into its parts.

The edges (the CLI, the MCP server, the hooks, the review page, Codex's adapters) and the evidence
commands speak to an `Engine` through its methods alone: never through its parts (the decision, the
carrying out, the human's side, the views, ...), its `setting`, or its database (`engine.store`). The
check reads the source (ast): an attribute taken from an expression that is an engine (a name or
attribute that says `engine`, a call of a function that returns one, or anything annotated `Engine`).
"""

from __future__ import annotations

import ast
from pathlib import Path

from ratchet.engine import Engine

PACKAGE = Path(__file__).resolve().parent.parent / "server" / "ratchet"
# The engine's insides: its parts, the setting they share, and the database. Only engine/ touches them.
INSIDES = frozenset({"setting", "store", "decider", "verifier", "carrier", "external", "views", "human", "origins"})
# What the edges use of an engine, and nothing more: each name is used outside engine/ (checked below).
SURFACE = frozenset(
    {
        # opening, sessions, what it acts in
        "open", "close", "for_session", "start_session", "end_session", "shared_key",
        "workspace", "policy", "session_id", "location", "answers", "answers_here", "here",
        "check_texts", "class_of", "named",
        # a call: decided, carried out, or run by the client itself and reported
        "evaluate", "carry_out", "govern", "refuse", "record_external", "waiting_external", "record_external_outcome",
        "start_task", "end_task",
        # the human's side
        "reviewer_side", "approve", "whole_diff", "carry_approved", "carrying_out", "reject", "complain",
        "undo", "gc", "freeze", "unfreeze", "demote", "pin", "shown", "shown_calls",
        # what it shows, and the evidence read from the record
        "trust_levels", "queue", "history", "transitions", "view", "row", "checked_filter",
        "tamper_records", "verify_chain", "unvouched", "metrics", "report", "explain",
        # the delegated reviewer: consulted on a call, and what it said
        "reviewer_consult", "reviewer_granted", "reviewer_settled", "reviewer_standing", "reviewer_verdicts",
        "reviewer_about",
    }
)  # fmt: skip


def _annotated_engine(tree: ast.AST) -> set[str]:
    """Names (arguments, variables, attributes) annotated as an `Engine` in a module."""
    names: set[str] = set()

    def says_engine(annotation: ast.expr | None) -> bool:
        return annotation is not None and "Engine" in ast.unparse(annotation).replace("EngineError", "")

    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and says_engine(node.annotation):
            names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and says_engine(node.annotation):
            target = node.target
            names.add(target.id if isinstance(target, ast.Name) else ast.unparse(target).rsplit(".", 1)[-1])
    return names


def _is_engine(node: ast.expr, annotated: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return "engine" in node.id.lower() or node.id in annotated
    if isinstance(node, ast.Attribute):
        return "engine" in node.attr.lower() or node.attr in annotated
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return "engine" in name.lower()
    return False


def engine_uses(source: str) -> list[tuple[int, str]]:
    """Every attribute taken from an engine in `source`: (line, attribute)."""
    tree = ast.parse(source)
    annotated = _annotated_engine(tree)
    return [
        (node.lineno, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _is_engine(node.value, annotated)
    ]


def _outside_the_engine() -> dict[str, str]:
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "engine"
    }


def test_nothing_outside_the_engine_reaches_into_its_parts_or_its_store() -> None:
    found = [
        f"{name}:{line}: engine.{attr}"
        for name, source in _outside_the_engine().items()
        for line, attr in engine_uses(source)
        if attr in INSIDES
    ]
    assert found == [], "reaches into the engine's insides:\n" + "\n".join(found)


def test_the_check_finds_each_kind_of_reach_it_is_shown() -> None:
    planted = """
from ratchet.engine import Engine

async def command(engine, args):
    await engine.store.call(lambda conn: None)

def page(state):
    return state.engine.views.row(1)

def through(ctx):
    return _engine(ctx).carrier

def typed(e: Engine) -> None:
    e.setting.named("x")

class Holder:
    shared: Engine | None = None

    def use(self, options) -> None:
        options.shared.human
"""
    reaches = sorted(attr for _, attr in engine_uses(planted) if attr in INSIDES)
    assert reaches == ["carrier", "human", "setting", "store", "views"]
    assert [attr for _, attr in engine_uses("def fine(engine):\n    return engine.approve(1)\n")] == ["approve"]


def _public(cls: type) -> set[str]:
    """The public names of an engine: its methods and properties (its own and its sides'), and what
    `__init__` sets."""
    tree = ast.parse(Path(PACKAGE / "engine" / "__init__.py").read_text())
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__).body
    init = next(n for n in body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    names = {
        n.attr
        for n in ast.walk(init)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
    }
    return {n for n in {*dir(cls), *names} if not n.startswith("_")}


def test_the_engines_public_surface_is_what_the_edges_use() -> None:
    public = _public(Engine)
    assert public - INSIDES == SURFACE, "the surface changed: update SURFACE with what the edges now need"
    assert public & INSIDES == INSIDES, "a part was renamed: update INSIDES"
    # Used: taken from an engine, or (an engine held under another name, such as each of a server's sessions)
    # called by that name anywhere outside the engine.
    used = {
        n.attr
        for source in _outside_the_engine().values()
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Attribute)
    }
    assert sorted(SURFACE - used) == [], "on the surface, but no edge uses it"


# A call's life through the engine, top to bottom: each module may import only those below it, so following
# a call never climbs back up (the person's side, undo, origins and views sit beside it and are not listed).
CALL_ORDER = (
    "external",
    "dialog",
    "carry",
    "packets",
    "reviewer",
    "run",
    "verify",
    "settle",
    "reply",
    "intent",
    "where",
    "flood",
    "core",
)


def _engine_imports(source: str) -> set[str]:
    """The engine modules a module imports (type-only imports too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ratchet.engine."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.ImportFrom) and node.module == "ratchet.engine":
            found |= {a.name for a in node.names if a.name in CALL_ORDER}
    return found


def climbs(sources: dict[str, str]) -> list[str]:
    """Every import of a module of a call's life from one above it."""
    found = []
    for i, name in enumerate(CALL_ORDER):
        for imported in sorted(_engine_imports(sources[name])):
            if imported not in CALL_ORDER[i + 1 :]:
                found.append(f"engine/{name}.py imports engine/{imported}.py")
    return found


def test_a_call_goes_down_the_engine_and_never_climbs_back() -> None:
    sources = {name: (PACKAGE / "engine" / f"{name}.py").read_text() for name in CALL_ORDER}
    assert climbs(sources) == []
    # The check sees a climb when one is planted: the settling importing the carrying out.
    planted = dict(sources, settle="from ratchet.engine.carry import Carrier\n" + sources["settle"])
    assert climbs(planted) == ["engine/settle.py imports engine/carry.py"]
