#!/usr/bin/env python3
"""A scripted stand-in for the Anthropic Messages API, on loopback, stdlib only.

    python3 fake_anthropic.py --script SCRIPT.json --log LOG.jsonl [--port 0] [--port-file FILE]

SCRIPT.json is a list of turns. A turn is one tool call {"name": ..., "input": {...}} or a list of
them (parallel tool_use blocks in one assistant message), or {"text": "..."} for a plain answer.
Turn N is the reply to a main-conversation request (one that carries `tools`) whose messages hold
N assistant messages: the reply depends only on the conversation so far, so retries and
side requests never skip a step. Past the end of the script the reply is the text "done"
(end_turn). Requests without tools (titles, summaries, quota checks) get a short text reply.
Every request is logged as one JSON line: path, model, stream, tool count, the last message
(summarised) and every tool_result in it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOCK = threading.Lock()
ARGS: argparse.Namespace


def log(entry: dict) -> None:
    entry["t"] = round(time.time(), 3)
    with LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for b in content:
            if isinstance(b, dict):
                if b.get("type") == "text":
                    parts.append(b.get("text", ""))
                elif b.get("type") == "tool_result":
                    parts.append(f"[tool_result {b.get('tool_use_id')}]")
                elif b.get("type") == "tool_use":
                    parts.append(f"[tool_use {b.get('name')} {json.dumps(b.get('input'))}]")
                else:
                    parts.append(f"[{b.get('type')}]")
        return " ".join(parts)
    return repr(content)


def tool_results(messages) -> list[dict]:
    """tool_result blocks of the last user message: id, is_error, text."""
    if not messages:
        return []
    last = messages[-1]
    out = []
    content = last.get("content")
    for b in content if isinstance(content, list) else []:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            c = b.get("content")
            out.append({"tool_use_id": b.get("tool_use_id"), "is_error": b.get("is_error", False), "text": text_of(c)})
    return out


def next_turn(body: dict) -> tuple[list[dict], str]:
    """(content blocks, stop_reason) for this request."""
    if not body.get("tools"):
        return [{"type": "text", "text": "Scripted session"}], "end_turn"
    script = json.loads(Path(ARGS.script).read_text(encoding="utf-8"))
    n = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
    if n >= len(script):
        return [{"type": "text", "text": "done"}], "end_turn"
    turn = script[n]
    if isinstance(turn, dict) and "text" in turn:
        return [{"type": "text", "text": turn["text"]}], "end_turn"
    calls = turn if isinstance(turn, list) else [turn]
    blocks = [
        {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": c["name"], "input": c["input"]}
        for c in calls
    ]
    return blocks, "tool_use"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _json(self, code: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        log({"method": "GET", "path": self.path})
        if self.path.startswith("/v1/models"):
            self._json(
                200,
                {
                    "data": [{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Sonnet"}],
                    "has_more": False,
                    "first_id": None,
                    "last_id": None,
                },
            )
        else:
            self._json(200, {})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        if path.endswith("/count_tokens"):
            log({"method": "POST", "path": self.path})
            self._json(200, {"input_tokens": 100})
            return
        if not path.endswith("/v1/messages"):
            log({"method": "POST", "path": self.path})
            self._json(200, {})
            return
        msgs = body.get("messages", [])
        if body.get("tools") and ARGS.log:  # keep the last tool list seen (names, schemas) beside the log
            Path(ARGS.log + ".tools.json").write_text(json.dumps(body.get("tools"), indent=1), encoding="utf-8")
        blocks, stop = next_turn(body)
        log(
            {
                "method": "POST",
                "path": self.path,
                "model": body.get("model"),
                "stream": bool(body.get("stream")),
                "tools": len(body.get("tools") or []),
                "n_messages": len(msgs),
                "tool_names": [t.get("name", "") for t in body.get("tools") or []],
                "mcp_tools": sorted(
                    t.get("name", "") for t in body.get("tools") or [] if t.get("name", "").startswith("mcp__")
                ),
                "last": (msgs[-1].get("role"), text_of(msgs[-1].get("content"))[:300]) if msgs else None,
                "tool_results": tool_results(msgs),
                "reply": [b.get("name") or b.get("text") for b in blocks],
                "stop_reason": stop,
            }
        )
        model = body.get("model") or "claude-sonnet-4-5"
        msg_id = f"msg_{uuid.uuid4().hex[:24]}"
        usage = {
            "input_tokens": 100,
            "output_tokens": 10,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if not body.get("stream"):
            self._json(
                200,
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
        self.end_headers()
        self.close_connection = True

        def ev(name: str, data: dict) -> None:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        ev(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": 1},
                },
            },
        )
        for i, b in enumerate(blocks):
            if b["type"] == "tool_use":
                ev(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}},
                    },
                )
                ev(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(b["input"])},
                    },
                )
            else:
                ev(
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                )
                ev(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": b["text"]}},
                )
            ev("content_block_stop", {"type": "content_block_stop", "index": i})
        ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 10},
            },
        )
        ev("message_stop", {"type": "message_stop"})


def main() -> None:
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--script", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if ARGS.port_file:
        Path(ARGS.port_file).write_text(str(port))
    print(f"fake anthropic on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever()


if __name__ == "__main__":
    main()
