"""Narrowing what a command reads to one person, one workspace or one repository of a shared record.

A team shares one record, so `ratchet inbox`, `queue`, `history`, `status`, `metrics` and `report` can
be asked about the actions of one identity (`recorded_by`, ratchet/identity.py), one workspace
(`origin_workspace`, its absolute path) or one repository (`origin_repo`, ratchet/repository.py); the
parts given combine (AND). The filter is applied here, in SQL, by the reads that take one; an action
recorded before its column existed has NULL there and matches no filter on it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

# Each part of a filter: its field, the column it matches, and how a line names it.
_PARTS = (
    ("by", "recorded_by", "recorded by"),
    ("workspace", "origin_workspace", "in workspace"),
    ("repo", "origin_repo", "in repository"),
)


@dataclass(frozen=True)
class ActionFilter:
    """Which actions a command reads: those recorded by `by`, in `workspace`, of `repo` (each None: any).

    `unknown` names the parts no recorded action matches at all (see `unmatched`), so a command can say
    that a person, workspace or repository is not in the record rather than only show nothing."""

    by: str | None = None
    workspace: str | None = None
    repo: str | None = None
    unknown: tuple[str, ...] = field(default=(), compare=False)

    @property
    def active(self) -> bool:
        """Whether any part is set."""
        return any(value is not None for value in self.values().values())

    def values(self) -> dict[str, str | None]:
        """Each part by its column."""
        return {column: getattr(self, name) for name, column, _ in _PARTS}

    def described(self) -> str:
        """`recorded by alice, in repository host/org/repo`; `everything` when no part is set."""
        said = [f"{words} {getattr(self, name)}" for name, _, words in _PARTS if getattr(self, name) is not None]
        return ", ".join(said) if said else "everything"

    def header(self, what: str = "actions") -> list[str]:
        """What a filtered view says first: which actions it shows, and each part no recorded action matches
        (none without a filter)."""
        if not self.active:
            return []
        return [f"filter: only {what} {self.described()}", *(f"filter: {line}" for line in self.unknown)]

    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        """The filter as ` AND ...` conditions (on the columns of `alias.`, when given) and their parameters."""
        prefix = f"{alias}." if alias else ""
        sql, params = "", []
        for column, value in self.values().items():
            if value is not None:
                sql += f" AND {prefix}{column} = ?"
                params.append(value)
        return sql, params

    def where_named(self, alias: str = "") -> tuple[str, dict[str, Any]]:
        """`where` for a statement with named parameters (`:filter_recorded_by`, ...)."""
        prefix = f"{alias}." if alias else ""
        sql, params = "", {}
        for column, value in self.values().items():
            if value is not None:
                sql += f" AND {prefix}{column} = :filter_{column}"
                params[f"filter_{column}"] = value
        return sql, params


EVERYTHING = ActionFilter()


def checked(conn: sqlite3.Connection, scope: ActionFilter) -> ActionFilter:
    """`scope` with the parts no recorded action matches named in its `unknown` (an unknown person,
    workspace or repository is said, not only shown as nothing); `scope` itself without a filter."""
    return replace(scope, unknown=unmatched(conn, scope)) if scope.active else scope


def unmatched(conn: sqlite3.Connection, scope: ActionFilter) -> tuple[str, ...]:
    """A line for each part of the filter that no recorded action matches (an unknown person, workspace or
    repository, or a typing slip), each part on its own."""
    out = []
    for name, column, words in _PARTS:
        value = getattr(scope, name)
        if value is None:
            continue
        if conn.execute(f"SELECT 1 FROM actions WHERE {column} = ? LIMIT 1", (value,)).fetchone() is None:
            out.append(f"no action in the record was {words} {value}")
    return tuple(out)
