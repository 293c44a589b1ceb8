"""OpenTelemetry: every decision a `run_guardrail` span (GenAI guardrail conventions, `ratchet.*` attributes) and
counted in Ratchet's metrics, exported over OTLP/HTTP to a real receiver: a loopback HTTP server in this process
that decodes what arrives with the official protobuf definitions (opentelemetry-proto). The governed calls go
through the real server and the SDK's `Client`, the CLI and the real `ratchet hook claude-code`; a W3C
`traceparent` in a request's `_meta` joins the client's trace; and with no configuration nothing of
OpenTelemetry's SDK is imported and nothing is sent."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from ratchet import telemetry
from ratchet.claude_code import hook_socket
from ratchet.engine import Engine
from ratchet.errors import InvalidRequest

from .conftest import MakeServer
from .helpers import Claude, Clock, Human, draft, free_port, require_module, rows, run_cli, write, write_policy

INSTALL = "it comes with the dev extra: pip install -e '.[dev]'"
trace_pb = require_module("opentelemetry.proto.collector.trace.v1.trace_service_pb2", INSTALL)
metrics_pb = require_module("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2", INSTALL)

SPAN = "run_guardrail ratchet"
SECRET = "do-not-export-this-content-7f3a\n"
INTERNAL = 1  # Span.SpanKind.SPAN_KIND_INTERNAL in the OTLP definitions


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


class Receiver:
    """An OTLP/HTTP receiver on loopback: decodes each export request with the official definitions."""

    def __init__(self) -> None:
        self.traces: list[Any] = []
        self.metrics: list[Any] = []
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request, response = trace_pb.ExportTraceServiceRequest(), trace_pb.ExportTraceServiceResponse()
                elif self.path == "/v1/metrics":
                    request = metrics_pb.ExportMetricsServiceRequest()
                    response = metrics_pb.ExportMetricsServiceResponse()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                request.ParseFromString(body)
                with received.lock:
                    received.bodies.append(body)
                    (received.traces if self.path == "/v1/traces" else received.metrics).append(request)
                out = response.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self, name: str = SPAN) -> list[dict[str, Any]]:
        """Every span received with this name: ids in hex, attributes decoded, the resource's attributes."""
        found = []
        with self.lock:
            for request in self.traces:
                for rs in request.resource_spans:
                    resource = _attrs(rs.resource.attributes)
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            if s.name == name:
                                found.append(
                                    {
                                        "trace_id": s.trace_id.hex(),
                                        "span_id": s.span_id.hex(),
                                        "parent": s.parent_span_id.hex(),
                                        "kind": s.kind,
                                        "attrs": _attrs(s.attributes),
                                        "resource": resource,
                                        "scope": ss.scope.name,
                                    }
                                )
        return found

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """The data points of one metric in the last export that has it (cumulative): (attributes, point)."""
        with self.lock:
            requests = list(self.metrics)
        for request in reversed(requests):
            out = []
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == metric:
                            data = m.sum if m.WhichOneof("data") == "sum" else m.histogram
                            out += [(_attrs(p.attributes), p) for p in data.data_points]
            if out:
                return out
        return []


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEPARENT", "TRACESTATE"))}


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver, and the standard variables pointing this process (and the processes it starts) at it."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name in ("TRACEPARENT", "TRACESTATE", telemetry.CONTENT_VARIABLE):
            monkeypatch.delenv(name)
    r = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ratchet-under-test")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")  # exported when flushed, not on a timer
    try:
        yield r
    finally:
        telemetry.shutdown()  # while the receiver still listens: nothing is left to retry against a closed port
        r.close()


def _one(spans: list[dict[str, Any]], **want: Any) -> dict[str, Any]:
    found = [s for s in spans if all(s["attrs"].get(k.replace("__", ".")) == v for k, v in want.items())]
    assert len(found) == 1, (want, [s["attrs"] for s in spans])
    return found[0]


def _sum(points: list[tuple[dict[str, Any], Any]], **want: str) -> float:
    return sum(
        p.as_double or p.as_int for a, p in points if all(a.get(k.replace("__", ".")) == v for k, v in want.items())
    )


