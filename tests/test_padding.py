"""Evidence that cannot be padded: a failing build kept between no-op successes demotes, and halts the
session, exactly as the same failures in a row do; new work still counts.

Real `make` runs through the real server and SDK `Client`, on a real SQLite record."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.mcp.server import ServerConfig, build_server
from ratchet.rules.settle import REPEAT, is_padding, work_key

from .helpers import write_policy

POLICY = """
[classes.build]
tools = ["run_command"]
argv = [["make"]]
start = "autonomous"
floor = "confirm"

[classes.build-kept]
tools = ["run_command"]
argv = [["make", "-s"]]
priority = 1
start = "autonomous"
floor = "autonomous"
"""
MAKEFILE = "build:\n\t@echo compiling; exit 1\nnoop:\n\t@true\nother:\n\t@true\n"


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path, Path]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "Makefile").write_text(MAKEFILE)
    return ws, write_policy(tmp_path / "p", POLICY), tmp_path / "state" / "ratchet.db"


async def _make(client: Client, *args: str) -> dict[str, Any]:
    result = await client.call_tool("run_command", {"argv": ["make", *args]})
    assert result.structured_content is not None, result
    out: dict[str, Any] = result.structured_content
    return out


async def _level(client: Client, name: str) -> str:
    levels = await client.call_tool("trust_levels", {})
    assert levels.structured_content is not None
    return next(c["level"] for c in levels.structured_content["classes"] if c["action_class"] == name)


async def _failures_until_stopped(client: Client, prefix: list[str], padding: int, cls: str) -> tuple[int, str]:
    """Run failing builds, each followed by `padding` identical no-op successes, until the class is
    moved or halted; how many failing builds ran, and why the next one did not run autonomously."""
    for failures in range(1, 13):
        out = await _make(client, *prefix, "build")
        if out["status"] != "failed":
            return failures - 1, out["status"] + " " + " ".join(t["name"] for t in out.get("triggers", []))
        level = await _level(client, cls)
        if level != "autonomous":
            return failures, f"demoted to {level}"
        for _ in range(padding):
            out = await _make(client, *prefix, "noop")
            if out["status"] != "executed":  # the session halted: even the no-op is held now
                return failures, out["status"] + " " + " ".join(t["name"] for t in out.get("triggers", []))
    return 12, "never stopped"


@pytest.mark.asyncio
@pytest.mark.parametrize("padding", [6, 12])
async def test_padded_failures_demote_as_failures_in_a_row_do(project: tuple[Path, Path, Path], padding: int) -> None:
    ws, policies, db = project
    async with Client(build_server(ServerConfig(ws, policies, db))) as client:
        in_a_row = await _failures_until_stopped(client, [], 0, "build")
    db.unlink()
    async with Client(build_server(ServerConfig(ws, policies, db))) as client:
        padded = await _failures_until_stopped(client, [], padding, "build")
    assert in_a_row[1].startswith("demoted"), in_a_row
    assert padded == in_a_row  # the same number of failing builds, and the same move
    con = sqlite3.connect(db)
    labels = [r[0] for r in con.execute("SELECT sample FROM actions WHERE args_json LIKE '%noop%' ORDER BY id")]
    con.close()
    assert labels.count("success") == 1 and labels.count(REPEAT) == len(labels) - 1, labels


@pytest.mark.asyncio
async def test_padded_failures_halt_the_session_as_failures_in_a_row_do(project: tuple[Path, Path, Path]) -> None:
    ws, policies, db = project  # build-kept cannot be demoted (floor autonomous): only the halt holds it
    async with Client(build_server(ServerConfig(ws, policies, db))) as client:
        in_a_row = await _failures_until_stopped(client, ["-s"], 0, "build-kept")
    db.unlink()
    async with Client(build_server(ServerConfig(ws, policies, db))) as client:
        padded = await _failures_until_stopped(client, ["-s"], 6, "build-kept")
    assert "repeated-failure" in in_a_row[1] and in_a_row[0] == 3, in_a_row
    # Padded, the halt comes within the same four failing builds: the first `make -s noop` is new work
    # and resets the streak once; every later one is a repeat and leaves it as it was.
    assert "repeated-failure" in padded[1] and padded[0] <= 4, padded


@pytest.mark.asyncio
async def test_new_work_still_counts(project: tuple[Path, Path, Path]) -> None:
    ws, policies, db = project
    async with Client(build_server(ServerConfig(ws, policies, db))) as client:
        for args in (["noop"], ["noop"], ["other"], ["noop", "other"]):
            assert (await _make(client, *args))["status"] == "executed"
        levels = await client.call_tool("trust_levels", {})
    assert levels.structured_content is not None
    build = next(c for c in levels.structured_content["classes"] if c["action_class"] == "build")
    assert build["samples"] == 3 and build["successes"] == 3  # the second `make noop` was a repeat


def test_the_padding_rule() -> None:
    key = work_key("run_command", '{"argv": ["make", "noop"], "cwd": null}', None, 7)
    assert key == work_key("run_command", '{"cwd": null, "argv": ["make", "noop"]}', None, 7)  # key order
    assert key != work_key("run_command", '{"argv": ["make", "noop"], "cwd": null}', None, 8)  # after a change
    assert key != work_key("run_command", '{"argv": ["make", "other"], "cwd": null}', None, 7)
    assert is_padding(True, key, [key]) and not is_padding(False, key, [key]) and not is_padding(True, key, [])
