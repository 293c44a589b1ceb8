"""What waits for a person, and answering it one by one: `queue`, `show`, `inbox`, `resolve`."""

from __future__ import annotations

import argparse
import collections
import contextlib
from collections.abc import Sequence

from ratchet import shown_here, terminal
from ratchet.cli.common import (
    Add,
    action_filter,
    add_filters,
    emit,
    filtered_text,
    joined,
    jsonable,
    listed,
    opened,
)
from ratchet.engine import Engine, handoffs
from ratchet.engine import reviewer as delegated
from ratchet.errors import InvalidRequest, RatchetError


async def cmd_queue(args: argparse.Namespace) -> int:
    """List the drafts waiting for a human, oldest first (--by, --origin-workspace, --repo: only theirs;
    --class: only that class's). A class with many drafts waiting is shown as one group, with the one
    command that answers all of it."""
    async with opened(args) as engine:
        scope = await engine.checked_filter(action_filter(args))
        drafts = await engine.queue(scope)
        if args.cls is not None:
            engine.named(args.cls)  # an unknown class is an error naming the known ones
            drafts = [d for d in drafts if d.action_class == args.cls]
        _remember_shown(engine, {d.action_id: d.digest for d in drafts if d.digest})
        said = await engine.reviewer_verdicts([d.action_id for d in drafts])
    body = terminal.queue(drafts, grouped=args.cls is None) if drafts else ""
    if said or (drafts and engine.policy.reviewer is not None):  # each draft's pre-review (engine/reviewer.py)
        body += "\n" + "\n".join(f"#{d.action_id} {delegated.verdict_line(said.get(d.action_id))}" for d in drafts)
    emit(args, listed(scope, "drafts", drafts), lambda: filtered_text(scope, body, "no drafts waiting", "drafts"))
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    """Show one action or draft in full: class, rule, level, triggers, the change, and the outcome (a
    stopped action or handoff: its escalation packet and the options to answer it with)."""
    async with opened(args) as engine:
        d = await engine.view(args.id)
        packet = (await handoffs.get_handoff(engine, args.id)).packet if d.has_packet else None
        whole = await engine.whole_diff(args.id) if args.full and d.status == "draft" else None
        if d.digest:
            _remember_shown(engine, {d.action_id: d.digest})
    colour = terminal.colour_wanted()
    value = {**d.model_dump(mode="json"), "packet": packet.model_dump(mode="json") if packet else None}
    if args.full:
        value["whole"] = jsonable(whole)
    if whole is not None:
        d = d.model_copy(update={"preview": whole.text})

    def text() -> str:
        shown = terminal.packet(packet, colour) if packet else terminal.action(d, colour)
        if whole is not None:
            return joined(shown, "", whole.footer())
        if args.full and d.hidden_lines:
            return joined(shown, "", f"the whole change of action {d.action_id} is not kept once it is {d.status}")
        return shown

    emit(args, value, text)
    return 0


def _remember_shown(engine: Engine, digests: dict[int, str]) -> None:
    """Note what this CLI displayed, so `approve ID` approves that change (shown_here.py)."""
    shown_here.remember(shown_here.path_for(engine.location, engine.workspace.root), digests)


