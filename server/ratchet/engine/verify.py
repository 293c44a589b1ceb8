"""Verification: the checks a class names judge its actions, independently of the agent.

After an action of a class with `verify` executes (`verify_on = "each"`), or when the agent ends its
task (`"task_end"`, over the task's executed actions of the class), Ratchet runs the class's checks
(executors/checks.py: confined exactly as an agent's command, argv only, never a shell). A check is
not an action: it is not gated and has no row of its own; its result is recorded on the action it
judged (record/checks.py). A failing check makes the action's sample a failure: right away for
`each` (the outcome records the failure), or by turning an already counted success into one at task
end (`standing.disprove`). Either way the demotion detector sees it like any other failure.

`undo_on_failure` undoes the action when a check fails, through the same undo a human uses
(engine/undo.py: a file put back from the content store only while it still holds what the action
wrote, a commit reverted through a draft), with the check as the undo's actor and `complaint=False`,
the failure being already counted as the check's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ratchet.engine.core import Setting
from ratchet.operations import Prepared
from ratchet.operations import checks as checking
from ratchet.operations.checks import CheckResult, Confinement
from ratchet.policy.model import ActionClass
from ratchet.record import actions, standing
from ratchet.record import checks as recorded
from ratchet.results import CheckView

EACH = "each"
TASK_END = "task_end"
PLACEHOLDERS = ("{path}", "{paths}")


# Tools whose actions always have file targets: none read means they could not be read.
TARGETED = ("write_file", "edit_file", "git_commit")


def unread(check: Sequence[str]) -> CheckResult:
    """The failed result of a check that names the action's targets when none could be read."""
    return CheckResult(tuple(check), False, None, False, 0.0, "the action's targets could not be read")


def uses_targets(check: Sequence[str]) -> bool:
    """Whether a check names the action's targets (`{path}` or `{paths}` anywhere in it)."""
    return any(p in arg for arg in check for p in PLACEHOLDERS)


def view(result: CheckResult | recorded.RecordedCheck) -> CheckView:
    """A check's result as the agent and the human see it."""
    return CheckView(
        argv=list(result.argv),
        passed=result.passed,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        duration_s=result.duration_s,
        tail="" if result.passed else result.tail,
        summary=result.summary(),
    )


