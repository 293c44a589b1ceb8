"""What a person reads at a terminal, through the real console script: `--version`, a help index with
every command's first sentence whole and every option explained, tables with headers and aligned
columns, plain-text packets (a coloured diff only on a terminal without NO_COLOR), and `--json` on
every command that changes something."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import anyio
import pytest

from ratchet.cli.parser import build_parser, first_sentence

from .helpers import agent_results, blocked_and_handoff, console, console_env, queue_drafts


def test_version_comes_from_the_package_metadata(ratchet_bin: Path) -> None:
    done = subprocess.run([str(ratchet_bin), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(f"ratchet {version('ratchet-mcp')}")
    # Run from a git checkout (an editable install), it also names the commit (test_first_day.py).
    assert done.stdout.rstrip("\n").removeprefix(f"ratchet {version('ratchet-mcp')}") in ("", *_commit_suffixes(done))


def _commit_suffixes(done: subprocess.CompletedProcess[str]) -> tuple[str, ...]:
    import re

    found = re.fullmatch(r"ratchet \S+( \(commit [0-9a-f]{7,}(, modified)?\))\n", done.stdout)
    return (found[1],) if found else ()


def test_the_help_index_lists_every_command_by_group_with_its_first_sentence_whole(ratchet_bin: Path) -> None:
    done = subprocess.run([str(ratchet_bin), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    index = " ".join(done.stdout.split())
    groups = ["agent setup:", "review:", "evidence:", "policy:"]
    headings = [line for line in done.stdout.splitlines() if line in groups]
    assert headings == groups
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, parser in commands.items():
        sentence = first_sentence(parser.description or "")
        assert sentence.endswith("."), (name, sentence)
        assert f"{name} {sentence}" in index, f"`ratchet --help` cuts or leaves out {name}: {sentence}"


def _table(text: str, first: str) -> tuple[str, list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(first))
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line)
    return lines[start], rows


def _aligned(header: str, rows: list[str]) -> None:
    """Every row has a cell starting under each left-aligned header (or ending under a right-aligned one)."""
    assert rows
    for name in re.findall(r"\S+(?: [A-Z]+)*", header):
        start = header.index(name)
        end = start + len(name)
        for row in (r.ljust(len(header)) for r in rows):
            blank = row[start:end].strip() == ""  # an empty cell (no pin, no intent)
            left = start == 0 or (row[start - 1] == " " and (row[start] != " " or blank))
            right = row[end - 1 : end] not in ("", " ") and row[end : end + 1] in ("", " ")
            assert left or right, f"column {name!r} is not aligned in:\n{header}\n{row}"


def test_status_escalations_queue_and_history_have_headers_and_aligned_columns(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    queue_drafts(workspace, policies, db, "a.txt", "a-much-longer-name.txt")
    blocked_and_handoff(workspace, policies, db)
    assert (
        console(ratchet_bin, workspace, policies, db, "pin", "climb", "blocked", "--reason", "incident").returncode == 0
    )

    status = console(ratchet_bin, workspace, policies, db, "status").stdout
    header, rows = _table(status, "CLASS")
    assert header.split()[:6] == ["CLASS", "LEVEL", "PINNED", "A", "CALL", "WOULD"]
    _aligned(header, rows)
    pinned = next(r for r in rows if r.startswith("climb "))
    assert pinned.split()[:4] == ["climb", "blocked", "blocked", "block"]  # the pin is a column, not a shift

    for command, first in (("escalations", "SESSION"), ("queue", "ID"), ("history", "ID"), ("inbox", "ID")):
        header, rows = _table(console(ratchet_bin, workspace, policies, db, command).stdout, first)
        _aligned(header, rows)


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> str:
    """Run with stdout on a pseudo-terminal; what it printed."""
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdout=secondary, stderr=subprocess.DEVNULL, env=env)
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(primary)
    return b"".join(chunks).decode()


def test_show_prints_plain_text_and_colours_the_diff_only_on_a_terminal(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    stopped, _ = blocked_and_handoff(workspace, policies, db)
    (refused,) = anyio.run(
        agent_results, workspace, policies, db, ("write_file", {"path": "../out.txt", "content": "x"})
    )
    shown = console(ratchet_bin, workspace, policies, db, "show", str(stopped)).stdout
    assert shown.startswith(f"Stopped: write_file stop/x.txt (action {stopped})\n")
    for markdown in ("###", "**", "```", "_Waiting"):
        assert markdown not in shown, shown
    assert "+x" in shown and "\033[" not in shown  # the diff, uncoloured into a pipe
    assert "1. approach" in shown and "2. take-over (recommended)" in shown and "3. policy" in shown

    # An action refused before it had a class: no empty fields.
    first = console(ratchet_bin, workspace, policies, db, "history", "--json").stdout
    refused_id = min(d["action_id"] for d in json.loads(first) if d["status"] == "refused")
    plain = console(ratchet_bin, workspace, policies, db, "show", str(refused_id)).stdout
    assert refused == {} and "()" not in plain and " at ;" not in plain and "this call: \n" not in plain
    assert plain.splitlines()[:2] == [f"action {refused_id}: write_file ../out.txt [refused]", "class unclassified"]

    argv = [str(ratchet_bin), "show", str(stopped), "--workspace", str(workspace), "--policies", str(policies)]
    argv += ["--db", str(db)]
    coloured = _on_a_terminal(argv, console_env())
    assert "\033[32m+x\033[0m" in coloured
    assert "\033[" not in _on_a_terminal(argv, console_env(NO_COLOR="1"))


def _json(done: subprocess.CompletedProcess[str]) -> object:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def test_every_command_that_changes_something_takes_json(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path, home: Path
) -> None:
    a, b = queue_drafts(workspace, policies, db, "a.txt", "b.txt")
    stopped, _ = blocked_and_handoff(workspace, policies, db)
    (ran,) = anyio.run(agent_results, workspace, policies, db, ("write_file", {"path": "auto/a.txt", "content": "a\n"}))

    def run(*argv: str) -> object:
        return _json(console(ratchet_bin, workspace, policies, db, *argv, "--json"))

    approved = run("approve", str(a))
    assert isinstance(approved, list) and approved[0]["id"] == a and approved[0]["status"] == "executed"
    rejected = run("reject", str(b), "--reason", "no")
    assert isinstance(rejected, list) and rejected[0]["draft"]["status"] == "rejected"
    resolved = run("resolve", str(stopped), "--option", "take")
    assert isinstance(resolved, dict) and resolved["resolution"] == "take-over"
    complained = run("complain", str(ran["action_id"]), "--reason", "wrong")
    assert isinstance(complained, dict) and complained["action_id"] == ran["action_id"]
    assert complained["message"].startswith("complaint recorded")
    pinned = run("pin", "climb", "blocked", "--reason", "x")
    assert isinstance(pinned, dict) and (pinned["kind"], pinned["to_level"]) == ("pin", "blocked")
    unpinned = run("unpin", "climb", "--reason", "x")
    assert isinstance(unpinned, dict) and unpinned["kind"] == "unpin"
    demoted = run("demote", "ask", "--reason", "x")
    assert isinstance(demoted, dict) and demoted["action_class"] == "ask" and demoted["to_level"] == "draft"
    frozen = run("freeze", "--level", "draft", "--reason", "x")
    assert isinstance(frozen, list) and frozen[0]["kind"] == "freeze"
    unfrozen = run("unfreeze", "--reason", "x")
    assert isinstance(unfrozen, list) and unfrozen[0]["kind"] == "unfreeze"
    linted = run("lint")
    assert isinstance(linted, dict) and linted["ok"] and "climb" in [c["name"] for c in linted["classes"]]
    installed = _json(
        subprocess.run(
            [str(ratchet_bin), "install", "claude-desktop", "--workspace", str(workspace), "--json"],
            env=console_env(HOME=str(home)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    )
    assert isinstance(installed, dict) and installed["client"] == "claude-desktop" and installed["applied"] is False
    assert Path(installed["command"]).is_absolute() and installed["files"][0]["changed"] is True
