"""`ratchet approve` and `ratchet reject`: drafts answered by id or by class, each id's outcome reported."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from ratchet import shown_here, terminal
from ratchet.cli.common import (
    Add,
    emit,
    joined,
    opened,
)
from ratchet.engine import Engine
from ratchet.engine.whole import needs_whole
from ratchet.errors import InvalidRequest, RatchetError, UsageError
from ratchet.results import DraftView


@dataclasses.dataclass
class Outcome:
    """What one id of a batch came to: `ok`, the draft as it now stands, or the error that stopped it."""

    id: int
    ok: bool
    status: str | None
    error: str | None
    draft: DraftView | None = None

    def line(self) -> str:
        """`draft 96: executed`, or why not."""
        if self.draft is None:
            return f"draft {self.id}: not done: {self.error}"
        if self.draft.waiting:  # approved here, run by its origin
            return f"draft {self.id}: {self.draft.waiting}"
        ran = f"draft {self.id}: {self.status}" + (f" ({self.error})" if self.error else "")
        return joined(ran, *(f"  {line}" for line in terminal.command_output(self.draft.result)))


async def _drafts_to_review(engine: Engine, args: argparse.Namespace, verb: str) -> list[int]:
    """The ids `approve`/`reject` act on: those given, or every queued draft of --all-from CLASS once
    the human confirms (on a terminal; elsewhere --yes says so)."""
    if not args.all_from:
        return list(args.ids)
    known = {*engine.policy.classes, engine.policy.unclassified.name}
    if args.all_from not in known:
        raise InvalidRequest(f"unknown class {args.all_from!r}; expected one of: {', '.join(sorted(known))}")
    ids = [d.action_id for d in await engine.queue() if d.action_class == args.all_from]
    if getattr(args, "reviewer_approved", False):  # only what the reviewer approved (engine/reviewer.py)
        said = await engine.reviewer_verdicts(ids)
        ids = [i for i in ids if said.get(i, {}).get("verdict") == "approve"]
    if ids and not args.yes:
        # The question goes to stderr, so stdout stays the outcomes (JSON with --json).
        whole = " (one decision: they run, but are not evidence of reading each)" if verb == "approve" else ""
        named = ", ".join(map(str, ids))
        prompt = f"{verb} {len(ids)} queued draft(s) of class {args.all_from} ({named}){whole}? [y/N] "
        print(prompt, end="", file=sys.stderr, flush=True)
        answer = await anyio.to_thread.run_sync(sys.stdin.readline)
        if answer.strip().lower() not in ("y", "yes"):
            return []
    return ids


def _check_batch(args: argparse.Namespace) -> None:
    """Ids or --all-from, not both and not neither (`approve --pending` alone is enough); --all-from off a
    terminal only with --yes."""
    if bool(args.ids) == bool(args.all_from) and not (getattr(args, "pending", False) and not args.ids):
        raise UsageError("give draft ids, or --class CLASS (not both)")
    if args.all_from and not args.yes and not sys.stdin.isatty():
        raise UsageError("--class asks for confirmation on a terminal; from a script pass --yes")


async def _each(ids: Sequence[int], act: Callable[[int], Awaitable[DraftView]], done: str, *also: str) -> list[Outcome]:
    """Act on every id in turn; one that fails is reported and the rest still run. A single id's error
    is raised as it is (one line, as every error)."""
    outcomes = []
    for action_id in ids:
        try:
            d = await act(action_id)
        except RatchetError as exc:
            if len(ids) == 1:
                raise
            outcomes.append(Outcome(action_id, False, None, str(exc)))
            continue
        outcomes.append(Outcome(action_id, d.status in (done, *also), d.status, d.error, d))
    return outcomes


def _batch_result(args: argparse.Namespace, outcomes: Sequence[Outcome], done: str, note: str | None = None) -> int:
    """Report every outcome (and `note` after them, for a person); exit 1 (with one line on stderr) when any
    id was not `done`."""
    emit(
        args,
        outcomes,
        lambda: joined(*(o.line() for o in outcomes), *([note] if note else [])) if outcomes else f"no drafts {done}",
    )
    failed = [o.id for o in outcomes if not o.ok]
    if failed and len(outcomes) > 1:
        raise RatchetError(f"{len(failed)} of {len(outcomes)} drafts not {done}: {', '.join(map(str, failed))}")
    return 1 if failed else 0


async def cmd_approve(args: argparse.Namespace) -> int:
    """Run queued drafts now, each exactly as drafted and at most once; each id's outcome is reported and
    one that fails does not stop the rest. --content FILE approves one draft with your edit instead.

    A draft queued on another machine or workspace of a shared record is approved here and run by its
    origin (it stays `approved` until then). On a draft's origin, every `ratchet approve` first runs the
    drafts approved elsewhere for this host and workspace; `--pending` does only that."""
    _check_batch(args)
    bulk = "bulk" if args.all_from else None  # one decision for a class: rules/provenance.py
    if args.content and len(args.ids) != 1:
        raise UsageError("--content applies to exactly one draft id")
    if args.whole and (len(args.ids) != 1 or args.content):
        raise UsageError("--whole applies to exactly one draft id, approved as drafted (not with --content)")
    if args.expect and (len(args.ids) != 1 or args.all_from):
        raise UsageError("--expect applies to exactly one draft id: ratchet approve ID --expect DIGEST")
    content = Path(args.content).read_text(encoding="utf-8") if args.content else None
    if args.watch:
        if not args.pending or args.ids or args.all_from:
            raise UsageError("--watch goes with --pending alone: ratchet approve --pending --watch")
        return await _watch_pending(args)
    async with opened(args) as engine:
        # Reported as they came out; the human's own ids decide the exit code.
        carried = [Outcome(d.action_id, True, d.status, d.error, d) for d in await engine.carry_approved()]
        ids = await _drafts_to_review(engine, args, "approve")

        seen = shown_here.path_for(engine.location, engine.workspace.root)

        async def approve(action_id: int) -> DraftView:
            # The change the person was shown: --expect, else what `show` or `queue` displayed here.
            expect = args.expect or shown_here.recall(seen, action_id)
            whole = args.whole or await _read_whole(engine, args, action_id, content)
            return await engine.approve(
                action_id, content=content, note=args.note, channel=bulk, expect=expect, whole=whole
            )

        outcomes = await _each(ids, approve, "executed", "approved")
    note = BULK_NOTE.format(cls=args.all_from) if bulk and outcomes else None
    return _batch_result(args, [*carried, *outcomes], "approved", note)


BULK_NOTE = (
    "approved by class: one decision for every draft of {cls}; they ran, but they are not evidence that a "
    "person read each one, so none counts toward promoting {cls} (`ratchet approve ID` one by one does)"
)


async def _read_whole(engine: Engine, args: argparse.Namespace, action_id: int, content: str | None) -> str | None:
    """For a draft whose preview was cut (engine/whole.py): on a terminal, its whole diff printed and the
    question whether to approve exactly that; the digest when the person says yes. Anywhere else None (the
    approval then says how to read it whole)."""
    row = await engine.row(action_id)
    if content is not None or args.all_from or row is None or not needs_whole(row, engine.here):
        return None
    if args.json or not sys.stdin.isatty():
        return None
    whole = await engine.whole_diff(action_id)
    print(terminal.diff(whole.text.rstrip("\n"), terminal.colour_wanted()), flush=True)
    question = (
        f"draft {action_id}'s preview showed only part of this: above is its whole diff, {whole.lines} lines. "
        "Approve exactly this? [y/N] "
    )
    print(question, end="", file=sys.stderr, flush=True)
    answer = await anyio.to_thread.run_sync(sys.stdin.readline)
    return whole.digest if answer.strip().lower() in ("y", "yes") else None


async def _watch_pending(args: argparse.Namespace) -> int:
    """Carry out this origin's approvals as they arrive, until interrupted: what a running `ratchet serve`
    does, for an agent-side server whose database role may not (record/roles.py)."""
    async with opened(args) as engine:
        engine.reviewer_side("carry out approved drafts")
        print(f"carrying out the drafts approved for {engine.here}; Ctrl-C stops", file=sys.stderr, flush=True)
        async with engine.carrying_out():
            await anyio.sleep_forever()
    return 0


async def cmd_reject(args: argparse.Namespace) -> int:
    """Reject queued drafts: nothing runs, and each class's window records a failure; each id's outcome is
    reported and one that fails does not stop the rest."""
    _check_batch(args)
    async with opened(args) as engine:
        ids = await _drafts_to_review(engine, args, "reject")
        bulk = "bulk" if args.all_from else None  # counted: a rejection can only lower a class
        outcomes = await _each(ids, lambda i: engine.reject(i, args.reason, channel=bulk), "rejected")
    return _batch_result(args, outcomes, "rejected")


def add_batch(p: argparse.ArgumentParser, verb: str) -> None:
    """The ids, or --class/--all-from with --yes: what `approve` and `reject` act on."""
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help=f"the draft ids to {verb} (see `ratchet queue`)")
    p.add_argument(
        "--class",
        "--all-from",
        dest="all_from",
        metavar="CLASS",
        help=f"{verb} every queued draft of this class in one decision (asks first on a terminal)"
        + ("; approvals so given run but are not evidence of reading" if verb == "approve" else ""),
    )
    p.add_argument("--yes", action="store_true", help="do not ask before --all-from (needed off a terminal)")


def add_approve(add: Add) -> None:
    p = add("approve", cmd_approve, json_flag=True, what="each draft's outcome")
    add_batch(p, "approve")
    p.add_argument(
        "--reviewer-approved",
        action="store_true",
        help="with --class: only the drafts the policy's reviewer approved (see `ratchet queue`)",
    )
    p.add_argument("--content", metavar="FILE", help="approve with this file's text instead (one id; counts as rework)")
    p.add_argument("--note", help="a note kept with the review")
    p.add_argument(
        "--expect",
        metavar="DIGEST",
        help="the digest `ratchet show` displayed (one id): refused if the draft changed since (default: the "
        "digest show or queue last displayed here, if any)",
    )
    p.add_argument(
        "--whole",
        metavar="DIGEST",
        help="approve a draft whose preview was cut: the digest `ratchet show ID --full` printed with its whole "
        "diff (on a terminal, approve shows the whole diff and asks instead)",
    )
    p.add_argument(
        "--pending",
        action="store_true",
        help="run the drafts approved on other machines whose origin is this host and workspace (alone: only that)",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="with --pending: keep running them as they are approved, until interrupted (for an agent-side "
        "server whose database role may not; see `ratchet db roles`)",
    )


def add_reject(add: Add) -> None:
    p = add("reject", cmd_reject, json_flag=True, what="each draft's outcome")
    add_batch(p, "reject")
    p.add_argument("--reason", required=True, help="why the drafts are wrong (kept with each review)")