def failure_text(results: Sequence[CheckResult | recorded.RecordedCheck]) -> str:
    """What the agent reads of the checks: one line each, and the output tail of each failing one."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return f"verified: {len(results)} check(s) passed" if results else ""
    lines = [f"verification FAILED ({len(failed)} of {len(results)} check(s)); this counts as a failure:"]
    for r in failed:
        lines.append(f"- {r.summary()}")
        if r.tail:
            lines.append("  --- output (end) ---\n" + "\n".join(f"  {line}" for line in r.tail.splitlines()[-20:]))
    return "\n".join(lines)


@dataclass
class TaskChecks:
    """What the checks at a task's end found: each action's results, and the actions now failures."""

    results: dict[int, list[CheckResult]] = field(default_factory=dict)
    failed_actions: list[int] = field(default_factory=list)
    moves: list[standing.Transition] = field(default_factory=list)

    def message(self) -> str:
        """What the agent reads when it ends its task."""
        if not self.results:
            return ""
        ran = [r for rs in self.results.values() for r in rs]
        if not self.failed_actions:
            return f"verified at task end: {len(ran)} check run(s) passed over {len(self.results)} action(s)"
        failed: list[CheckResult] = []
        for r in ran:
            if not r.passed and all(f.argv != r.argv for f in failed):
                failed.append(r)
        ids = ", ".join(str(i) for i in self.failed_actions)
        text = f"task-end checks failed; actions {ids} now count as failures.\n" + failure_text(failed)
        return text + "".join(f"\nClass {m.line()}" for m in self.moves)


class Verifier:
    """Runs a class's checks on its actions and records what they found."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting

    def confinement(self, cls: ActionClass) -> Confinement:
        """Where a check of this class may write and what it may reach: what an agent's command of the class gets."""
        return checking.confinement(self.setting.workspace, self.setting.policy.defaults.commands, cls)

    @staticmethod
    def wanted(cls: ActionClass) -> bool:
        """Whether this class's actions are checked right after they run."""
        return bool(cls.verify) and cls.verify_on == EACH

    async def each(self, cls: ActionClass, prepared: Prepared, action_id: int) -> list[CheckResult]:
        """Run the class's checks on an action that just executed (nothing for a class without `each` checks)."""
        if not self.wanted(cls):
            return []
        paths = list(prepared.subject.paths)
        checks = [c for c in cls.verify if paths or not uses_targets(c)]
        ran = await checking.run(
            checks, paths, self.confinement(cls), timeout_s=cls.verify_timeout_s, token=f"check-{action_id}"
        )
        if not paths and prepared.tool in TARGETED:
            # A commit whose paths could not be read: a check that names them cannot pass by being skipped.
            ran += [unread(c) for c in cls.verify if uses_targets(c)]
        return ran

    async def task_end(self, task_id: int) -> TaskChecks:
        """Run the `task_end` checks of every class over the task's executed actions of that class, record
        them, and turn the samples of the actions a check failed on into failures."""
        classes = self._task_end_classes()
        if not classes:
            return TaskChecks()
        rows = await self.setting.store.call(lambda c: recorded.task_actions(c, task_id, sorted(classes)))
        return await self._judge(classes, rows, f"check-task-{task_id}")

    async def unscoped(self, session_id: str) -> TaskChecks:
        """When a session ends: the `task_end` checks over its executed actions no task held (and no task-end
        check judged), so they are judged like a task's rather than left counted as successes."""
        classes = self._task_end_classes()
        if not classes:
            return TaskChecks()
        rows = await self.setting.store.call(lambda c: recorded.unscoped_actions(c, session_id, sorted(classes)))
        return await self._judge(classes, rows, f"check-session-{session_id}")

    def _task_end_classes(self) -> dict[str, ActionClass]:
        return {c.name: c for c in self.setting.policy.classes.values() if c.verify and c.verify_on == TASK_END}

    async def _judge(self, classes: dict[str, ActionClass], rows: list[dict[str, Any]], token: str) -> TaskChecks:
        """Run the `task_end` checks of each class over these actions of it, record them, and turn the samples
        of the actions a check failed on into failures."""
        s = self.setting
        found = TaskChecks()
        by_class: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_class.setdefault(str(row["class"]), []).append(row)
        for name, group in by_class.items():
            cls = classes[name]
            targets = {int(r["id"]): _paths(r) for r in group}
            rows_of = {int(r["id"]): r for r in group}
            everything = sorted({p for ps in targets.values() for p in ps})
            confinement = self.confinement(cls)
            timeout = cls.verify_timeout_s
            for aid in targets:
                if not targets[aid] and str(rows_of[aid].get("tool")) in TARGETED:
                    # its targets could not be read: a check that names them fails rather than being skipped
                    found.results.setdefault(aid, []).extend(unread(c) for c in cls.verify if uses_targets(c))
            for check in cls.verify:
                if "{path}" in "".join(check):  # once per target: it judges the actions that touched it
                    for path in everything:
                        ran = await checking.run([check], [path], confinement, timeout_s=timeout, token=token)
                        for aid, ps in targets.items():
                            if path in ps:
                                found.results.setdefault(aid, []).extend(ran)
                elif everything or not uses_targets(check):  # once over all of them: it judges them all
                    ran = await checking.run([check], everything, confinement, timeout_s=timeout, token=token)
                    for aid in targets:
                        found.results.setdefault(aid, []).extend(ran)
        rows_by_id = {int(r["id"]): r for r in rows}

        def record(conn: sqlite3.Connection) -> None:
            for aid, results in found.results.items():
                recorded.add(conn, aid, TASK_END, results)
                failed = [r for r in results if not r.passed]
                row = rows_by_id[aid]
                if not failed or row["sample"] in ("failure", "complained"):
                    continue
                found.failed_actions.append(aid)
                evidence = s.class_of(str(row["evidence_class"] or row["class"]))
                actions.sample(conn, aid, evidence.name, False, s.streak_session(str(row["session_id"])), mark=True)
                reason = "task-end check failed: " + "; ".join(r.summary() for r in failed)
                moved = standing.disprove(conn, evidence, aid, reason)
                if moved is not None:
                    found.moves.append(moved)

        await s.store.run(record)
        return found


def _paths(row: dict[str, Any]) -> list[str]:
    """An action's file targets, from its recorded subject (a write's path, a commit's changed paths)."""
    subject = json.loads(str(row["subject_json"] or "{}"))
    return [str(p) for p in subject.get("paths", [])]


__all__ = ["TaskChecks", "Verifier", "failure_text", "uses_targets", "view"]
