"""The real Codex, driven headless against a scripted model on loopback (tests/clients/fake_openai.py).

`RATCHET_TEST_CODEX` names the Codex binary (`.ci/run` installs the pinned version from npm into
`.ci/node/` and exports it). Without it a test skips, except in CI (`CI` set), where it fails: the
real-client tests must never silently not run there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

FAKE_OPENAI = Path(__file__).parent / "clients" / "fake_openai.py"
MODEL = "gpt-5.5"  # a model Codex knows: apply_patch is offered, MCP tools sit behind tool_search


def codex_binary() -> Path:
    """The Codex binary under test, or skip (locally) / fail (in CI) when there is none."""
    given = os.environ.get("RATCHET_TEST_CODEX", "").strip()
    if given and Path(given).is_file():
        return Path(given)
    why = f"RATCHET_TEST_CODEX={given!r} is not a file" if given else "RATCHET_TEST_CODEX is not set"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI installs Codex with .ci/run and must run the real-client tests")
    pytest.skip(f"{why} (.ci/run installs the pinned Codex into .ci/node/)")


class CodexRun:
    """A scratch HOME/CODEX_HOME and PATH for Codex, and one `codex exec` per `exec` call."""

    def __init__(self, binary: Path, root: Path) -> None:
        self.binary = binary
        self.home = root / "home"
        self.codex_home = self.home / ".codex"
        self.codex_home.mkdir(parents=True, exist_ok=True)
        self.bin = root / "bin"
        self.bin.mkdir(exist_ok=True)
        # Under a temporary CODEX_HOME Codex does not create its sandbox helper: link it on PATH.
        (self.bin / "codex-linux-sandbox").symlink_to(binary.resolve())
        (self.bin / "codex").symlink_to(binary.resolve())  # for `ratchet install codex --check`
        self.root = root

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
        return {
            **keep,
            "HOME": str(self.home),
            "CODEX_HOME": str(self.codex_home),
            "OPENAI_API_KEY": "dummy",
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "RATCHET_HOOK_SERVER": "off",
        }

    @contextmanager
    def model(self, script: list[Any], first_delay_s: float = 1.5) -> Iterator[tuple[Path, dict[str, str]]]:
        """The scripted model on loopback for the duration: (its run directory, Codex's `-c` overrides
        that point at it). It is stopped on exit."""
        n = len(list(self.root.glob("run-*")))
        run = self.root / f"run-{n}"
        run.mkdir()
        (run / "script.json").write_text(json.dumps(script))
        argv = [sys.executable, str(FAKE_OPENAI), "--script", str(run / "script.json"), "--log", str(run / "log.jsonl")]
        server = subprocess.Popen(
            [*argv, "--port-file", str(run / "port")],
            env={**os.environ, "FAKE_FIRST_DELAY": str(first_delay_s)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            while not (run / "port").exists() or not (run / "port").read_text():
                assert time.monotonic() < deadline, "the scripted model did not start"
                time.sleep(0.05)
            port = (run / "port").read_text().strip()
            yield (
                run,
                {
                    "model_provider": "fake",
                    "model_providers.fake.name": "fake",
                    "model_providers.fake.wire_api": "responses",
                    "model_providers.fake.base_url": f"http://127.0.0.1:{port}/v1",
                },
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)

    def exec(
        self, cwd: Path, script: list[Any], *extra: str, timeout: float = 180
    ) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str]]:
        """Run `codex exec` in `cwd` against the scripted model; (the tool outputs the model received,
        in order, as {"name", "output"}, the finished process)."""
        with self.model(script) as (run, config):
            argv = [str(self.binary), "exec", "--skip-git-repo-check", "--json", "-m", MODEL]
            for key, value in config.items():
                argv += ["-c", f"{key}={value}"]
            done = subprocess.run(
                [*argv, *extra, "do the task"],
                cwd=cwd,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
                start_new_session=True,
            )
        return last_outputs(run), done


def last_outputs(run: Path) -> list[dict[str, Any]]:
    """The tool outputs the model received by its last request in `run`."""
    lines = (run / "log.jsonl").read_text().splitlines() if (run / "log.jsonl").exists() else []
    outputs: list[dict[str, Any]] = json.loads(lines[-1])["outputs"] if lines else []
    return outputs


def tool_outputs(outputs: list[dict[str, Any]], name: str) -> list[str]:
    """The outputs of every call of tool `name` (a function's bare name) the model received."""
    return [str(o["output"]) for o in outputs if o.get("name") == name]
