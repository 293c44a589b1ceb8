"""Confinement: every case tries a real write through the executor and checks nothing moved on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ratchet.errors import InvalidRequest, PathRefused
from ratchet.executors.fs import apply_plan, plan_write
from ratchet.executors.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A workspace at tmp/ws with neighbours worth attacking: see the tree built below."""
    root = tmp_path / "ws"
    for rel, text in {
        "ws/inside.txt": "inside\n",
        "ws/sub/keep.txt": "keep\n",
        "ws/.git/config": "[core]\n",
        "ws/.ratchet/ratchet.db": "trust\n",
        "ws/state/trust.db": "db\n",
        "ws/state/trust.db-wal": "wal\n",
        "ws-evil/target.txt": "evil sibling\n",
        "outside/secret.txt": "secret\n",
        "policies/team.toml": "[policy]\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (root / "leaklink").symlink_to(tmp_path / "outside" / "secret.txt")
    (root / "leakdir").symlink_to(tmp_path / "outside")
    (root / "relout").symlink_to("../outside")
    (root / "pol").symlink_to(tmp_path / "policies")
    (root / "alias").symlink_to("sub")
    (root / "inlink").symlink_to("inside.txt")
    (root / "gitlink").symlink_to(".git")
    (root / "loop").symlink_to("loop")
    db = root / "state" / "trust.db"
    protected = [
        tmp_path / "policies",
        *(Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")),
    ]
    return Workspace(root, protected=protected)


def snapshot(top: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``top`` (links as their target, files as bytes), to compare before/after."""
    tree: dict[str, tuple[str, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                tree[str(path)] = ("link", str(path.readlink()))
            elif path.is_file():
                tree[str(path)] = ("file", path.read_bytes())
            else:
                tree[str(path)] = ("dir", "")
    return tree


def attempt_write(ws: Workspace, path: str) -> str:
    """Try to write through the executor; return the refusal rule (the test fails if it lands)."""
    with pytest.raises(PathRefused) as refused:
        apply_plan(ws, plan_write(ws, path, "pwned\n"), token="attack")
    return refused.value.rule


REFUSED = [
    ("../outside/secret.txt", "outside-workspace"),
    ("sub/../../outside/secret.txt", "outside-workspace"),
    ("../outside/new.txt", "outside-workspace"),
    ("leakdir/secret.txt", "outside-workspace"),
    ("leakdir/new/deeper.txt", "outside-workspace"),
    ("relout/secret.txt", "outside-workspace"),
    ("../ws-evil/target.txt", "outside-workspace"),
    ("leaklink", "symlink-leaf"),
    ("inlink", "symlink-leaf"),
    (".git/config", "git-internals"),
    (".GIT/config", "git-internals"),
    ("sub/.git/x", "git-internals"),
    ("sub/.Git/hooks/pre-commit", "git-internals"),
    ("gitlink/config", "git-internals"),
    (".git/../inside.txt", "git-internals"),
    (".ratchet/ratchet.db", "ratchet-state"),
    (".RATCHET/policies/team.toml", "ratchet-state"),
    ("pol/team.toml", "protected"),
    ("pol/new.toml", "protected"),
    ("state/trust.db", "protected"),
    ("state/trust.db-wal", "protected"),
    ("state/trust.db-shm", "protected"),
    ("STATE/Trust.DB", "protected"),
    ("", "invalid-path"),
    ("a\0b", "invalid-path"),
    ("\0", "invalid-path"),
    (".", "invalid-path"),
    ("sub/..", "invalid-path"),
    ("docs/", "invalid-path"),
    ("loop/x", "invalid-path"),
]


@pytest.mark.parametrize(("path", "rule"), REFUSED)
def test_refused_paths_write_nothing(ws: Workspace, path: str, rule: str) -> None:
    before = snapshot(ws.root.parent)
    with pytest.raises(PathRefused) as refused:
        ws.relpath(path)
    assert refused.value.rule == rule
    assert refused.value.path == path
    assert attempt_write(ws, path) == rule
    assert snapshot(ws.root.parent) == before


@pytest.mark.parametrize(
    ("suffix", "rule"),
    [
        ("outside/secret.txt", "outside-workspace"),
        ("ws-evil/target.txt", "outside-workspace"),  # shares "ws" as a string prefix
        ("policies/team.toml", "protected"),
        ("ws/.git/config", "git-internals"),
        ("ws/state/trust.db-wal", "protected"),
        ("ws", "invalid-path"),
    ],
)
def test_absolute_paths_refused(ws: Workspace, suffix: str, rule: str) -> None:
    before = snapshot(ws.root.parent)
    path = str(ws.root.parent / suffix)
    assert attempt_write(ws, path) == rule
    assert snapshot(ws.root.parent) == before


def test_absolute_path_inside_is_accepted(ws: Workspace) -> None:
    assert ws.relpath(str(ws.root / "sub" / "keep.txt")) == "sub/keep.txt"
    assert ws.resolve(str(ws.root / "new" / "x.txt")) == ws.root / "new" / "x.txt"


def test_relative_paths_normalize(ws: Workspace) -> None:
    assert ws.relpath("docs/a.md") == "docs/a.md"
    assert ws.relpath("./docs//b/../a.md") == "docs/a.md"
    assert ws.relpath("missing/../sub/keep.txt") == "sub/keep.txt"


def test_symlinked_parent_inside_resolves_to_its_target(ws: Workspace) -> None:
    # The returned path never contains a link, so the executor's O_NOFOLLOW walk can follow it.
    assert ws.relpath("alias/keep.txt") == "sub/keep.txt"
    assert ws.relpath("alias/new.txt") == "sub/new.txt"


def test_root_given_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    ws = Workspace(tmp_path / "link")
    assert ws.root == tmp_path / "real"
    assert ws.relpath(str(tmp_path / "link" / "a.txt")) == "a.txt"
    with pytest.raises(PathRefused) as refused:
        ws.relpath(str(tmp_path / "link" / ".git" / "config"))
    assert refused.value.rule == "git-internals"


def test_protected_path_given_relative_is_relative_to_root(tmp_path: Path) -> None:
    ws = Workspace(tmp_path, protected=[Path("team/policies")])
    with pytest.raises(PathRefused) as refused:
        ws.relpath("team/policies/x.toml")
    assert refused.value.rule == "protected"
    assert ws.relpath("team/other.toml") == "team/other.toml"


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidRequest):
        Workspace(tmp_path / "file")
    with pytest.raises(InvalidRequest):
        Workspace(tmp_path / "missing")


def test_confinement_on_strings_resolves_as_the_path_walk_does(tmp_path: Path) -> None:
    """`relpath` resolves on strings (it runs on every call); over a tree of relative, absolute, chained,
    looping and dangling links, spelled with `.`, `..`, doubled and leading `//` slashes, it lands
    exactly where the Path walk (`_resolve`, still used for the protected paths) lands, or refuses the same."""
    import itertools
    import random

    from ratchet.executors.workspace import _resolve, _resolve_text

    root = tmp_path / "t"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "d").mkdir()
    links = {
        "a/up": "..",
        "a/b/abs": str(root / "d"),
        "a/b/c/chain": "../../up/d",
        "d/back": "../a/b",
        "loop": "loop",
        "dangling": "nowhere/x",
        "d/slashes": f"/{root}//a/./b",
        "a/dot": ".",
    }
    for rel, target in links.items():
        (root / rel).symlink_to(target)
    names = ["a", "b", "c", "d", "up", "abs", "chain", "back", "loop", "dangling", "slashes", "dot", "..", ".", "", "x"]
    rng = random.Random(28)
    spellings = [str(root), f"/{root}", f"{root}/"]
    checked = 0
    for start, count in itertools.product(spellings, range(1, 6)):
        for _ in range(60):
            path = start + "/" + "/".join(rng.choice(names) for _ in range(count))
            try:
                expected: str | tuple[str, str] = str(_resolve(Path(path), path))
            except PathRefused as exc:
                expected = ("refused", exc.rule)
            try:
                got: str | tuple[str, str] = _resolve_text(path, path)
            except PathRefused as exc:
                got = ("refused", exc.rule)
            assert got == expected, path
            checked += 1
    for path in ("//x/../y", "//..", "//x/y/../../z", "/..", "///x/../y", "/x/../..", f"/{root}/a/up/up/../../.."):
        assert _resolve_text(path, path) == str(_resolve(Path(path), path)), path
        checked += 1
    assert checked == 907
