"""Run contracts and novelty: triggers that come from what this session declared and what a class has seen.

A run contract (`start_task`) names a goal, a scope (path globs and/or action classes), non-goals
and a budget (actions and/or minutes). While it is open, an action outside the scope escalates
("the plan said three files, reality touches twelve") and an exhausted budget halts with a packet.

Novelty (per class, `novelty = true`): a path or command this class has never run before drops
one rung for that call. What a class has seen is recorded when an action of it executes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ratchet.errors import InvalidRequest
from ratchet.policy.globs import GlobError, PathGlob, compile_glob
from ratchet.policy.levels import Level
from ratchet.policy.model import ActionClass, Subject
from ratchet.record import actions
from ratchet.record.store import Store
from ratchet.rules.gate import Trigger


class TaskScope(BaseModel):
    """What a task may touch: path globs (workspace-relative) and/or action class names."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(default_factory=list, description="path globs the task may touch, e.g. 'src/api/**'")
    classes: list[str] = Field(default_factory=list, description="action classes the task may use")

    @field_validator("paths")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                compile_glob(pattern)
            except GlobError as exc:
                raise ValueError(f"bad glob {pattern!r}: {exc}") from exc
        return value


class TaskBudget(BaseModel):
    """How much the task may spend before it halts for a human."""

    model_config = ConfigDict(extra="forbid")

    actions: int | None = Field(None, ge=1, description="governed actions the task may take")
    minutes: float | None = Field(None, gt=0, description="wall-clock minutes the task may run")


@dataclass(frozen=True)
class Task:
    """An open run contract."""

    id: int
    goal: str
    scope: TaskScope
    non_goals: list[str]
    budget: TaskBudget
    started_at: float
    actions_used: int

    def triggers(self, subjects: tuple[Subject, ...], class_name: str, now: float | None = None) -> list[Trigger]:
        """The triggers this contract fires for an action of `class_name` touching `subjects`."""
        found: list[Trigger] = []
        budget = self.budget
        if budget.actions is not None and self.actions_used >= budget.actions:
            found.append(
                Trigger(
                    "budget-exhausted",
                    f"task {self.id} used its {budget.actions} actions (goal: {self.goal})",
                    Level.BLOCKED,
                )
            )
        elapsed = ((now or time.time()) - self.started_at) / 60
        if budget.minutes is not None and elapsed >= budget.minutes:
            found.append(
                Trigger(
                    "budget-exhausted",
                    f"task {self.id} ran {elapsed:.1f} of its {budget.minutes:g} minutes (goal: {self.goal})",
                    Level.BLOCKED,
                )
            )
        if self.scope.classes and class_name not in self.scope.classes:
            found.append(
                Trigger(
                    "out-of-scope",
                    f"class {class_name} is not in task {self.id}'s scope ({', '.join(self.scope.classes)})",
                    Level.BLOCKED,
                )
            )
        if self.scope.paths:
            globs = [compile_glob(p) for p in self.scope.paths]
            outside = [p for s in subjects for p in s.paths if not _inside(p, globs)]
            if outside:
                found.append(
                    Trigger(
                        "out-of-scope",
                        f"{', '.join(outside[:5])} outside task {self.id}'s scope ({', '.join(self.scope.paths)})",
                        Level.BLOCKED,
                    )
                )
        return found


def _inside(path: str, globs: list[PathGlob]) -> bool:
    return any(g.matches(path) for g in globs)


def task_from_row(row: Mapping[str, Any]) -> Task:
    """Build a Task from a `tasks` row."""
    return Task(
        id=row["id"],
        goal=row["goal"],
        scope=TaskScope.model_validate_json(row["scope_json"]),
        non_goals=json.loads(row["non_goals_json"]),
        budget=TaskBudget.model_validate_json(row["budget_json"]),
        started_at=row["started_at"],
        actions_used=row["actions_used"],
    )


def validate_task(goal: str, scope: TaskScope, budget: TaskBudget) -> None:
    """A contract must say what it is for and bound something; InvalidRequest says what is missing."""
    missing = []
    if not goal.strip():
        missing.append("goal (what the task is for)")
    if not scope.paths and not scope.classes:
        missing.append("scope (paths and/or classes the task may touch)")
    if budget.actions is None and budget.minutes is None:
        missing.append("budget (actions and/or minutes)")
    if missing:
        raise InvalidRequest("start_task needs " + "; ".join(missing))


def novelty_keys(subject: Subject) -> list[str]:
    """What novelty is judged on: each path, and each command's program with its first argument."""
    return [*subject.paths, *(" ".join(cmd[:2]) for cmd in subject.commands)]


def novelty_trigger(cls: ActionClass, level: Level, unseen: list[str]) -> Trigger | None:
    """One rung down when the class has never run this path or command before."""
    if not unseen or level <= Level.BLOCKED:
        return None
    return Trigger("novelty", f"never seen in class {cls.name}: {', '.join(unseen[:3])}", level.down())


async def open_task(store: Store, session_id: str) -> Task | None:
    """The session's open run contract, if any."""
    row = await store.call(lambda conn: actions.open_task(conn, session_id))
    return task_from_row(row) if row is not None else None


async def start_task(
    store: Store, session_id: str, goal: str, scope: TaskScope, non_goals: list[str], budget: TaskBudget
) -> Task:
    """Open a run contract for the session (an open one is closed as superseded)."""
    validate_task(goal, scope, budget)
    scope_json, non_goals_json, budget_json = scope.model_dump_json(), json.dumps(non_goals), budget.model_dump_json()
    row = await store.run(
        lambda conn: actions.start_task(conn, session_id, goal, scope_json, non_goals_json, budget_json)
    )
    return task_from_row(row)


async def end_task(store: Store, session_id: str, summary: str) -> Task | None:
    """Close the session's open run contract; None if there was none."""
    row = await store.run(lambda conn: actions.end_task(conn, session_id, summary))
    return task_from_row(row) if row is not None else None
