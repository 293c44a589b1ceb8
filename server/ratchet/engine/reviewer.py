"""The delegated reviewer on a call's life: shadow verdicts beside people's answers, and authority per class.

The rules are rules/reviewer.py's, the runner executors/reviewer.py's, the record record/reviewer.py's; this
module ties them to the engine, with one call line in each place a person's decision passes:

- `shadow(setting, action_id)`: after a person decided an action (CLI, review page, dialog) or a draft was
  queued, the reviewer judges it off the call's path: a detached process (`python -m ratchet.engine.shadow`)
  runs it and records the verdict beside the person's answer; nobody waits for it.
- `consult(setting, ev, key, intent)`: on a `confirm` call, before the person is asked. Only where the class's
  reviewer holds authority (rules/reviewer.py `authority`) and may decide the call (`eligible`): the reviewer
  runs (with its timeout), and an approval returns the answer the call runs on, unless the call is drawn for
  an audit (then the person is asked, unannounced). A denial or `unsure` returns None: the person is asked
  exactly as without a reviewer.
- `granted(setting, key)`: the answer `consult` gave, taken once by the call that carries it out.
- `settled(setting, key, action_id, asked)`: after the call is recorded, its verdict is recorded beside it (an
  audit's beside the person's answer), or, for a call a person answered without the reviewer, a shadow verdict
  is started.
- `complained(conn, setting, action_id)`: a complaint or undo of an action the reviewer approved takes the
  class's authority away at once, and says so.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratchet.engine.core import Evaluation, HumanAnswer, Setting
from ratchet.operations import notify, workspace_problem
from ratchet.operations.review import review
from ratchet.policy.model import ActionClass, Policy
from ratchet.policy.reviewer import ReviewerSpec
from ratchet.record import actions
from ratchet.record import reviewer as recorded
from ratchet.redact import redact
from ratchet.rules import provenance
from ratchet.rules import reviewer as rules

log = logging.getLogger("ratchet")
WORKER_ENV = "RATCHET_REVIEWER_SHADOW"  # set in the detached process that judges one action


def configured(policy: Policy) -> ReviewerSpec | None:
    """The policy's reviewer, or None."""
    return policy.reviewer


def judges(policy: Policy, cls: ActionClass) -> bool:
    """Whether the reviewer may see the class's actions at all (`reviewer = false` and secrets: never)."""
    return policy.reviewer is not None and cls.reviewer and not cls.secret


def name_of(spec: ReviewerSpec) -> str:
    """How the record names a reviewer: its adapter and executable."""
    return f"{spec.adapter}:{Path(spec.argv0[0]).name}"


def command_problem(spec: ReviewerSpec | None, workspace: Path) -> str | None:
    """Why the reviewer's command may not run (it is, or names, a file inside the workspace the agent can
    rewrite), or None."""
    if spec is None:
        return None
    problem = workspace_problem(spec.argv0, [workspace])
    return None if problem is None else "the reviewer command" + problem.removeprefix("notify")


# -- the request -------------------------------------------------------------------------------------------


def change_of_row(policy: Policy, row: dict[str, Any], goal: str | None) -> rules.Change:
    """The request's view of a recorded action."""
    cls = policy.get(row["evidence_class"] or row["class"]) or policy.unclassified
    try:
        subject = json.loads(row["subject_json"] or "{}")
        triggers = json.loads(row["triggers_json"] or "[]")
    except ValueError:
        subject, triggers = {}, []
    return rules.Change(
        action_class=row["class"],
        rule=row["rule"],
        class_level=row["class_level"],
        level=row["level"],
        ceiling=cls.ceiling.label,
        tool=row["tool"],
        target=row["target"],
        preview=row["preview"],
        subject=subject if isinstance(subject, dict) else {},
        triggers=tuple(t for t in triggers if isinstance(t, dict)),
        goal=goal,
        intent=row["intent"],
        action_id=int(row["id"]),
    )


def change_of(ev: Evaluation, intent: str | None, goal: str | None) -> rules.Change:
    """The request's view of a call being decided."""
    d, p = ev.decision, ev.prepared
    return rules.Change(
        action_class=d.class_name,
        rule=d.rule,
        class_level=d.class_level.label,
        level=d.level.label,
        ceiling=ev.cls.ceiling.label,
        tool=p.tool,
        target=p.target,
        preview=p.shown,
        subject=p.subject.as_dict(),
        triggers=tuple(t.as_dict() for t in d.triggers),
        goal=goal,
        intent=intent,
    )


# -- shadow ------------------------------------------------------------------------------------------------