async def cmd_inbox(args: argparse.Namespace) -> int:
    """List everything waiting for a human: stopped actions and handoffs first, then drafts; oldest first
    (--by, --origin-workspace, --repo: only what those actions are)."""
    async with opened(args) as engine:
        scope = await engine.checked_filter(action_filter(args))
        items = await handoffs.inbox(engine, scope)
        tampers, found = await engine.tamper_records()
        said = await engine.reviewer_verdicts([i.id for i in items if i.kind == "draft"])

    def text() -> str:
        out = []
        if tampers:
            out.append(f"TAMPERING: {tampers} record(s) of standings changed outside Ratchet, not honoured; newest:")
            out += [f"  {line}" for line in found]
        # A flood of one class's drafts: its first few rows, then one line on how to answer it whole.
        counts = collections.Counter(i.action_class for i in items if i.kind == "draft")
        flooded = {name: n for name, n in counts.items() if n >= terminal.GROUP_AT}
        listed_of: collections.Counter[str] = collections.Counter()
        rows = []
        for i in items:
            if i.kind == "draft" and i.action_class in flooded:
                listed_of[i.action_class] += 1
                if listed_of[i.action_class] > terminal.GROUP_ROWS:
                    continue
            blocking = "BLOCKING " if i.blocking else ""
            verdict = said.get(i.id)  # a draft's pre-review (engine/reviewer.py)
            judged = f" [reviewer: {verdict['verdict']}]" if verdict is not None else ""
            rows.append([str(i.id), i.kind, i.action_class, f"{i.age_s:.0f}s", blocking + i.summary + judged])
        out += terminal.table(["ID", "KIND", "CLASS", "WAITING", "SUMMARY"], rows, numeric=[0, 3]) if items else []
        out += [
            f"... and {n - terminal.GROUP_ROWS} more drafts of {name} (`ratchet queue --class {name}` lists them; "
            f"`ratchet approve --class {name}` or `ratchet reject --class {name} --reason TEXT` answers them all)"
            for name, n in flooded.items()
        ]
        return filtered_text(scope, joined(*out), "inbox empty", "items of actions")

    emit(args, listed(scope, "items", items), text)
    return 0


def choose_option(given: str, names: Sequence[str]) -> str:
    """The packet option `given` names: its number (1-based, as `ratchet show` lists them), its name, or
    an unambiguous prefix of it (case ignored). InvalidRequest names the matches or the choices."""
    listed = ", ".join(f"{n}. {name}" for n, name in enumerate(names, 1))
    if given.isdigit():
        if 1 <= int(given) <= len(names):
            return names[int(given) - 1]
        raise InvalidRequest(f"--option {given} is not one of this packet's {len(names)} options: {listed}")
    if given in names:
        return given
    matches = [name for name in names if name.lower().startswith(given.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidRequest(f"--option {given!r} is ambiguous: it begins {', '.join(matches)}; type more of the name")
    raise InvalidRequest(
        f"unknown option {given!r}; this packet offers: {listed} (give the name, a prefix or the number)"
    )


async def cmd_resolve(args: argparse.Namespace) -> int:
    """Answer a stopped action or a handoff: --option (its number, name or a prefix of the name, from its
    packet) and/or --note TEXT, which the agent reads."""
    async with opened(args) as engine:
        option, packet = args.option, None
        if option is not None:
            with contextlib.suppress(RatchetError):  # not an escalation: resolve says what it is instead
                packet = (await handoffs.get_handoff(engine, args.id)).packet
        if option is not None and packet is not None:
            option = choose_option(option, [o.name for o in packet.options])
        view = await handoffs.resolve(engine, args.id, option, args.note)
    emit(args, view, lambda: handoffs.answered_line(view))
    return 0


def add_queue(add: Add) -> None:
    p = add("queue", cmd_queue, json_flag=True, what="the drafts")
    add_filters(p)
    p.add_argument("--class", dest="cls", metavar="CLASS", help="only the drafts of this class, every one listed")


def add_show(add: Add) -> None:
    p = add("show", cmd_show, json_flag=True, what="the action and its packet")
    p.add_argument("id", type=int, help="action or draft id")
    p.add_argument(
        "--full",
        action="store_true",
        help="a queued draft's whole diff, however long (the preview stops at 2,000 lines or 200 KB), and the "
        "digest that approves exactly it",
    )


def add_inbox(add: Add) -> None:
    p = add("inbox", cmd_inbox, json_flag=True, what="the items")
    add_filters(p)


def add_resolve(add: Add) -> None:
    p = add("resolve", cmd_resolve, json_flag=True, what="the answer as recorded")
    p.add_argument("id", type=int, help="a stopped action or handoff id (see `ratchet inbox`)")
    p.add_argument(
        "--option", help="one of its packet's options: the number `ratchet show ID` lists, the name, or a prefix of it"
    )
    p.add_argument("--note", help="what the agent should know or do")
