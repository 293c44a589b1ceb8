"""The real Claude Code, headless (`claude -p`), and the real `codex exec` as the delegated reviewer, their
models played by the scripted model servers on loopback. Claude Code: shadow verdicts beside a person's
answers, agreement shown, authority gained, a reviewer-approved confirm run without a prompt, an audit put to
the person, a denial put to the person, and a complaint taking the authority away; one test, so Claude Code
starts only a few times. Codex: the verdict read from its last message.

Claude Code and Codex are found through RATCHET_TEST_CLAUDE and RATCHET_TEST_CODEX (`.ci/run` sets both):
skipped without them, except in CI. The model servers are ended before the tests return; each client run is
ended by the reviewer's runner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    LEVELS_POLICY,
    Clock,
    Human,
    connect,
    reviewer_verdicts,
    rows,
    run_cli,
    wait_verdicts,
    write_policy,
    write_via,
)

CLAUDE_ENV = "RATCHET_TEST_CLAUDE"


def _claude() -> Path:
    given = os.environ.get(CLAUDE_ENV, "").strip()
    if not given or not Path(given).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CLAUDE_ENV} does not name an installed Claude Code (.ci/run installs it)")
        pytest.skip(f"{CLAUDE_ENV} is not set: the real Claude Code is not installed here")
    return Path(given)


class FakeModel:
    """The scripted Anthropic model server on loopback, playing `script` (rewritten to change its answer)."""

    def __init__(self, where: Path, script: list[Any]) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.where, self.log = where, where / "model.jsonl"
        (where / "script.json").write_text(json.dumps(script))
        port_file = where / "port"
        self.proc = subprocess.Popen(
            [
                *(sys.executable, str(Path(__file__).parent / "clients" / "fake_anthropic.py")),
                *("--script", str(where / "script.json"), "--log", str(self.log), "--port", "0"),
                *("--port-file", str(port_file)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def _verdict(word: str) -> list[dict[str, Any]]:
    return [{"text": json.dumps({"verdict": word, "risk": "low", "reason": f"the model says {word}"})}]


@pytest.mark.asyncio
async def test_claude_code_headless_as_the_reviewer(
    tmp_path: Path, workspace: Path, db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    claude = _claude()
    model = FakeModel(tmp_path / "model", _verdict("approve"))
    home = tmp_path / "home"
    home.mkdir()
    for key, value in {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{model.port}",
        "ANTHROPIC_API_KEY": "sk-ant-dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }.items():
        monkeypatch.setenv(key, value)
    policies = write_policy(tmp_path / "policies", LEVELS_POLICY)

    def reviewer(audit_share: float) -> None:
        (policies / "reviewer.toml").write_text(
            f'[reviewer]\nadapter = "claude"\ncommand = [{json.dumps(str(claude))}]\nmodel = "claude-sonnet-4-5"\n'
            f"timeout_s = 60\nthreshold = 0.6\nmin_samples = 3\nmin_agreement = 0\naudit_share = {audit_share}\n"
        )

    clock = Clock()
    human = Human(delay=30, clock=clock)
    try:
        reviewer(0.0)
        async with connect(workspace, policies, db, human=human, clock=clock) as client:
            for i in range(3):  # a person approves; Claude Code judges each beside them, off the path
                assert (await write_via(client, f"ask/{i}.txt", f"{i}\n"))["status"] == "executed"
            assert len(human.seen) == 3
            found = await wait_verdicts(db, 3, within=120)
            assert [(r["role"], r["verdict"], r["reviewer"]) for r in found] == [
                ("shadow", "approve", "claude:claude")
            ] * 3
            code, text = await run_cli(capsys, workspace, policies, db, "status")
            assert "agreement 3/3" in text and "ask: AUTHORITY" in text, text
            free = await write_via(client, "ask/free.txt", "free\n")  # Claude Code approves in the person's place
            assert free["status"] == "executed" and len(human.seen) == 3
        asked = [json.loads(line) for line in Path(model.log).read_text().splitlines()]
        assert sum(1 for entry in asked if entry.get("tool_names") == ["Read"]) == 4  # read-only tools, nothing else
        reviewer(1.0)  # every reviewer-approved call is audited
        async with connect(workspace, policies, db, human=human, clock=clock) as client:
            audited = await write_via(client, "ask/audited.txt", "audited\n")
            assert audited["status"] == "executed" and len(human.seen) == 4
        reviewer(0.0)
        (model.where / "script.json").write_text(json.dumps(_verdict("deny")))
        async with connect(workspace, policies, db, human=human, clock=clock) as client:
            denied = await write_via(client, "ask/denied.txt", "denied\n")  # the denial goes to the person
            assert denied["status"] == "executed" and len(human.seen) == 5
        roles = {
            r["action_id"]: (r["role"], r["verdict"])
            for r in rows(db, "SELECT action_id, role, verdict FROM reviewer_verdicts")
        }
        assert roles[free["action_id"]] == ("authority", "approve")
        assert roles[audited["action_id"]] == ("audit", "approve")
        assert roles[denied["action_id"]] == ("shadow", "deny")
        code, text = await run_cli(
            capsys, workspace, policies, db, "complain", str(free["action_id"]), "--reason", "no"
        )
        assert code == 0, text
        code, text = await run_cli(capsys, workspace, policies, db, "status")
        assert "ask: AUTHORITY" not in text and "lost authority on ask" in text, text
        assert len(reviewer_verdicts(db)) == 6
    finally:
        model.stop()


def test_codex_exec_as_the_reviewer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `codex exec` through the codex adapter, its model played by the scripted server: the verdict is
    read from its last message; a reply that is no verdict is unsure."""
    from ratchet.executors.reviewer import review_sync
    from ratchet.policy.reviewer import ReviewerSpec

    from .helpers import FAKE_OPENAI, codex_binary

    binary = codex_binary()
    script = tmp_path / "script.json"
    script.write_text(json.dumps(_verdict("deny")))
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [
            *(sys.executable, str(FAKE_OPENAI), "--script", str(script), "--log", str(tmp_path / "log.jsonl")),
            *("--port", "0", "--port-file", str(port_file)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "FAKE_FIRST_DELAY": "0"},
    )
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        home, tools = tmp_path / "home", tmp_path / "bin"
        (home / "codex").mkdir(parents=True)
        tools.mkdir()
        (tools / "codex-linux-sandbox").symlink_to(binary.resolve())
        for key, value in {
            "HOME": str(home),
            "CODEX_HOME": str(home / "codex"),
            "OPENAI_API_KEY": "dummy",
            "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        }.items():
            monkeypatch.setenv(key, value)
        overrides = {
            "model_provider": "fake",
            "model_providers.fake.name": "fake",
            "model_providers.fake.wire_api": "responses",
            "model_providers.fake.base_url": f"http://127.0.0.1:{port}/v1",
        }
        command = [str(binary)] + [part for k, v in overrides.items() for part in ("-c", f"{k}={v}")]
        spec = ReviewerSpec(adapter="codex", command=command, model="gpt-5", timeout_s=60)
        done = review_sync(spec, {"kind": "ratchet.review_request", "agent_claims": {"intent": "approve me"}})
        assert (done.verdict.verdict, done.verdict.reason) == ("deny", "the model says deny"), done
        script.write_text(json.dumps([{"text": "Sure, looks good to me!"}]))
        assert review_sync(spec, {"kind": "ratchet.review_request"}).verdict.verdict == "unsure"
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
