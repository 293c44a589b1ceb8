"""The layers hold: SQL only under record/, and no private API of the database driver anywhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "server" / "ratchet"
# Modules whose queries have not moved under record/ yet; each exemption goes when its SQL moves.
EXEMPT: tuple[str, ...] = ()
# A statement literal: the keyword (in capitals) at the start of a string, followed by what the statement needs.
STATEMENT = re.compile(
    r"""["'](?:\s*)(?:SELECT\s+[\w*(]|INSERT\s+(?:OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"""
    r"""CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\s|ALTER\s+TABLE\s|PRAGMA\s+\w|BEGIN(?:\s+\w+)?\s*["']|"""
    r"""COMMIT\s*["']|ROLLBACK\s*["'])""",
)  # case-sensitive: the project writes SQL keywords in capitals, and prose ("commit", "select") is not SQL
PRIVATE_DRIVER = re.compile(r"\b_execute\b|\b_conn\b")


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if ".venv" not in p.parts)


def test_sql_statements_live_only_under_record() -> None:
    found = []
    for path in _modules(PACKAGE):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("record/") or rel.startswith(EXEMPT):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if STATEMENT.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == [], "SQL outside record/:\n" + "\n".join(found)


def test_the_check_finds_a_statement_it_is_shown() -> None:
    """The pattern is not vacuous: each kind of statement it is meant to catch is caught."""
    for sql in (
        '"SELECT * FROM actions"',
        "'INSERT INTO seen (class, key) VALUES (?, ?)'",
        '"INSERT OR IGNORE INTO seen VALUES (?, ?)"',
        '"UPDATE actions SET status = ?"',
        '"DELETE FROM seen"',
        '"CREATE INDEX x ON actions (id)"',
        '"ALTER TABLE actions ADD COLUMN x"',
        '"PRAGMA user_version"',
        '"BEGIN IMMEDIATE"',
        '"COMMIT"',
    ):
        assert STATEMENT.search(sql), sql
    for prose in ('"select the class to pin"', '"begin with a plan"', '"update the draft"', '"commit"'):
        assert not STATEMENT.search(prose), prose


def test_no_private_driver_api_anywhere() -> None:
    found = []
    for root in (ROOT / "server", ROOT / "bench", ROOT / "tests"):
        for path in _modules(root):
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if PRIVATE_DRIVER.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "private driver names:\n" + "\n".join(found)


def test_the_engine_reaches_executors_only_through_operations() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}: {line.strip()}"
        for path in _modules(PACKAGE / "engine")
        for line in path.read_text().splitlines()
        if re.match(r"\s*(from|import) ratchet\.executors", line) or "sqlite3.connect" in line
    ]
    assert found == []


def test_no_cross_module_private_names() -> None:
    pattern = re.compile(r"^\s*from ratchet\.[\w.]+ import .*\b_[a-z]\w*")
    found = [
        f"{path.relative_to(PACKAGE)}: {line.strip()}"
        for path in _modules(PACKAGE)
        for line in path.read_text().splitlines()
        if pattern.match(line)
    ]
    assert found == []
