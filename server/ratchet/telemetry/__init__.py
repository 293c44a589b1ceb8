"""OpenTelemetry for the gate's decisions: the one small interface the engine calls, a no-op when off.

Each decision (a call the gate let run, asked about, queued or blocked; a person's or a client's answer
to one; a call refused before it was classified) becomes a `run_guardrail ratchet` span following the
GenAI semantic conventions for guardrails, and counts in Ratchet's metrics (decisions by route, human
wait time, promotions and demotions). docs/observability.md lists every attribute and metric.

It is configured by the standard `OTEL_*` environment variables alone, and it is on only when they
ask for an exporter (an `OTEL_EXPORTER_OTLP_*ENDPOINT`, or `OTEL_TRACES_EXPORTER` /
`OTEL_METRICS_EXPORTER` naming one) and `OTEL_SDK_DISABLED` is not `true`. Off, this module imports
nothing of OpenTelemetry and every function returns at once; on, `ratchet.telemetry.otel` (the optional
`otel` extra: the SDK and the OTLP exporter) is imported on the first decision. Telemetry never changes
a decision: a failure to build or export a span is logged and the call goes on.

What is never sent: the agent's content (file contents, diffs, commands, paths, intents, messages).
`RATCHET_OTEL_CAPTURE_CONTENT=true` opts in to one thing more, the call's target as the record keeps it
(redacted: a file's path, a command line), as `gen_ai.guardrail.security.content.input.value`.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ratchet.redact import redact
from ratchet.rules import provenance

if TYPE_CHECKING:  # names for the signatures only: this module imports nothing of the engine at run time
    from ratchet.engine.core import Evaluation, HumanAnswer, Setting
    from ratchet.record.standing import Transition
    from ratchet.results import ClassMove, ToolOutcome

log = logging.getLogger("ratchet")

CONTENT_VARIABLE = "RATCHET_OTEL_CAPTURE_CONTENT"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
EXPORTERS = ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER")
# Every variable the exporters are built from: a change to any of them (a test's) builds them anew.
_KEYS = (
    "OTEL_SDK_DISABLED",
    *ENDPOINTS,
    *EXPORTERS,
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_METRIC_EXPORT_INTERVAL",
    CONTENT_VARIABLE,
)
FLUSH_S = 5.0  # at most this long to hand what is buffered to the collector when a process closes its engine

# The gate's route -> the guardrail's verdict (gen_ai.guardrail.verdict.type).
VERDICTS = {"execute": "allow", "confirm": "escalate", "draft": "escalate", "block": "deny", "refuse": "deny"}
# What became of the call -> the action enforced (gen_ai.guardrail.action.type).
ENFORCED = {
    "executed": "allow",
    "failed": "allow",  # it was let run; the run failed
    "allowed": "allow",  # a client's own tool, let run (hooks)
    "asked": "escalate",  # a client's own tool, put to the person in the client's dialog (hooks)
    "declined": "block",
    "rejected": "block",
    "blocked": "block",
    "refused": "block",
    "draft": "escalate",
    "unanswered": "escalate",  # a draft's answer no person gave: it stays queued
    "stale": "block",
}
PERSON_CHANNELS = ("cli", "web", "bulk")  # a person's own command or page: the agent cannot answer there


@dataclass(frozen=True)
class Move:
    """A class's move: a promotion when `to_level` is above `from_level`, else a demotion."""

    action_class: str
    from_level: str
    to_level: str
    kind: str