def shadow(setting: Setting, action_id: int, cls: ActionClass | None = None) -> None:
    """Start the reviewer on a decided (or queued) action of `cls` (when known), off the call's path. Never
    raises. Nothing starts for a class the reviewer never sees."""
    if setting.policy.reviewer is None or os.environ.get(WORKER_ENV):
        return
    if cls is not None and not judges(setting.policy, cls):
        return
    if command_problem(setting.policy.reviewer, setting.workspace.root) is not None:
        return
    env = {**os.environ, WORKER_ENV: "1", "RATCHET_DB": str(setting.store.path)}
    argv = [
        sys.executable,
        "-m",
        "ratchet.engine.shadow",
        str(setting.workspace.root),
        str(setting.policy.directory),
        str(action_id),
    ]
    try:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # nobody waits for it, and it outlives a CLI that exits
        )
    except OSError as exc:
        log.warning("ratchet: the reviewer's shadow verdict on action %s was not started: %s", action_id, exc)


async def judge_recorded(setting: Setting, action_id: int) -> rules.Verdict | None:
    """Run the reviewer on one recorded action and keep its verdict (the detached process's work). None when
    there is no reviewer, the class keeps it away, or the action has a verdict already."""
    spec = setting.policy.reviewer
    row = await setting.store.call(lambda c: actions.action(c, action_id))
    if spec is None or row is None:
        return None
    cls = setting.class_of(row["evidence_class"] or row["class"])
    if not judges(setting.policy, cls):
        return None
    if await setting.store.call(lambda c: recorded.verdict_of(c, action_id)) is not None:
        return None
    task = row["task_id"]
    goal = None if task is None else await setting.store.call(lambda c: recorded.task_goal(c, int(task)))
    request = rules.build_request(change_of_row(setting.policy, row, goal))
    done = await review(spec, request)
    role = rules.DRAFT if row["status"] == "draft" else rules.SHADOW

    def keep(conn: sqlite3.Connection) -> None:
        recorded.add_verdict(conn, action_id, cls.name, role, done.verdict, done.seconds, name_of(spec))
        restand(conn, setting, cls, action_id)

    await setting.store.run(keep)
    return done.verdict


# -- authority ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consulted:
    """What the reviewer said on a call it was consulted on, and the role its verdict plays."""

    verdict: rules.Verdict
    seconds: float
    role: str
    reviewer: str
    at: float = 0.0  # when it was given (monotonic)


# Verdicts given on calls not yet recorded, by session and question key (rules/provenance.py), per engine
# process; one is reused only by the rounds of the same call, within REUSE_S seconds.
_pending: dict[str, Consulted] = {}
REUSE_S = 600.0


def holds(conn: sqlite3.Connection, spec: ReviewerSpec, cls: ActionClass) -> rules.Authority:
    """Whether the class's reviewer holds authority now (from its score since its last loss)."""
    if not spec.authority:
        return rules.Authority(False, "the policy's reviewer has authority = false (shadow only)")
    tally = recorded.class_tally(conn, cls.name)
    return rules.authority(tally, spec.threshold, spec.min_samples, spec.min_agreement)


def why_not(setting: Setting, ev: Evaluation) -> str | None:
    """Why the reviewer may not decide this call in the person's place (None: it may, given authority)."""
    d = ev.decision
    cls = ev.evidence
    return rules.eligible(
        reviewer_allowed=cls.reviewer and ev.cls.reviewer,
        cli_only=cls.require_cli_approval or ev.cls.require_cli_approval,
        secret=cls.secret or ev.cls.secret,
        level=d.level.label,
        class_level=d.class_level.label,
        ceiling=min(cls.ceiling, ev.cls.ceiling).label,
        steered=any(t.name == rules.STEERING_TRIGGER for t in d.triggers),
    )


async def consult(setting: Setting, ev: Evaluation, key: str, intent: str | None) -> HumanAnswer | None:
    """On a `confirm` call: the reviewer's approval in the person's place, or None (ask the person).

    See the module docstring. A verdict given on an earlier round of the same call is reused."""
    spec = setting.policy.reviewer
    if spec is None or not spec.authority or why_not(setting, ev) is not None:
        return None
    if command_problem(spec, setting.workspace.root) is not None:
        return None
    key = f"{setting.session_id}:{key}"
    cls = ev.evidence
    standing = await setting.store.call(lambda c: holds(c, spec, cls))
    if not standing.holds:  # judged anew on every round: a verdict never outlives the authority it was given on
        _pending.pop(key, None)
        return None
    earlier = _pending.get(key)
    if earlier is not None and time.monotonic() - earlier.at > REUSE_S:
        earlier = None  # a call that never settled: its verdict is not reused for a later one
    if earlier is None:
        task = ev.task_id
        goal = None if task is None else await setting.store.call(lambda c: recorded.task_goal(c, task))
        request = rules.build_request(change_of(ev, intent and redact(intent), goal and redact(goal)))
        if request["flags"]:
            return None  # the change addresses its reviewer: the person sees it, flagged
        done = await review(spec, request)
        role = rules.SHADOW
        if done.verdict.approved:
            role = (
                rules.AUDIT
                if rules.audit_due(secrets.randbelow(1_000_000) / 1_000_000, spec.audit_share)
                else (rules.AUTHORITY)
            )
        earlier = _pending[key] = Consulted(done.verdict, done.seconds, role, name_of(spec), time.monotonic())
    if earlier.role != rules.AUTHORITY:
        return None
    return HumanAnswer(
        True,
        provenance.REVIEWER,
        earlier.verdict.reason or None,
        earlier.seconds,
        channel=provenance.REVIEWER,
        evidence=provenance.UNVERIFIED,
        identity=earlier.reviewer,
    )


