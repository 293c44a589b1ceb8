#!/usr/bin/env python3
"""A scripted stand-in for the OpenAI Responses API (POST /v1/responses, SSE), loopback, stdlib only.

    python3 fake_openai.py --script SCRIPT.json --log LOG.jsonl [--port 0] [--port-file FILE] [--dump DIR]

SCRIPT.json is a list of turns. A turn is one function call {"name": ..., "arguments": {...}} (extra
keys such as "namespace" are copied onto the item; {"type": "tool_search_call", "arguments": {...}}
and {"type": "custom_tool_call", "name": "apply_patch", "input": "..."} give those items), a list of
them (parallel function calls in one response), or {"text": "..."} for a plain answer. Turn N answers
a request whose `input` already holds
the calls of turns 0..N-1: every call_id carries its turn number (call_t<N>_<k>_<hex>), so the reply
depends only on the conversation so far and retries never skip a step. Past the end of the script the
reply is the assistant text "done". Requests without tools get a short text reply.

Event shapes follow codex-rs/core/tests/common/responses.rs (ev_response_created, ev_function_call,
ev_assistant_message, ev_completed), plus output_item.added / function_call_arguments.delta/.done.
Every request is logged as one JSON line: path, model, tool names, the last input item, and every
function_call_output in the input (call_id, name of its call, output text).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOCK = threading.Lock()
ARGS: argparse.Namespace
N_REQ = 0


def log(entry: dict) -> None:
    entry["t"] = round(time.time(), 3)
    with LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def tool_names(tools) -> list[str]:
    out = []
    for t in tools or []:
        if not isinstance(t, dict):
            continue
        if t.get("type") == "namespace":
            for sub in t.get("tools") or []:
                out.append(f"{t.get('name')}::{sub.get('name')}")
        else:
            out.append(t.get("name") or t.get("type"))
    return out


def output_text(o) -> str:
    if isinstance(o, str):
        return o
    if isinstance(o, dict):
        if "content" in o:
            return output_text(o["content"])
        return json.dumps(o)
    if isinstance(o, list):
        return "\n".join(output_text(x.get("text", x) if isinstance(x, dict) else x) for x in o)
    return repr(o)


def call_outputs(items: list) -> list[dict]:
    calls = {
        it.get("call_id"): it
        for it in items
        if isinstance(it, dict)
        and it.get("type") in ("function_call", "custom_tool_call", "local_shell_call", "tool_search_call")
    }
    out = []
    for it in items:
        if isinstance(it, dict) and it.get("type") in ("function_call_output", "custom_tool_call_output"):
            c = calls.get(it.get("call_id"), {})
            out.append(
                {
                    "call_id": it.get("call_id"),
                    "name": c.get("name"),
                    "namespace": c.get("namespace"),
                    "output": output_text(it.get("output")),
                }
            )
        elif isinstance(it, dict) and it.get("type") == "tool_search_output":
            out.append(
                {
                    "call_id": it.get("call_id"),
                    "name": "tool_search",
                    "namespace": None,
                    "output": json.dumps(tool_names(it.get("tools"))),
                }
            )
    return out


def with_session(arguments: str, body: dict) -> str:
    """`"SESSIONID"` in a turn's arguments becomes the last `session ID N` a tool output reported
    (Codex's running command, for a scripted `write_stdin`)."""
    if '"SESSIONID"' not in arguments:
        return arguments
    found = re.findall(r"session ID (\d+)", json.dumps(body.get("input")))
    return arguments.replace('"SESSIONID"', found[-1] if found else "0")


def turn_index(items: list) -> int:
    n = 0
    for it in items:
        if isinstance(it, dict) and it.get("type") in ("function_call", "custom_tool_call", "tool_search_call"):
            m = re.match(r"call_t(\d+)_", str(it.get("call_id", "")))
            if m:
                n = max(n, int(m.group(1)) + 1)
    return n


def next_turn(body: dict) -> tuple[list[dict], int]:
    """(output items, turn number) for this request."""
    if not body.get("tools"):
        return [{"type": "message", "text": "Scripted session"}], -1
    script = json.loads(Path(ARGS.script).read_text(encoding="utf-8"))
    n = turn_index(body.get("input") or [])
    if n >= len(script):
        return [{"type": "message", "text": "done"}], n
    turn = script[n]
    if isinstance(turn, dict) and "text" in turn:
        return [{"type": "message", "text": turn["text"]}], n
    calls = turn if isinstance(turn, list) else [turn]
    items = []
    for k, c in enumerate(calls):
        kind = c.get("type", "function_call")
        call_id = f"call_t{n}_{k}_{uuid.uuid4().hex[:8]}"
        if kind == "tool_search_call":  # client-executed tool discovery: arguments is an object
            item = {
                "type": kind,
                "id": f"tsc_{uuid.uuid4().hex[:16]}",
                "call_id": call_id,
                "execution": "client",
                "arguments": c.get("arguments", {}),
            }
        elif kind == "custom_tool_call":  # freeform tools such as apply_patch
            item = {
                "type": kind,
                "id": f"ctc_{uuid.uuid4().hex[:16]}",
                "call_id": call_id,
                "name": c["name"],
                "input": c.get("input", ""),
            }
        else:
            item = {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex[:16]}",
                "call_id": call_id,
                "name": c["name"],
                "arguments": with_session(json.dumps(c.get("arguments", {})), body),
            }
            for key, val in c.items():
                if key not in ("name", "arguments", "type"):
                    item[key] = val
        items.append(item)
    return items, n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _json(self, code: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        log({"method": "GET", "path": self.path})
        if "/models" in self.path:
            self._json(200, {"object": "list", "data": [{"id": "gpt-5", "object": "model"}], "models": []})
        else:
            self._json(404, {"error": {"message": "not here"}})

    def do_POST(self):
        global N_REQ
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("content-encoding", "") == "zstd":
            log({"method": "POST", "path": self.path, "error": "zstd body"})
            self._json(400, {"error": {"message": "zstd not supported"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        if not path.endswith("/responses"):
            log({"method": "POST", "path": self.path, "body_keys": sorted(body)})
            self._json(404, {"error": {"message": "not here"}})
            return
        with LOCK:
            N_REQ += 1
            nreq = N_REQ
        if ARGS.dump:
            Path(ARGS.dump).mkdir(parents=True, exist_ok=True)
            (Path(ARGS.dump) / f"req{nreq}.json").write_text(json.dumps(body, indent=1))
        items = body.get("input") or []
        out_items, turn = next_turn(body)
        if turn == 0:  # a real model's first answer takes a second or more; MCP servers start meanwhile
            time.sleep(float(os.environ.get("FAKE_FIRST_DELAY", "2.5")))
        last = items[-1] if items else None
        log(
            {
                "method": "POST",
                "path": self.path,
                "req": nreq,
                "model": body.get("model"),
                "stream": bool(body.get("stream")),
                "tools": tool_names(body.get("tools")),
                "parallel_tool_calls": body.get("parallel_tool_calls"),
                "n_input": len(items),
                "last": {k: (v if k != "content" else output_text(v)[:300]) for k, v in last.items()}
                if isinstance(last, dict)
                else None,
                "outputs": call_outputs(items),
                "turn": turn,
                "reply": [i.get("name") or i.get("text") or i.get("type") for i in out_items],
            }
        )
        rid = f"resp_{uuid.uuid4().hex[:16]}"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def ev(data: dict) -> None:
            self.wfile.write(f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        ev({"type": "response.created", "response": {"id": rid}})
        for idx, it in enumerate(out_items):
            if it["type"] in ("tool_search_call", "custom_tool_call"):
                ev({"type": "response.output_item.added", "output_index": idx, "item": {**it, "status": "in_progress"}})
                ev({"type": "response.output_item.done", "output_index": idx, "item": {**it, "status": "completed"}})
            elif it["type"] == "function_call":
                ev(
                    {
                        "type": "response.output_item.added",
                        "output_index": idx,
                        "item": {**it, "arguments": "", "status": "in_progress"},
                    }
                )
                ev(
                    {
                        "type": "response.function_call_arguments.delta",
                        "output_index": idx,
                        "item_id": it["id"],
                        "delta": it["arguments"],
                    }
                )
                ev(
                    {
                        "type": "response.function_call_arguments.done",
                        "output_index": idx,
                        "item_id": it["id"],
                        "arguments": it["arguments"],
                    }
                )
                ev({"type": "response.output_item.done", "output_index": idx, "item": {**it, "status": "completed"}})
            else:
                mid = f"msg_{uuid.uuid4().hex[:16]}"
                ev(
                    {
                        "type": "response.output_item.added",
                        "output_index": idx,
                        "item": {"type": "message", "role": "assistant", "id": mid, "content": []},
                    }
                )
                ev(
                    {
                        "type": "response.output_text.delta",
                        "output_index": idx,
                        "item_id": mid,
                        "content_index": 0,
                        "delta": it["text"],
                    }
                )
                ev(
                    {
                        "type": "response.output_item.done",
                        "output_index": idx,
                        "item": {
                            "type": "message",
                            "role": "assistant",
                            "id": mid,
                            "content": [{"type": "output_text", "text": it["text"]}],
                        },
                    }
                )
        ev(
            {
                "type": "response.completed",
                "response": {
                    "id": rid,
                    "usage": {
                        "input_tokens": 100,
                        "input_tokens_details": None,
                        "output_tokens": 10,
                        "output_tokens_details": None,
                        "total_tokens": 110,
                    },
                },
            }
        )


def main() -> None:
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--script", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--dump", help="write each request body to DIR/reqN.json")
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if ARGS.port_file:
        Path(ARGS.port_file).write_text(str(port))
    print(f"fake openai on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever()


if __name__ == "__main__":
    main()