@dataclass(frozen=True)
class Decision:
    """One decision as it is exported: no agent content unless `content` was opted in."""

    stage: str  # "gate": decided when the call came; "answer": a person's or a client's later answer
    tool: str
    route: str
    outcome: str
    action_class: str
    rule: str
    class_level: str
    level: str
    policy: str
    session: str
    action_id: int | None
    grade: str
    target_id: str | None = None
    client_tool: str | None = None
    triggers: tuple[str, ...] = ()
    flagged: bool = False
    evidence: str | None = None
    channel: str | None = None
    answered_by: str | None = None
    wait_s: float | None = None
    checks_failed: int = 0
    content: str | None = None
    moved: Move | None = None
    started_ns: int | None = None
    carrier: Mapping[str, str] | None = None

    @property
    def verdict(self) -> str:
        """What the guardrail reported: allow, escalate (a person decides) or deny."""
        return VERDICTS.get(self.route, "escalate")

    @property
    def enforced(self) -> str:
        """What was done: allow, escalate (asked or queued for a person) or block."""
        if self.outcome == "unanswered" and self.client_tool is not None:
            return "block"  # the client denied its own call unasked: it did not run, and nothing waits
        return ENFORCED.get(self.outcome, "escalate")

    @property
    def reason(self) -> str | None:
        """Why the verdict is not `allow`, in low-cardinality words (never the agent's text)."""
        if self.verdict == "allow":
            return None
        if self.route == "refuse":
            return "refused: the call could not be classified"
        if self.triggers:
            return "triggers: " + ", ".join(self.triggers)
        return f"class level {self.class_level}"


class Sink(Protocol):
    """Where decisions go when telemetry is on (ratchet/telemetry/otel.py)."""

    def decision(self, decision: Decision) -> None: ...

    def moved(self, move: Move, session: str) -> None: ...

    def flush(self, timeout_s: float) -> None: ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True)
class _Call:
    carrier: Mapping[str, str]
    call_id: str | None
    started_ns: int


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("ratchet_telemetry_call", default=None)
_state: tuple[tuple[str | None, ...], Sink | None] | None = None


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for telemetry: an exporter configured and the SDK not disabled."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if any(env.get(k, "").strip() for k in ENDPOINTS):
        return True
    return any(env.get(k, "").strip().lower() not in ("", "none") for k in EXPORTERS)


def _sink() -> Sink | None:
    """The sink for the environment as it is now; None when telemetry is off (nothing imported)."""
    global _state
    if not wanted():  # the common case, and the cheapest: six variables read, nothing imported
        if _state is not None:
            shutdown()
        return None
    key = tuple(os.environ.get(k) for k in _KEYS)
    if _state is not None and _state[0] == key:
        return _state[1]
    sink: Sink | None = None
    try:
        # Only here, when OTEL_* asks for it: OpenTelemetry's SDK, exporters and protobuf would cost the start-up
        # of every process (hooks, the CLI) that never exports.
        from ratchet.telemetry import otel  # optional: the otel extra; start-up: loaded only when asked for
    except ImportError as exc:
        log.warning(
            "ratchet: OTEL_* variables ask for telemetry but OpenTelemetry's SDK is not installed (%s); "
            "nothing is exported. Install it with: pip install 'ratchet-mcp[otel]'",
            exc,
        )
    else:
        try:
            sink = otel.OtelSink.from_environment(os.environ)
        except Exception as exc:
            log.warning("ratchet: OpenTelemetry could not be set up from OTEL_* (%s); nothing is exported", exc)
    previous, _state = _state, (key, sink)
    if previous is not None and previous[1] is not None:
        previous[1].shutdown()
    return sink


def _emit(build: Any, *args: Any, **kwargs: Any) -> None:
    """Build a decision and hand it to the sink; never let telemetry break a call."""
    sink = _sink()
    if sink is None:
        return
    try:
        decision = build(*args, **kwargs)
        if decision is not None:
            sink.decision(decision)
    except Exception as exc:  # pragma: no cover - a bug here must not fail the governed call
        log.warning("ratchet: a decision was not exported: %s: %s", type(exc).__name__, exc)


def active() -> bool:
    """Whether decisions are exported (for a caller about to do extra work only telemetry needs)."""
    return _sink() is not None


@contextlib.contextmanager
def joined(meta: Mapping[str, Any] | None, call_id: object = None) -> Iterator[None]:
    """Within this block, decisions belong to the client's trace named by a W3C `traceparent` (and
    `tracestate`) in `meta` (an MCP request's `_meta`), and target the tool call `call_id`."""
    carrier = {k: v for k in ("traceparent", "tracestate") if isinstance(v := (meta or {}).get(k), str)}
    token = _CALL.set(_Call(carrier, None if call_id is None else str(call_id), time.time_ns()))
    try:
        yield
    finally:
        _CALL.reset(token)