def granted(setting: Setting, key: str) -> HumanAnswer | None:
    """The approval `consult` gave on this call, if it did (the call then runs without asking)."""
    found = _pending.get(f"{setting.session_id}:{key}")
    if found is None or found.role != rules.AUTHORITY:
        return None
    return HumanAnswer(
        True,
        provenance.REVIEWER,
        found.verdict.reason or None,
        found.seconds,
        channel=provenance.REVIEWER,
        evidence=provenance.UNVERIFIED,
        identity=found.reviewer,
    )


async def settled(setting: Setting, key: str, action_id: int, asked: bool) -> None:
    """After a call is recorded: keep the verdict the reviewer gave on it; or, where a person answered it
    without the reviewer, start a shadow verdict."""
    found = _pending.pop(f"{setting.session_id}:{key}", None)
    if found is None:
        if asked:
            shadow(setting, action_id)
        return
    row = await setting.store.call(lambda c: actions.action(c, action_id))
    if row is None:
        return
    cls = setting.class_of(row["evidence_class"] or row["class"])

    def keep(conn: sqlite3.Connection) -> None:
        recorded.add_verdict(conn, action_id, cls.name, found.role, found.verdict, found.seconds, found.reviewer)
        restand(conn, setting, cls, action_id)

    await setting.store.run(keep)


def restand(conn: sqlite3.Connection, setting: Setting, cls: ActionClass, action_id: int | None) -> None:
    """Record (and announce) a class's reviewer gaining or losing authority after its score changed."""
    spec = setting.policy.reviewer
    if spec is None or not spec.authority:
        return
    now = holds(conn, spec, cls)
    last = recorded.last_event(conn, cls.name)
    held = last is not None and last["kind"] == recorded.GAINED
    if now.holds and not held:
        recorded.add_event(conn, cls.name, recorded.GAINED, now.why, action_id)
        _announce(setting, cls.name, recorded.GAINED, now.why, action_id)
    elif held and not now.holds:
        why = f"disagreement with people took it below its bars: {now.why}"
        recorded.add_event(conn, cls.name, recorded.LOST, why, action_id)
        _announce(setting, cls.name, recorded.LOST, why, action_id)


def complained(conn: sqlite3.Connection, setting: Setting, cls: ActionClass, action_id: int) -> None:
    """A complaint or undo of an action: where the reviewer approved it in the person's place, the class's
    reviewer loses authority at once (its score restarts); otherwise its score is judged again."""
    if recorded.approved_by_reviewer(conn, action_id):
        why = f"a person complained about (or undid) action {action_id}, which the reviewer approved"
        recorded.add_event(conn, cls.name, recorded.LOST, why, action_id)
        _announce(setting, cls.name, recorded.LOST, why, action_id)
        return
    if recorded.verdict_of(conn, action_id) is not None:
        restand(conn, setting, cls, action_id)


def _announce(setting: Setting, action_class: str, kind: str, why: str, action_id: int | None) -> None:
    defaults = setting.policy.defaults
    notify(
        defaults.notify,
        defaults.limits.notifications_per_minute,
        {"event": f"reviewer-authority-{kind}", "class": action_class, "reason": why, "id": action_id},
    )
    log.warning("ratchet: the reviewer %s authority on class %s: %s", kind, action_class, why)


# -- what people see ---------------------------------------------------------------------------------------