@pytest.mark.asyncio
async def test_a_write_a_draft_an_approval_and_a_block_are_exported_as_guardrail_spans_and_metrics(
    receiver: Receiver,
    make_server: MakeServer,
    workspace: Path,
    policies: Path,
    db: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock()
    async with make_server(human=Human(delay=30.0, clock=clock), clock=clock) as client:
        wrote = await write(client, "auto/a.txt", SECRET)
        drafted = await draft(client, "queue/b.txt", SECRET)
        # The approval through the server: review_drafts puts the draft to the person, who reads it 30 s.
        reviewed = (await client.call_tool("review_drafts", {})).structured_content
        blocked = await write(client, "stop/c.txt", SECRET)
        asked = await write(client, "ask/d.txt", SECRET)  # confirm: the person reads it for 30 s and applies it
        climbing = [await draft(client, f"climb/e{i}.txt", SECRET) for i in range(3)]
    assert (wrote["status"], blocked["status"], asked["status"]) == ("executed", "blocked", "executed")
    assert reviewed is not None and [d["status"] for d in reviewed["reviewed"]] == ["executed"]
    for action_id in climbing:  # a person approves each at the CLI; the third promotes climb
        code, out = await run_cli(capsys, workspace, policies, db, "approve", str(action_id))
        assert code == 0, out
    code, out = await run_cli(capsys, workspace, policies, db, "demote", "climb", "--reason", "too fast")
    assert code == 0, out
    telemetry.flush()

    spans = receiver.spans()
    recorded = {r["id"]: r for r in rows(db, "SELECT id, policy, rule FROM actions")}
    executed = _one(spans, ratchet__action__id=wrote["action_id"])
    assert executed["kind"] == INTERNAL and executed["scope"] == "ratchet"
    assert executed["resource"]["service.name"] == "ratchet-under-test"
    a = executed["attrs"]
    assert a["gen_ai.operation.name"] == "run_guardrail"
    assert a["gen_ai.guardrail.component.name"] == "ratchet"
    assert (a["gen_ai.guardrail.target.type"], a["gen_ai.guardrail.target.subtype"]) == ("input", "tool_call")
    assert a["gen_ai.guardrail.target.id"]  # the MCP request that carried the tool call
    assert (a["gen_ai.guardrail.verdict.type"], a["gen_ai.guardrail.action.type"]) == ("allow", "allow")
    assert a["gen_ai.guardrail.security.policy.id"] == recorded[wrote["action_id"]]["policy"]
    assert a["gen_ai.guardrail.security.policy.rule.id"] == recorded[wrote["action_id"]]["rule"]
    assert (a["ratchet.class"], a["ratchet.class.level"], a["ratchet.level"]) == ("auto", "autonomous", "autonomous")
    assert (a["ratchet.route"], a["ratchet.outcome"], a["ratchet.evidence.grade"]) == ("execute", "executed", "rule")
    assert a["gen_ai.tool.name"] == "write_file" and "gen_ai.guardrail.verdict.reason" not in a

    queued = _one(spans, ratchet__action__id=drafted, ratchet__decision__stage="gate")["attrs"]
    assert (queued["gen_ai.guardrail.verdict.type"], queued["gen_ai.guardrail.action.type"]) == ("escalate", "escalate")
    assert (queued["ratchet.route"], queued["ratchet.outcome"]) == ("draft", "draft")
    assert queued["gen_ai.guardrail.verdict.reason"] == "class level draft"

    approved = _one(spans, ratchet__action__id=drafted, ratchet__decision__stage="answer")["attrs"]
    assert (approved["gen_ai.guardrail.verdict.type"], approved["gen_ai.guardrail.action.type"]) == (
        "escalate",
        "allow",
    )
    assert (approved["ratchet.outcome"], approved["ratchet.evidence.grade"]) == ("executed", "person")
    assert (approved["ratchet.answer.channel"], approved["ratchet.evidence"]) == ("elicitation", "counted")
    assert approved["ratchet.answer.wait_s"] == pytest.approx(30.0) and approved["ratchet.answered_by"]
    assert approved["gen_ai.guardrail.target.id"]  # the review_drafts request that carried the answer
    at_cli = _one(spans, ratchet__action__id=climbing[0], ratchet__decision__stage="answer")["attrs"]
    assert (at_cli["ratchet.answer.channel"], at_cli["ratchet.evidence.grade"]) == ("cli", "person")
    assert "gen_ai.guardrail.target.id" not in at_cli  # a person's own command carries no tool call

    stopped = _one(spans, ratchet__action__id=blocked["action_id"])["attrs"]
    assert (stopped["gen_ai.guardrail.verdict.type"], stopped["gen_ai.guardrail.action.type"]) == ("deny", "block")
    assert (stopped["ratchet.route"], stopped["ratchet.outcome"]) == ("block", "blocked")
    assert stopped["gen_ai.guardrail.verdict.reason"]

    confirmed = _one(spans, ratchet__action__id=asked["action_id"])["attrs"]
    assert (confirmed["gen_ai.guardrail.verdict.type"], confirmed["gen_ai.guardrail.action.type"]) == (
        "escalate",
        "allow",
    )
    assert (confirmed["ratchet.route"], confirmed["ratchet.answer.channel"]) == ("confirm", "elicitation")
    assert (confirmed["ratchet.evidence"], confirmed["ratchet.evidence.grade"]) == ("counted", "person")
    assert confirmed["ratchet.answer.wait_s"] == pytest.approx(30.0)
    promoted = _one(spans, ratchet__action__id=climbing[2], ratchet__decision__stage="answer")["attrs"]
    assert (promoted["ratchet.move.kind"], promoted["ratchet.move.to"]) == ("promote", "confirm")

    # No agent content: neither the files' content nor their paths are in anything the receiver got.
    with receiver.lock:
        everything = b"".join(receiver.bodies)
    assert SECRET.strip().encode() not in everything and b"auto/a.txt" not in everything

    decisions = receiver.points("ratchet.decisions")
    assert _sum(decisions, ratchet__route="execute", ratchet__decision__stage="gate") == 1
    assert _sum(decisions, ratchet__route="confirm", gen_ai__guardrail__action__type="allow") == 1
    assert _sum(decisions, ratchet__route="draft", ratchet__decision__stage="gate") == 4
    assert _sum(decisions, ratchet__route="draft", ratchet__decision__stage="answer") == 4
    assert _sum(decisions, ratchet__route="block") == 1
    waits = receiver.points("ratchet.human.wait")
    dialog = [p for a, p in waits if a["ratchet.answer.channel"] == "elicitation"]
    assert sum(p.count for p in dialog) == 2 and sum(p.sum for p in dialog) == pytest.approx(60.0)
    assert (dialog[0].explicit_bounds[0], dialog[0].explicit_bounds[-1]) == (1.0, 86400.0)  # seconds to a day
    assert sum(p.count for a, p in waits if a["ratchet.answer.channel"] == "cli") == 3
    ups = receiver.points("ratchet.class.promotions")
    assert _sum(ups, ratchet__class="climb", ratchet__level__from="draft", ratchet__level__to="confirm") == 1
    downs = receiver.points("ratchet.class.demotions")
    assert _sum(downs, ratchet__class="climb", ratchet__level__from="confirm", ratchet__level__to="draft") == 1


@pytest.mark.asyncio
async def test_a_traceparent_in_the_requests_meta_joins_the_clients_trace(
    receiver: Receiver, make_server: MakeServer
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with make_server() as client:
        joined = await client.call_tool(
            "write_file",
            {"path": "auto/joined.txt", "content": SECRET},
            meta={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        )
        alone = await write(client, "auto/alone.txt", SECRET)
    telemetry.flush()
    assert joined.structured_content is not None
    spans = receiver.spans()
    child = _one(spans, ratchet__action__id=joined.structured_content["action_id"])
    assert (child["trace_id"], child["parent"]) == (trace_id, parent_id)
    root = _one(spans, ratchet__action__id=alone["action_id"])
    assert root["trace_id"] != trace_id and root["parent"] == ""
    assert "gen_ai.guardrail.security.content.input.value" not in child["attrs"]


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.asyncio
async def test_over_http_a_traceparent_header_joins_the_clients_trace(
    receiver: Receiver, ratchet_bin: Path, workspace: Path, policies: Path, db: Path, tmp_path: Path
) -> None:
    # `ratchet serve --http` in its own process; the client sends the W3C header, not `_meta`.
    trace_id, parent_id = "6bf92f3577b34da6a3ce929d0e0e4738", "20f067aa0ba902b9"
    port = free_port()
    argv = [str(ratchet_bin), "serve", "--http", "--port", str(port), "--workspace", str(workspace)]
    argv += ["--policies", str(policies), "--db", str(db)]
    proc = _spawn(argv, tmp_path / "serve.log")
    try:
        token_file = db.parent / (db.name + ".http-token")
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(600):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            if token_file.exists():
                try:
                    httpx2.get(url, timeout=5)
                    break
                except httpx2.TransportError:
                    pass
            await anyio.sleep(0.1)
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        headers["traceparent"] = f"00-{trace_id}-{parent_id}-01"
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            Client(streamable_http_client(url, http_client=http)) as client,  # type: ignore[arg-type]
        ):
            wrote = await write(client, "auto/http.txt", SECRET)
    finally:
        _stop(proc)  # the server closes its record: its spans are handed over before it exits
    span = _one(receiver.spans(), ratchet__action__id=wrote["action_id"])
    assert (span["trace_id"], span["parent"]) == (trace_id, parent_id)


@pytest.mark.asyncio
async def test_decisions_outside_a_traced_request_join_the_trace_and_call_they_are_given(
    receiver: Receiver, workspace: Path, policies: Path, db: Path
) -> None:
    # No MCP request here (the MCP SDK's own middleware makes the client's context current in a server):
    # Ratchet reads the traceparent it was handed itself, and a refusal is a decision too.
    trace_id, parent_id = "5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
    async with await Engine.open(workspace, policies=policies, db=db) as engine:
        with telemetry.joined({"traceparent": f"00-{trace_id}-{parent_id}-01"}, 7):
            ev = await engine.evaluate("write_file", {"path": "auto/x.txt", "content": SECRET})
            out = await engine.carry_out(ev)
            refused = await engine.refuse(
                "write_file", {"path": "../x"}, InvalidRequest("outside"), intent=None, confidence=None
            )
    telemetry.flush()
    spans = receiver.spans()
    ran = _one(spans, ratchet__action__id=out.action_id)
    assert (ran["trace_id"], ran["parent"], ran["attrs"]["gen_ai.guardrail.target.id"]) == (trace_id, parent_id, "7")
    no = _one(spans, ratchet__action__id=refused)["attrs"]
    assert (no["ratchet.route"], no["ratchet.outcome"], no["ratchet.class"]) == ("refuse", "refused", "unclassified")
    assert (no["gen_ai.guardrail.verdict.type"], no["gen_ai.guardrail.action.type"]) == ("deny", "block")


@pytest.mark.asyncio
async def test_the_target_is_exported_only_when_opted_in(
    receiver: Receiver, make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(telemetry.CONTENT_VARIABLE, "true")
    async with make_server() as client:
        wrote = await write(client, "auto/opted.txt", SECRET)
    telemetry.flush()
    attrs = _one(receiver.spans(), ratchet__action__id=wrote["action_id"])["attrs"]
    assert attrs["gen_ai.guardrail.security.content.input.value"] == "auto/opted.txt"
    with receiver.lock:
        assert SECRET.strip().encode() not in b"".join(receiver.bodies)  # the target, never the content


def test_claude_code_hook_decisions_are_spans_in_the_clients_trace(
    receiver: Receiver,
    ratchet_bin: Path,
    workspace: Path,
    hook_policies: Path,
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    monkeypatch.setenv("TRACEPARENT", f"00-{trace_id}-b7ad6b7169203331-01")  # a client that traces its hooks
    claude = Claude(ratchet_bin, workspace, hook_policies, db)
    asked, asked_id = claude.write("climb/b.txt", SECRET)
    assert claude.post("Write", asked_id, tool_response={"filePath": "x", "success": True}) is None
    assert asked is not None and asked["permissionDecision"] == "ask"
    _, denied_id = claude.write("climb/c.txt", SECRET)  # auto mode's classifier denies it: no person answered
    claude.post("Write", denied_id, name="PermissionDenied", reason="auto mode denied it", permission_mode="auto")

    spans = receiver.spans()  # each hook process handed its spans over before it exited
    gate = _one(spans, gen_ai__guardrail__target__id=asked_id, ratchet__decision__stage="gate")
    assert gate["trace_id"] == trace_id
    put = gate["attrs"]
    assert (put["gen_ai.tool.name"], put["ratchet.tool"]) == ("Write", "write_file")
    assert (put["gen_ai.guardrail.verdict.type"], put["gen_ai.guardrail.action.type"]) == ("escalate", "escalate")
    assert (put["ratchet.route"], put["ratchet.outcome"]) == ("confirm", "asked")
    assert put["gen_ai.conversation.id"] == f"claude-{claude.session}"  # the client's own session
    answer = _one(spans, gen_ai__guardrail__target__id=asked_id, ratchet__decision__stage="answer")["attrs"]
    assert (answer["gen_ai.guardrail.action.type"], answer["ratchet.outcome"]) == ("allow", "executed")
    assert answer["ratchet.answer.channel"] == "hook-dialog" and "ratchet.answer.wait_s" in answer
    denied = _one(spans, gen_ai__guardrail__target__id=denied_id, ratchet__decision__stage="answer")["attrs"]
    assert (denied["ratchet.outcome"], denied["gen_ai.guardrail.action.type"]) == ("unanswered", "block")
    assert (denied["ratchet.evidence.grade"], denied["ratchet.answer.channel"]) == ("classifier", "auto-mode")
    # The hook processes handed over their metrics too: the last one counted the answer it settled.
    decisions = receiver.points("ratchet.decisions")
    assert _sum(decisions, ratchet__decision__stage="answer", ratchet__outcome="unanswered") == 1


@pytest.mark.asyncio
async def test_without_the_extra_installed_a_warning_and_the_call_goes_on(
    receiver: Receiver,
    make_server: MakeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry.shutdown()
    monkeypatch.setitem(sys.modules, "ratchet.telemetry.otel", None)  # as if opentelemetry-sdk were missing
    monkeypatch.delattr(telemetry, "otel", raising=False)  # left by an earlier import in this process
    async with make_server() as client:
        wrote = await write(client, "auto/plain.txt", SECRET)
    assert wrote["status"] == "executed" and not telemetry.active()
    assert "pip install 'ratchet-mcp[otel]'" in caplog.text
    telemetry.flush()
    assert receiver.traces == [] and receiver.metrics == []


@pytest.mark.asyncio
async def test_the_collectors_credentials_never_reach_a_command(
    receiver: Receiver, make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer collector-key-5d1e")
    env_policy = write_policy(
        tmp_path / "env-policies",
        '[classes.env-run]\ntools = ["run_command"]\nargv = [["env"]]\nstart = "autonomous"\n',
    )
    async with make_server(env_policy) as client:
        ran = (await client.call_tool("run_command", {"argv": ["env"]})).structured_content
    telemetry.flush()
    assert ran is not None and ran["status"] == "executed" and "PATH=" in ran["result"]["stdout"]
    assert "collector-key-5d1e" not in ran["result"]["stdout"] and "OTEL_" not in ran["result"]["stdout"]
    assert _one(receiver.spans(), ratchet__action__id=ran["action_id"])["attrs"]["ratchet.class"] == "env-run"


@pytest.mark.parametrize(
    ("env", "spans", "metrics"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, True, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}, True, False),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:9/v1/metrics"}, False, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_METRICS_EXPORTER": "none"}, True, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True, False),
    ],
)
def test_each_signal_is_exported_only_where_it_is_configured(env: dict[str, str], spans: bool, metrics: bool) -> None:
    from ratchet.telemetry.otel import OtelSink

    sink = OtelSink.from_environment(env)
    try:
        assert (sink.tracer_provider is not None, sink.meter_provider is not None) == (spans, metrics)
    finally:
        sink.shutdown()


def test_a_resident_hook_server_serves_only_hooks_with_its_own_telemetry_set_up() -> None:
    # The resident server exports as the hook that started it was configured: another set-up gets its own.
    argv = ["hook", "claude-code"]
    plain = hook_socket.setup(argv, {})
    assert hook_socket.setup(argv, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) != plain
    assert hook_socket.setup(argv, {"OTEL_SDK_DISABLED": "true"}) != plain
    assert hook_socket.setup(argv, {telemetry.CONTENT_VARIABLE: "true"}) != plain
    assert set(telemetry.ENDPOINTS + telemetry.EXPORTERS) <= set(hook_socket.KEYED_ENV)


def test_codex_hook_decisions_are_spans_too(
    receiver: Receiver, ratchet_bin: Path, workspace: Path, hook_policies: Path, db: Path
) -> None:
    event = {
        "session_id": "01a2-codex",
        "turn_id": "t1",
        "transcript_path": str(workspace.parent / "rollout.jsonl"),
        "cwd": str(workspace),
        "hook_event_name": "PreToolUse",
        "model": "gpt-5.5",
        "permission_mode": "default",
        "tool_name": "Bash",
        "tool_input": {"command": "rm -rf build"},
        "tool_use_id": "call_rm_1",
    }
    argv = [str(ratchet_bin), "hook", "codex", "--policies", str(hook_policies), "--db", str(db)]
    done = subprocess.run(argv, input=json.dumps(event), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    a = _one(receiver.spans(), gen_ai__guardrail__target__id="call_rm_1")["attrs"]
    assert (a["gen_ai.tool.name"], a["ratchet.tool"], a["ratchet.class"]) == ("Bash", "run_command", "rm-run")
    assert (a["gen_ai.guardrail.verdict.type"], a["gen_ai.guardrail.action.type"]) == ("deny", "block")
    assert a["ratchet.outcome"] == "blocked"
    with receiver.lock:
        assert b"rm -rf build" not in b"".join(receiver.bodies)  # the command is agent content


NO_CONFIG_SCRIPT = """
import asyncio, json, os, sys
from pathlib import Path
from mcp import Client
from ratchet import telemetry
from ratchet.mcp.server import ServerConfig, build_server

async def governed(workspace, policies, db, name):
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        result = await client.call_tool("write_file", {"path": f"auto/{name}.txt", "content": "x\\n"})
    telemetry.flush()
    from opentelemetry import trace
    return {
        "status": result.structured_content["status"],
        "modules": sorted(m for m in sys.modules if m.startswith(("opentelemetry", "ratchet.telemetry", "google"))),
        "provider": type(trace.get_tracer_provider()).__name__,
    }

async def main():
    workspace, policies, db = map(Path, sys.argv[1:4])
    seen = {"none": await governed(workspace, policies, db, "none")}
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sys.argv[4]
    os.environ["OTEL_SDK_DISABLED"] = "true"
    seen["disabled"] = await governed(workspace, policies, db, "disabled")
    del os.environ["OTEL_SDK_DISABLED"]
    seen["on"] = await governed(workspace, policies, db, "on")
    telemetry.shutdown()
    print(json.dumps(seen))

asyncio.run(main())
"""


def test_without_configuration_the_sdk_is_not_imported_and_nothing_is_sent(
    workspace: Path, policies: Path, db: Path
) -> None:
    # One process, three governed calls: with no OTEL_* at all; with an endpoint but OTEL_SDK_DISABLED=true;
    # then (the control, showing the same checks can fail) with the endpoint alone.
    receiver = Receiver()
    try:
        done = subprocess.run(
            [sys.executable, "-c", NO_CONFIG_SCRIPT, str(workspace), str(policies), str(db), receiver.url],
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        # The MCP SDK itself depends on opentelemetry-api and imports it (its own tracing middleware, a no-op
        # without a provider); OpenTelemetry's SDK, the exporters, protobuf and Ratchet's exporting module are
        # what must stay out.
        for setting in ("none", "disabled", "on"):
            assert seen[setting]["status"] == "executed", seen
            sdk = [
                m
                for m in seen[setting]["modules"]
                if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter", "google"))
            ]
            loaded = "ratchet.telemetry.otel" in seen[setting]["modules"]
            assert (bool(sdk), loaded) == ((True, True) if setting == "on" else (False, False)), (setting, sdk)
        assert seen["disabled"]["provider"] == "ProxyTracerProvider"  # nothing installed a tracer provider either
        actions = {s["attrs"]["ratchet.action.id"] for s in receiver.spans()}
        assert len(actions) == 1  # the control's call alone: nothing was sent before it
        assert rows(db, "SELECT target FROM actions WHERE id = ?", actions.pop())[0]["target"] == "auto/on.txt"
    finally:
        receiver.close()
