"""What a newcomer meets on the first day, through the real console script: every message says what it
means. Unknown options are named, usage errors read `ratchet: error:`, help is not indented like source,
counts agree with their nouns, figures are rounded, a command's output is shown, a second install is
short, a version names its commit, and a class that would confirm says what happens without a dialog."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from .helpers import (
    LEVELS_POLICY,
    Stdio,
    agent_results,
    blocked_and_handoff,
    console,
    console_env,
    free_port,
    queue_drafts,
    write_policy,
)

COMMANDS = (
    LEVELS_POLICY
    + """
[classes.py-run]
tools = ["run_command"]
argv = [["python3"]]
start = "draft"
ceiling = "draft"
"""
)


def bare(ratchet_bin: Path, *argv: str, **env: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [str(ratchet_bin), *argv], env=console_env(**env), capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout, done.stderr


def test_an_unknown_option_before_the_command_is_named(ratchet_bin: Path) -> None:
    code, out, err = bare(ratchet_bin, "--bogus")
    assert code == 2 and out == "" and "unknown option '--bogus'" in err and "COMMAND" not in err
    code, _, err = bare(ratchet_bin, "-V")
    assert code == 2 and "unknown option '-V' (--version prints the version)" in err
    assert err.count("\n") == 1


def test_a_subcommands_usage_error_reads_ratchet_error(ratchet_bin: Path) -> None:
    code, _, err = bare(ratchet_bin, "approve", "--class")
    assert code == 2 and err.startswith("ratchet: error: argument --class") and "`ratchet approve --help`" in err


def test_help_is_not_indented_like_source_and_says_what_approve_runs_first(ratchet_bin: Path) -> None:
    code, out, _ = bare(ratchet_bin, "approve", "--help")
    description = out.split("\n\n")[1:3]
    assert code == 0 and all(not line.startswith(" ") for part in description for line in part.splitlines())
    assert "On a draft's origin, every `ratchet approve` first runs the" in out
    assert "Run here, the origin" not in out


def test_the_version_of_a_checkout_names_its_commit(ratchet_bin: Path) -> None:
    code, out, _ = bare(ratchet_bin, "--version")
    root = Path(__file__).resolve().parent.parent
    assert code == 0 and out.startswith("ratchet ")
    if (root / ".git").exists():  # run from a checkout (an editable install): the commit it stands at
        assert re.search(r"\(commit [0-9a-f]{7,}(, modified)?\)", out), out


def test_counts_agree_with_their_nouns_and_a_confirm_class_says_what_a_dialogless_client_gets(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    queue_drafts(workspace, policies, db, "one.txt")
    out = console(ratchet_bin, workspace, policies, db, "status").stdout
    assert "; 1 draft queued" in out and "1 drafts" not in out
    ask = next(line for line in out.splitlines() if line.startswith("ask "))
    assert (
        " confirm* " in ask and "* confirm: asked in the client's dialog; a client that cannot ask gets a draft" in out
    )


def test_explain_rounds_the_evidence_it_prints(ratchet_bin: Path, workspace: Path, policies: Path, db: Path) -> None:
    calls = [("write_file", {"path": f"climb/{n}.txt", "content": f"{n}\n"}) for n in range(3)]
    ids = [r["draft_id"] for r in anyio.run(agent_results, workspace, policies, db, *calls)]
    for i in ids:
        assert console(ratchet_bin, workspace, policies, db, "approve", str(i)).returncode == 0
    after = anyio.run(
        agent_results, workspace, policies, db, ("write_file", {"path": "climb/next.txt", "content": "x\n"})
    )[0]
    shown = console(ratchet_bin, workspace, policies, db, "explain", str(after["action_id"]))
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"lower bound 0\.\d{3},", shown.stdout), shown.stdout
    assert not re.search(r"\d\.\d{6,}", shown.stdout), shown.stdout


@pytest.mark.asyncio
async def test_show_and_approve_print_a_commands_output(
    tmp_path: Path, ratchet_bin: Path, workspace: Path, db: Path
) -> None:
    policies = write_policy(tmp_path / "commands", COMMANDS)
    script = "import sys; print('collected 3 items'); sys.stderr.write('E   AssertionError: boom\\n'); sys.exit(4)"
    (drafted,) = await agent_results(workspace, policies, db, ("run_command", {"argv": ["python3", "-c", script]}))
    n = drafted["draft_id"]
    approved = console(ratchet_bin, workspace, policies, db, "approve", str(n))
    assert approved.returncode == 1
    assert "exit code 4" in approved.stdout and "| collected 3 items" in approved.stdout
    assert "| E   AssertionError: boom" in approved.stdout
    shown = console(ratchet_bin, workspace, policies, db, "show", str(n))
    assert (
        "stdout (" in shown.stdout and "| collected 3 items" in shown.stdout and "| E   AssertionError" in shown.stdout
    )


def test_a_second_install_apply_says_only_that_nothing_changed(
    ratchet_bin: Path, workspace: Path, tmp_path: Path
) -> None:
    argv = ["install", "claude-code", "--workspace", str(workspace), "--apply", "--command", "ratchet"]
    home = tmp_path / "home"  # the installer also writes the user's ~/.claude/settings.json
    home.mkdir()
    code, first, err = bare(ratchet_bin, *argv, HOME=str(home))
    assert code == 0, err
    code, second, err = bare(ratchet_bin, *argv, HOME=str(home))
    assert code == 0, err
    head, *files, last = second.rstrip().splitlines()
    assert head == "ratchet install claude-code:" and last.endswith("nothing to change."), second
    assert len(files) == 3 and all(line.endswith(": unchanged") for line in files), second
    assert len(first.splitlines()) > len(second.splitlines())


def test_a_stopped_actions_packet_says_how_long_it_waited_in_words(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    (stopped,) = anyio.run(
        agent_results, workspace, policies, db, ("write_file", {"path": "stop/x.txt", "content": "x\n"})
    )
    out = console(ratchet_bin, workspace, policies, db, "show", str(stopped["action_id"])).stdout
    assert "waiting less than a minute; it holds up:" in out and "queued behind it" not in out
    assert json.loads(console(ratchet_bin, workspace, policies, db, "show", str(stopped["action_id"]), "--json").stdout)


def test_taking_a_handoff_over_says_ratchet_will_not_make_the_change_and_an_old_stop_blocks_nobody(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    (old,) = anyio.run(agent_results, workspace, policies, db, ("write_file", {"path": "stop/x.txt", "content": "x\n"}))
    stopped = old["action_id"]
    _, handoff = blocked_and_handoff(workspace, policies, db)  # another session, at work now
    inbox = console(ratchet_bin, workspace, policies, db, "inbox").stdout
    assert inbox.count("BLOCKING") == 3  # every session is at work: its agent waits on the answer
    with sqlite3.connect(db) as conn:  # the first session's only action: two hours ago
        conn.execute("UPDATE actions SET created_at = created_at - 7200 WHERE id = ?", (stopped,))
    inbox = console(ratchet_bin, workspace, policies, db, "inbox").stdout
    stop_line = next(line for line in inbox.splitlines() if line.split()[:1] == [str(stopped)])
    assert "BLOCKING" not in stop_line
    done = console(ratchet_bin, workspace, policies, db, "resolve", str(handoff), "--option", "take-over")
    assert done.returncode == 0, done.stderr
    assert "you take it over. Ratchet will not make this change: make it yourself" in done.stdout


def test_serve_tells_the_agent_plainly_and_logs_each_call_once(
    tmp_path: Path, ratchet_bin: Path, git_workspace: Path, db: Path
) -> None:
    reads = '\n[classes.git-read]\ntools = ["git_status"]\nstart = "autonomous"\n'
    policies = write_policy(tmp_path / "git-policies", LEVELS_POLICY + reads)
    argv = [str(ratchet_bin), "serve", "--workspace", str(git_workspace), "--policies", str(policies), "--db", str(db)]
    with Stdio(argv, env=console_env()) as server:
        server.initialize()
        server.call(2, "start_task", {"goal": "tidy", "scope_paths": ["docs/**"]})
        wrong = json.loads(server.line())["result"]
        server.call(3, "write_file", {"path": "../outside.txt", "content": "x"})
        refused = json.loads(server.line())["result"]
        server.call(4, "git_status", {})
        status = json.loads(server.line())["result"]
        _, err = server.stop(signal.SIGTERM)
    text = wrong["content"][0]["text"]
    assert wrong["isError"] and text.startswith("start_task was called with arguments it does not take")
    assert "scope: field required" in text and "budget: field required" in text
    assert "pydantic" not in text and "http" not in text and "validation error" not in text
    assert refused["isError"]
    assert status["content"][0]["text"].startswith("git status: done"), status["content"][0]["text"]
    # Every line on stderr is Ratchet's own; each call is one line, the refused one included once.
    lines = err.splitlines()
    assert all(line.startswith("ratchet") for line in lines), err
    assert sum("write_file" in line for line in lines) == 1 and sum("start_task" in line for line in lines) == 1, err
    assert "wrong arguments: scope, budget" in err


def test_serve_http_prints_only_ratchets_own_lines(
    ratchet_bin: Path, workspace: Path, policies: Path, db: Path
) -> None:
    argv = [str(ratchet_bin), "serve", "--http", "--port", str(free_port()), "--workspace", str(workspace)]
    with Stdio([*argv, "--policies", str(policies), "--db", str(db)], env=console_env()) as server:
        assert server.proc.stderr is not None
        first = server.proc.stderr.readline()
        assert first.startswith("ratchet: serving http://")
        time.sleep(2)  # its session manager has started by now
        _, err = server.stop(signal.SIGINT)
    lines = [first, *err.splitlines()]
    assert lines and all(line.startswith("ratchet") for line in lines), lines


def test_the_demo_says_it_leaves_its_directory_behind(ratchet_bin: Path, tmp_path: Path) -> None:
    code, out, err = bare(ratchet_bin, "demo", "--dir", str(tmp_path / "demo"))
    assert code == 0, err
    last = out.rstrip().splitlines()[-1]
    assert (
        last
        == f"The demo's files stay in {tmp_path / 'demo'} for you to look at; remove that directory when you are done."
    )
    assert (tmp_path / "demo").is_dir()


def test_lint_lists_the_classes_in_aligned_columns(ratchet_bin: Path, tmp_path: Path) -> None:
    code, out, err = bare(ratchet_bin, "lint", str(Path(__file__).resolve().parent.parent / "policies"))
    assert code == 0, err
    header, *rows = [line for line in out.splitlines()[1:] if line.startswith("  ")]
    assert header.split() == ["CLASS", "START", "FLOOR", "CEILING", "SANDBOX", "RULE"]
    for column in ("START", "FLOOR", "CEILING", "SANDBOX", "RULE"):  # every row's cell starts under its heading
        at = header.index(column)
        assert all(row[at - 1] == " " and row[at] != " " for row in rows), (column, rows)
    starter = (Path(__file__).resolve().parent.parent / "policies" / "files.toml").read_text()
    assert "lint --explain" not in starter