def _content(text: str) -> str | None:
    if os.environ.get(CONTENT_VARIABLE, "").strip().lower() not in ("1", "true", "yes"):
        return None
    return redact(text)[:1000]


def grade(answer: HumanAnswer | None, checks_failed: int = 0) -> str:
    """Who vouched for the outcome: `check` (a verification check failed it), `person` (a person's own
    command or page, or an answer the reading-time rule counts), `classifier` (a client's auto mode,
    where its model may have answered), `client` (a dialog's answer that is no evidence of a person),
    `rule` (nobody answered: the class's level decided)."""
    if checks_failed:
        return "check"
    if answer is None:
        return "rule"
    if answer.channel == provenance.AUTO_MODE:
        return "classifier"
    if answer.channel in PERSON_CHANNELS or answer.evidence == provenance.COUNTED:
        return "person"
    return "client"


def _move(moved: ClassMove | Transition | None) -> Move | None:
    if moved is None:
        return None
    return Move(moved.action_class, moved.from_level, moved.to_level, moved.kind)


def _of_call(
    setting: Setting,
    ev: Evaluation,
    outcome: ToolOutcome,
    answer: HumanAnswer | None,
    external_id: str | None,
    client_tool: str | None,
) -> Decision:
    call = _CALL.get()
    d, p = ev.decision, ev.prepared
    route, status = d.route.value, str(outcome.status)
    if client_tool is not None and status in ("executed", "declined") and route in ("execute", "confirm"):
        status = "allowed" if route == "execute" else "asked"  # the client runs it (or asks) itself
    if answer is not None:
        answer = answer.judged(ev.evidence, p.shown, p.hidden_lines)
    failed = sum(1 for c in outcome.checks if not c.passed)
    return Decision(
        stage="gate",
        tool=p.tool,
        route=route,
        outcome=status,
        action_class=d.class_name,
        rule=d.rule,
        class_level=d.class_level.label,
        level=d.level.label,
        policy=setting.policy.fingerprint,
        session=setting.session_id,
        action_id=outcome.action_id,
        grade=grade(answer, failed),
        target_id=external_id or (call.call_id if call else None),
        client_tool=client_tool,
        triggers=tuple(t.name for t in d.triggers),
        flagged=d.flagged,
        evidence=answer.evidence if answer else None,
        channel=answer.channel if answer else None,
        answered_by=(answer.identity or setting.identity) if answer else None,
        wait_s=answer.seconds if answer else None,
        checks_failed=failed,
        content=_content(p.target),
        moved=_move(outcome.moved),
        started_ns=call.started_ns if call else None,
        carrier=call.carrier if call else None,
    )


def decided(
    setting: Setting,
    ev: Evaluation,
    outcome: ToolOutcome,
    answer: HumanAnswer | None = None,
    *,
    external_id: str | None = None,
    client_tool: str | None = None,
) -> None:
    """The gate decided a call and it was carried out (run, asked, queued or blocked) as `outcome` says.
    `external_id` and `client_tool`: a client's own tool call seen through its hook (its id and name)."""
    _emit(_of_call, setting, ev, outcome, answer, external_id, client_tool)


