"""`ratchet simulate --reviewer`: the recorded history replayed as if the policy's reviewer had held the
authority it would have earned, using the verdicts it recorded beside people's answers (the dry run before
trusting it). Writes nothing.

In recording order, per class: the reviewer's score grows from each verdict beside a person's answer; while
it would have held authority (rules/reviewer.py `authority`, the candidate policy's threshold and minimum) on
a class it may decide (`eligible`: a `confirm` call), a call it approved would have run without asking the
person, except every `1 / audit_share`-th one, an audit, which still asks. A call it would have run that the
person refused, complained about or undid is a bad action run: authority is lost there, and the score
restarts. Assumptions: the person's recorded answer stands for what they would have said; the reviewer's
recorded verdict stands for what it would have said; calls it never judged keep their recorded route.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratchet.errors import InvalidRequest
from ratchet.policy.load import load_policy
from ratchet.policy.model import Policy
from ratchet.record import reviewer as recorded
from ratchet.record.store import Location, Store
from ratchet.rules import reviewer as rules


@dataclass
class ClassReplay:
    """One class's replay."""

    judged: int = 0
    prompts_saved: int = 0
    audits: int = 0
    bad_runs: int = 0
    gained_at: list[int] = field(default_factory=list)
    lost_at: list[int] = field(default_factory=list)


@dataclass
class ReviewerReplay:
    """The replay's figures, per class and in all."""

    configured: bool
    classes: dict[str, ClassReplay] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"configured": self.configured, "classes": {k: vars(v) for k, v in self.classes.items()}}

    def render(self) -> str:
        """For a terminal."""
        if not self.configured:
            return "reviewer replay: the candidate policy has no [reviewer] table"
        saved = sum(c.prompts_saved for c in self.classes.values())
        bad = sum(c.bad_runs for c in self.classes.values())
        judged = sum(c.judged for c in self.classes.values())
        lines = [
            f"reviewer replay: of {judged} judged actions, {saved} would have run without asking a person; "
            f"{bad} of those the person refused or complained about"
        ]
        for name, c in sorted(self.classes.items()):
            gained = f", authority from action {c.gained_at[0]}" if c.gained_at else ", never gained authority"
            lost = f", lost at {', '.join(map(str, c.lost_at))}" if c.lost_at else ""
            lines.append(
                f"  {name}: {c.judged} judged, {c.prompts_saved} prompts saved, {c.audits} audits, "
                f"{c.bad_runs} bad runs{gained}{lost}"
            )
        return "\n".join(lines)


def replay(rows: list[dict[str, Any]], policy: Policy) -> ReviewerReplay:
    """Replay recorded verdicts under `policy`'s reviewer (see the module docstring)."""
    spec = policy.reviewer
    if spec is None:
        return ReviewerReplay(False)
    out = ReviewerReplay(True)
    pairs: dict[str, list[rules.Pair]] = {}
    approvals_run: dict[str, int] = {}
    every = math.inf if spec.audit_share <= 0 else max(1, round(1 / spec.audit_share))
    for row in rows:
        name = row["class"]
        cls = policy.get(name) or policy.unclassified
        c = out.classes.setdefault(name, ClassReplay())
        c.judged += 1
        ok = recorded.person_ok(row)
        standing = rules.authority(
            rules.Tally.of(pairs.get(name, [])), spec.threshold, spec.min_samples, spec.min_agreement
        )
        may = rules.eligible(
            reviewer_allowed=cls.reviewer and not cls.secret,
            cli_only=cls.require_cli_approval,
            secret=cls.secret,
            level=row["level"],
            class_level=row["level"],
            ceiling=cls.ceiling.label,
            steered=False,
        )
        held = spec.authority and standing.holds and may is None
        if held and (not c.gained_at or (c.lost_at and c.lost_at[-1] > c.gained_at[-1])):
            c.gained_at.append(int(row["action_id"]))
        if held and row["verdict"] == rules.APPROVE:
            approvals_run[name] = approvals_run.get(name, 0) + 1
            if approvals_run[name] % every == 0:
                c.audits += 1  # asked anyway: the person's answer stands
            else:
                c.prompts_saved += 1
                if ok is False:
                    c.bad_runs += 1
                    c.lost_at.append(int(row["action_id"]))
                    pairs[name] = []  # authority lost at once; the score restarts
                    continue
        if ok is not None:
            pairs.setdefault(name, []).append(rules.Pair(row["verdict"], ok))
    return out


async def replay_recorded(store: Store, policy: Policy, since: float | None = None) -> ReviewerReplay:
    """`replay` over the record in `store`."""
    rows = await store.call(lambda conn: recorded.replay_rows(conn, since))
    return replay(rows, policy)


async def replay_candidate(db: Location, candidate_dir: Path) -> ReviewerReplay:
    """Load the candidate policy (fail closed) and replay the record at `db` under its reviewer; the record is
    opened as a `Store`, not an engine, so nothing is synced or written."""
    policy = load_policy(candidate_dir)
    if isinstance(db, Path) and not db.exists():
        raise InvalidRequest(f"no trust database at {db}: there is no history to replay")
    store = await Store.open(db)
    try:
        return await replay_recorded(store, policy)
    finally:
        await store.close()