def summary(conn: sqlite3.Connection, policy: Policy) -> dict[str, Any]:
    """The reviewer's standing, JSON-ready: configured or not, per class and overall score, authority."""
    spec = policy.reviewer
    if spec is None:
        return {"configured": False}
    found = recorded.score(conn)
    classes: dict[str, Any] = {}
    for name in sorted(set(policy.classes) | set(found.total)):
        cls = policy.get(name) or policy.unclassified
        current = found.current.get(name, rules.Tally())
        if not judges(policy, cls):
            standing = rules.Authority(False, "the class keeps the reviewer away (reviewer = false or secret)")
        elif cls.require_cli_approval:
            standing = rules.Authority(False, "the class is approved at the CLI only")
        elif not spec.authority:
            standing = rules.Authority(False, "shadow only (authority = false)")
        else:
            standing = rules.authority(current, spec.threshold, spec.min_samples, spec.min_agreement)
        total = found.total.get(name, rules.Tally())
        if total.n == 0 and not standing.holds and name not in found.lost_at:
            classes[name] = {"authority": False, "why": standing.why, "n": 0}
            continue
        classes[name] = {
            "authority": standing.holds,
            "why": standing.why,
            "current": current.as_dict(),
            "total": total.as_dict(),
            "line": total.line(),
        }
    overall = found.overall()
    grades: dict[str, dict[str, int]] = {}
    for g in recorded.grade_rows(conn):
        who = rules.vouched_by(route=g["route"], channel=g["review_channel"], evidence=g["evidence"])
        per = grades.setdefault(str(g["class"]), {})
        per[who] = per.get(who, 0) + int(g["n"])
    for name, per in grades.items():
        if name in classes:
            classes[name]["vouched_by"] = per
    return {
        "configured": True,
        "reviewer": name_of(spec),
        "threshold": spec.threshold,
        "min_samples": spec.min_samples,
        "audit_share": spec.audit_share,
        "overall": overall.as_dict(),
        "overall_line": overall.line(),
        "classes": classes,
        "roles": recorded.counts_by_role(conn),
        "events": recorded.events(conn, 10),
    }


def render(found: dict[str, Any]) -> str:
    """The reviewer's standing for a terminal."""
    if not found.get("configured"):
        return "reviewer: none configured ([reviewer] in the policy directory)"
    ran = sum(n for k, n in found["roles"].items() if k == "authority:approve")
    refused = [f"  NOT RUN: {found['refused']}"] if found.get("refused") else []
    lines = [
        f"reviewer: {found['reviewer']} (authority when the false-accept upper bound < {found['threshold']:.0%} "
        f"over >= {found['min_samples']} approvals; audit share {found['audit_share']:.0%}); "
        f"{ran} calls ran on its approval",
        *refused,
        f"  overall: {found['overall_line']}",
    ]
    for name, c in found["classes"].items():
        if c.get("n") == 0:
            continue
        mark = "AUTHORITY" if c["authority"] else "shadow"
        vouched = ", ".join(f"{n} {who}" for who, n in sorted(c.get("vouched_by", {}).items()))
        lines.append(f"  {name}: {mark} ({c['why']}); {c['line']}" + (f"; vouched by {vouched}" if vouched else ""))
    for e in found["events"][:3]:
        lines.append(f"  {e['kind']} authority on {e['class']}: {e['reason']}")
    return "\n".join(lines)


def about(conn: sqlite3.Connection, action_id: int) -> dict[str, Any] | None:
    """What the reviewer said on one action and who vouched for its outcome, JSON-ready (None: no action)."""
    row = actions.action(conn, action_id)
    if row is None:
        return None
    grade = rules.vouched_by(
        route=row["route"],
        channel=row["review_channel"],
        evidence=row["evidence"],
        checked_failure=recorded.check_failed(conn, action_id),
    )
    return {"verdict": recorded.verdict_of(conn, action_id), "vouched_by": grade}


def about_lines(found: dict[str, Any] | None) -> list[str]:
    """`about` for a terminal."""
    if found is None:
        return []
    v = found["verdict"]
    lines = []
    if v is not None:
        why = v["reason"] or v["error"] or ""
        lines.append(f"reviewer: {v['verdict']} (risk {v['risk']}, {v['role']}, {v['reviewer']}): {why}".rstrip(": "))
    lines.append(f"vouched by: {found['vouched_by']}")
    return lines


async def verdicts(setting: Setting, action_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The verdicts on these actions (drafts in a queue), by id."""
    return await setting.store.call(lambda c: recorded.verdicts_of(c, action_ids))


def verdict_line(v: dict[str, Any] | None) -> str:
    """One line on a draft's pre-review, for a queue."""
    if v is None:
        return "reviewer: not judged yet"
    return f"reviewer: {v['verdict']} (risk {v['risk']}): {v['reason'] or v['error'] or ''}".rstrip(": ")


async def standing(setting: Setting) -> dict[str, Any]:
    """`summary` for this engine's record and policy, and why the reviewer may not run here, if so."""
    policy = setting.policy
    found = await setting.store.call(lambda c: summary(c, policy))
    if found["configured"]:
        found["refused"] = command_problem(policy.reviewer, setting.workspace.root)
    return found


__all__ = [
    "Consulted",
    "change_of",
    "change_of_row",
    "complained",
    "configured",
    "consult",
    "granted",
    "judge_recorded",
    "render",
    "settled",
    "shadow",
    "standing",
    "summary",
]