def _of_answer(
    setting: Setting,
    row: Mapping[str, Any],
    answer: HumanAnswer | None,
    status: str,
    moved: Transition | None,
    external_id: str | None,
    checks_failed: int,
    by_classifier: bool = False,
) -> Decision:
    call = _CALL.get()
    if by_classifier:  # a client's classifier denied it: no person's answer, and no evidence
        return dataclasses.replace(
            _of_answer(setting, row, None, status, moved, external_id, checks_failed),
            grade="classifier",
            channel=provenance.AUTO_MODE,
            evidence=provenance.UNANSWERED,
        )
    return Decision(
        stage="answer",
        tool=str(row["tool"]),
        route=str(row["route"]),
        outcome=str(status),
        action_class=str(row["class"]),
        rule=str(row.get("rule") or ""),
        class_level=str(row.get("class_level") or ""),
        level=str(row.get("level") or ""),
        policy=str(row.get("policy") or ""),
        session=str(row["session_id"]),
        action_id=int(row["id"]),
        grade=grade(answer, checks_failed),
        target_id=external_id or (call.call_id if call else None),
        client_tool=row.get("external_tool") if external_id else None,
        triggers=(),
        evidence=answer.evidence if answer else None,
        channel=answer.channel if answer else None,
        answered_by=(answer.identity or setting.identity) if answer else None,
        wait_s=answer.seconds if answer else None,
        checks_failed=checks_failed,
        content=_content(str(row.get("target") or "")),
        moved=_move(moved),
        started_ns=call.started_ns if call else None,
        carrier=call.carrier if call else None,
    )


def answered(
    setting: Setting,
    row: Mapping[str, Any],
    answer: HumanAnswer | None,
    status: str,
    moved: Transition | None = None,
    *,
    external_id: str | None = None,
    checks_failed: int = 0,
    by_classifier: bool = False,
) -> None:
    """A person or a client answered a call the gate put to them (a draft approved or rejected, a client's
    dialog reported through its hook): `row` is the action as recorded, `status` what became of it."""
    _emit(_of_answer, setting, row, answer, status, moved, external_id, checks_failed, by_classifier)


def settled_external(
    setting: Setting,
    row: Mapping[str, Any],
    answer: HumanAnswer | None,
    status: str,
    move: Transition | None,
    external_id: str,
    asked: bool,
    channel: str | None = None,
) -> None:
    """A client reported what became of a call it ran itself: an asked call's answer is a decision (the
    person's in the client's dialog, or its auto mode's classifier's: `channel`); an allowed call's outcome
    only counts any class move it made."""
    if asked:
        classifier = answer is None and channel == provenance.AUTO_MODE  # denied by it; no person was asked
        answered(setting, row, answer, status, move, external_id=external_id, by_classifier=classifier)
    elif move is not None:
        moved(setting, [move])


def _of_refusal(setting: Setting, tool: str, action_id: int) -> Decision:
    call = _CALL.get()
    return Decision(
        stage="gate",
        tool=tool,
        route="refuse",
        outcome="refused",
        action_class="unclassified",
        rule="",
        class_level="",
        level="",
        policy=setting.policy.fingerprint,
        session=setting.session_id,
        action_id=action_id,
        grade="rule",
        target_id=call.call_id if call else None,
        started_ns=call.started_ns if call else None,
        carrier=call.carrier if call else None,
    )


def refused(setting: Setting, tool: str, action_id: int) -> None:
    """A call was refused before it could be classified (bad arguments, a path outside the workspace)."""
    _emit(_of_refusal, setting, tool, action_id)


def moved(setting: Setting, moves: Iterable[ClassMove | Transition | None]) -> None:
    """Class moves made outside a call (a person's demote, pin, freeze; a complaint; task-end checks)."""
    sink = _sink()
    if sink is None:
        return
    for m in moves:
        move = _move(m)
        if move is not None:
            sink.moved(move, setting.session_id)


def flush(timeout_s: float = FLUSH_S) -> None:
    """Hand everything buffered to the exporters (a process about to exit; a test about to look)."""
    if _state is not None and _state[1] is not None:
        _state[1].flush(timeout_s)


@atexit.register
def shutdown() -> None:
    """Hand over what is buffered and stop exporting (at exit; the next decision starts anew)."""
    global _state
    previous, _state = _state, None
    if previous is not None and previous[1] is not None:
        previous[1].shutdown()


__all__ = [
    "CONTENT_VARIABLE",
    "Decision",
    "Move",
    "active",
    "answered",
    "decided",
    "flush",
    "grade",
    "joined",
    "moved",
    "refused",
    "settled_external",
    "shutdown",
    "wanted",
]
