"""The error hierarchy in ratchet/errors.py, the tree its docstring draws and its `__all__` agree.

The check reads the module's source (its docstring's tree, its `__all__`, its class statements) and
returns every disagreement; the tests below also plant each kind of drift in a copy of the source and
see the check name it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ERRORS = Path(__file__).resolve().parent.parent / "server" / "ratchet" / "errors.py"
# One line of the drawn tree: its indentation (box-drawing prefix), the class name, the description.
TREE_LINE = re.compile(r"^(?P<prefix>[ │├└─]*)(?P<name>[A-Z]\w*)\s{2,}\S")


def drawn_tree(doc: str) -> dict[str, str | None]:
    """Each class the docstring draws, with the class drawn as its parent (None for the root)."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (depth, name) of the classes above the current line
    for line in doc.splitlines():
        body = line[4:] if line.startswith("    ") else None
        if body is None:
            continue
        m = TREE_LINE.match(body)
        if m is None:
            continue
        depth = len(m.group("prefix")) // 4
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[m.group("name")] = stack[-1][1] if stack else None
        stack.append((depth, m.group("name")))
    return parents


def defined_tree(module: ast.Module) -> dict[str, str | None]:
    """Each class the module defines, with its (single) base class among them (None for the root)."""
    classes = [n for n in module.body if isinstance(n, ast.ClassDef)]
    names = {c.name for c in classes}
    tree: dict[str, str | None] = {}
    for c in classes:
        bases = [b.id for b in c.bases if isinstance(b, ast.Name)]
        inside = [b for b in bases if b in names]
        tree[c.name] = inside[0] if inside else None
    return tree


def exported(module: ast.Module) -> list[str]:
    for node in module.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [str(name) for name in ast.literal_eval(node.value)]
    return []


def disagreements(source: str) -> list[str]:
    """Every way the module's class tree, its docstring's tree and its `__all__` disagree."""
    module = ast.parse(source)
    doc = ast.get_docstring(module, clean=False) or ""
    drawn, defined, names = drawn_tree(doc), defined_tree(module), exported(module)
    found = []
    for name, parent in defined.items():
        if name not in drawn:
            found.append(f"{name} is defined but not drawn in the docstring's tree")
        elif drawn[name] != parent:
            found.append(f"{name} derives from {parent} but the docstring draws it under {drawn[name]}")
        if name not in names:
            found.append(f"{name} is defined but not in __all__")
    for name in drawn:
        if name not in defined:
            found.append(f"{name} is drawn in the docstring but not defined")
    for name in names:
        if name not in defined:
            found.append(f"{name} is in __all__ but not defined")
    if len(set(names)) != len(names):
        found.append("__all__ names a class twice")
    roots = [n for n, p in defined.items() if p is None]
    if roots != ["RatchetError"]:
        found.append(f"one root, RatchetError, is expected; the roots are {roots}")
    return found


def test_errors_module_tree_docstring_and_all_agree() -> None:
    source = ERRORS.read_text()
    assert disagreements(source) == []
    # The check reads what it should: every class of the module is seen in each of the three.
    module = ast.parse(source)
    assert len(defined_tree(module)) == len(drawn_tree(ast.get_docstring(module, clean=False) or "")) >= 15
    assert sorted(exported(module)) == sorted(defined_tree(module))


def _planted(old: str, new: str, count: int = 1) -> list[str]:
    source = ERRORS.read_text()
    assert old in source, old
    return disagreements(source.replace(old, new, count))


def test_a_class_missing_from_the_docstring_is_found() -> None:
    source = ERRORS.read_text()
    planted = source + '\n\nclass Undrawn(RatchetError):\n    """Planted."""\n'
    planted = planted.replace("__all__ = [\n", '__all__ = [\n    "Undrawn",\n')
    assert disagreements(planted) == ["Undrawn is defined but not drawn in the docstring's tree"]


def test_a_class_drawn_under_the_wrong_parent_is_found() -> None:
    found = _planted("class DraftStale(DraftError):", "class DraftStale(InvalidRequest):")
    assert found == ["DraftStale derives from InvalidRequest but the docstring draws it under DraftError"]


def test_a_class_missing_from_all_is_found() -> None:
    assert _planted('    "StoreError",\n', "") == ["StoreError is defined but not in __all__"]


def test_a_name_in_all_or_the_docstring_that_is_not_defined_is_found() -> None:
    assert _planted('    "StoreError",\n', '    "StoreError",\n    "Gone",\n') == ["Gone is in __all__ but not defined"]
    found = _planted("    └── StoreError ", "    ├── Vanished                      planted\n    └── StoreError ")
    assert found == ["Vanished is drawn in the docstring but not defined"]
