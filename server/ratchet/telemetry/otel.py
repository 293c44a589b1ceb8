"""The OpenTelemetry SDK side of ratchet/telemetry: spans and metrics built from the `OTEL_*` variables.

Imported only when telemetry is on (ratchet/telemetry/__init__.py decides); it needs the `otel` extra
(opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http). Ratchet keeps its own tracer and meter
providers rather than installing them as the process's global ones: it exports its own decisions and
leaves the rest of the process (the MCP SDK's own spans, a host's instrumentation) as it was.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ratchet.policy.levels import Level
from ratchet.telemetry import Decision, Move

log = logging.getLogger("ratchet")

SCOPE = "ratchet"
COMPONENT = "ratchet"  # gen_ai.guardrail.component.name, and the span's name: `run_guardrail ratchet`
# Human wait, in seconds: a dialog's few seconds up to a draft that waited a working day or more.
WAIT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 28800.0, 86400.0)
_W3C = TraceContextTextMapPropagator()


def _names(env: Mapping[str, str], signal: str) -> list[str]:
    """The exporters for one signal (`TRACES`, `METRICS`): those `OTEL_<signal>_EXPORTER` names, else OTLP
    when an endpoint for it (or the generic one) is set, else none: setting only the traces' endpoint does
    not send metrics to the default one (nor the reverse)."""
    named = env.get(f"OTEL_{signal}_EXPORTER", "").strip()
    if not named:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        named = "otlp" if any(env.get(k, "").strip() for k in endpoints) else "none"
    names = [n.strip().lower() for n in named.split(",") if n.strip()]
    return [] if "none" in names else names


def _protocol(env: Mapping[str, str], signal: str) -> str:
    return (env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "").strip()


def _grpc(module: str, name: str) -> object | None:
    """The OTLP/gRPC exporter, when its package (not a dependency of the `otel` extra) is installed."""
    try:  # an optional package, not a dependency of the extra: looked up only when OTLP/gRPC is asked for
        found = importlib.import_module(f"opentelemetry.exporter.otlp.proto.grpc.{module}")
    except ImportError:
        log.warning("ratchet: OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc; nothing is exported")
        return None
    exporter: object = getattr(found, name)()
    return exporter


def _span_exporter(name: str, env: Mapping[str, str]) -> SpanExporter | None:
    if name == "console":
        return ConsoleSpanExporter(out=sys.stderr)  # stdout is the MCP protocol's on stdio
    if name != "otlp":
        log.warning("ratchet: OTEL_TRACES_EXPORTER=%s is not supported (otlp, console or none)", name)
        return None
    protocol = _protocol(env, "TRACES") or "http/protobuf"
    if protocol == "grpc":
        return cast("SpanExporter | None", _grpc("trace_exporter", "OTLPSpanExporter"))
    if protocol != "http/protobuf":
        log.warning("ratchet: OTLP protocol %s is not supported (http/protobuf or grpc); no spans", protocol)
        return None
    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: from OTEL_EXPORTER_OTLP_*


def _metric_exporter(name: str, env: Mapping[str, str]) -> MetricExporter | None:
    if name == "console":
        return ConsoleMetricExporter(out=sys.stderr)
    if name != "otlp":
        log.warning("ratchet: OTEL_METRICS_EXPORTER=%s is not supported (otlp, console or none)", name)
        return None
    protocol = _protocol(env, "METRICS") or "http/protobuf"
    if protocol == "grpc":
        return cast("MetricExporter | None", _grpc("metric_exporter", "OTLPMetricExporter"))
    if protocol != "http/protobuf":
        log.warning("ratchet: OTLP protocol %s is not supported (http/protobuf or grpc); no metrics", protocol)
        return None
    return OTLPMetricExporter()


def _resource() -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES as the SDK reads them; `ratchet` when no service is named."""
    found = Resource.create({})
    extra: dict[str, Any] = {}
    if str(found.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        extra[SERVICE_NAME] = "ratchet"
    if SERVICE_VERSION not in found.attributes:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            extra[SERVICE_VERSION] = importlib.metadata.version("ratchet-mcp")
    return found.merge(Resource(extra)) if extra else found


def _rank(label: str) -> int | None:
    try:
        return int(Level.parse(label))
    except Exception:
        return None


class OtelSink:
    """Ratchet's tracer and meter, and the instruments every decision is counted in."""

    def __init__(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
        self.tracer_provider, self.meter_provider = tracer_provider, meter_provider
        self.tracer = tracer_provider.get_tracer(SCOPE) if tracer_provider else None
        meter = meter_provider.get_meter(SCOPE) if meter_provider else None
        self.decisions = (
            meter.create_counter(
                "ratchet.decisions", "{decision}", "Gate decisions and the answers that settle them, by route"
            )
            if meter
            else None
        )
        self.wait = (
            meter.create_histogram(
                "ratchet.human.wait",
                "s",
                "How long a call or a draft waited for its answer (a person's, or a client's dialog's)",
                explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
            )
            if meter
            else None
        )
        self.promotions = (
            meter.create_counter("ratchet.class.promotions", "{move}", "Class moves up the ladder") if meter else None
        )
        self.demotions = (
            meter.create_counter(
                "ratchet.class.demotions",
                "{move}",
                "Class moves down the ladder (demotions, complaints, pins, freezes)",
            )
            if meter
            else None
        )

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> OtelSink:
        """Exporters as the `OTEL_*` variables configure them (OTLP over HTTP/protobuf by default)."""
        resource = _resource()
        tracer_provider = meter_provider = None
        spans = [e for e in (_span_exporter(n, env) for n in _names(env, "TRACES")) if e is not None]
        if spans:
            tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            for exporter in spans:
                tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        metrics = [e for e in (_metric_exporter(n, env) for n in _names(env, "METRICS")) if e is not None]
        if metrics:
            readers = [PeriodicExportingMetricReader(e) for e in metrics]  # OTEL_METRIC_EXPORT_INTERVAL
            meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
        return cls(tracer_provider, meter_provider)

    # -- what the engine hands over ---------------------------------------------------------------

    def decision(self, d: Decision) -> None:
        self._span(d)
        route = {"ratchet.class": d.action_class, "ratchet.route": d.route}
        if self.decisions is not None:
            self.decisions.add(
                1,
                {
                    **route,
                    "ratchet.decision.stage": d.stage,
                    "ratchet.outcome": d.outcome,
                    "ratchet.evidence.grade": d.grade,
                    "gen_ai.guardrail.verdict.type": d.verdict,
                    "gen_ai.guardrail.action.type": d.enforced,
                },
            )
        if self.wait is not None and d.wait_s is not None:
            self.wait.record(
                max(0.0, d.wait_s),
                {
                    **route,
                    "ratchet.answer.channel": d.channel or "unknown",
                    "ratchet.answer": d.enforced,
                    "ratchet.evidence": d.evidence or "unknown",
                    "ratchet.evidence.grade": d.grade,
                },
            )
        if d.moved is not None:
            self.moved(d.moved, d.session)

    def moved(self, move: Move, session: str) -> None:
        up, down = _rank(move.to_level), _rank(move.from_level)
        counter = self.promotions if up is not None and down is not None and up > down else self.demotions
        if counter is not None:
            counter.add(
                1,
                {
                    "ratchet.class": move.action_class,
                    "ratchet.move.kind": move.kind,
                    "ratchet.level.from": move.from_level,
                    "ratchet.level.to": move.to_level,
                },
            )

    def flush(self, timeout_s: float) -> None:
        millis = int(timeout_s * 1000)
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush(millis)
        if self.meter_provider is not None:
            self.meter_provider.force_flush(millis)

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                try:
                    provider.shutdown()
                except Exception as exc:
                    log.info("ratchet: telemetry shutdown: %s", exc)

    # -- the span ---------------------------------------------------------------------------------

    def _span(self, d: Decision) -> None:
        if self.tracer is None:
            return
        parent = None
        if not trace.get_current_span().get_span_context().is_valid:
            # The client's trace: the MCP request's `_meta`, else the W3C variables a parent process
            # passes down (TRACEPARENT / TRACESTATE: a hook started by a client that traces).
            carrier = dict(d.carrier or {})
            if "traceparent" not in carrier:
                env = {"traceparent": _env("TRACEPARENT"), "tracestate": _env("TRACESTATE")}
                carrier = {k: v for k, v in env.items() if v}
            if carrier:
                parent = _W3C.extract(carrier, context=otel_context.Context())
        now = time.time_ns()
        span = self.tracer.start_span(
            f"run_guardrail {COMPONENT}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes(d),
            start_time=min(d.started_ns, now) if d.started_ns else now,
        )
        span.end(end_time=now)


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def attributes(d: Decision) -> dict[str, Any]:
    """The span's attributes: the GenAI guardrail conventions, then Ratchet's own (docs/observability.md)."""
    out: dict[str, Any] = {
        "gen_ai.operation.name": "run_guardrail",
        "gen_ai.guardrail.component.name": COMPONENT,
        "gen_ai.guardrail.target.type": "input",
        "gen_ai.guardrail.target.subtype": "tool_call",
        "gen_ai.guardrail.verdict.type": d.verdict,
        "gen_ai.guardrail.action.type": d.enforced,
        "gen_ai.guardrail.security.policy.id": d.policy,
        "gen_ai.tool.name": d.client_tool or d.tool,
        "gen_ai.conversation.id": d.session,
        "ratchet.decision.stage": d.stage,
        "ratchet.tool": d.tool,
        "ratchet.class": d.action_class,
        "ratchet.class.level": d.class_level,
        "ratchet.level": d.level,
        "ratchet.route": d.route,
        "ratchet.outcome": d.outcome,
        "ratchet.evidence.grade": d.grade,
        "ratchet.session.id": d.session,
    }
    optional: dict[str, Any] = {
        "gen_ai.guardrail.target.id": d.target_id,
        "gen_ai.guardrail.verdict.reason": d.reason,
        "gen_ai.guardrail.security.policy.rule.id": d.rule or None,
        "gen_ai.guardrail.security.content.input.value": d.content,
        "ratchet.action.id": d.action_id,
        "ratchet.triggers": list(d.triggers) or None,
        "ratchet.flagged": d.flagged or None,
        "ratchet.evidence": d.evidence,
        "ratchet.answer.channel": d.channel,
        "ratchet.answered_by": d.answered_by,
        "ratchet.answer.wait_s": d.wait_s,
        "ratchet.checks.failed": d.checks_failed or None,
        "ratchet.move.kind": d.moved.kind if d.moved else None,
        "ratchet.move.to": d.moved.to_level if d.moved else None,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


__all__ = ["OtelSink", "attributes"]
