"""The sandbox enforces the class's claim: a class that claims to read runs where nothing can be
written; a class that writes gets the workspace minus what gates the agent or runs outside later
(client configurations, the directory `core.hooksPath` names, files `include.path` names,
`.git/info/`, the paths of classes a human must review); the runtime directory and its sockets are
hidden; every process the agent causes (commands, approved drafts, verification checks) gets its
confinement from the one helper, the review token's mask included; and a program under the host's
`/tmp` still runs inside the sandbox."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ratchet.errors import PolicyError
from ratchet.executors.sandbox import sandbox_status
from ratchet.policy.guarded import CLIENT_CONFIGS, guarded_paths, installation_inside
from ratchet.policy.load import load_policy
from ratchet.record.store import default_token_file

from .helpers import connect, git, make_repo, run_cli, write_policy

STARTER = Path(__file__).resolve().parent.parent / "policies"


def _policy(profile: str = "workspace", start: str = "autonomous") -> str:
    """A catch-all command class with this sandbox profile, and a file class a human must review."""
    return f"""
[defaults]
window_size = 10
min_samples = 3
promote_at = 0.4
demote_below = 0.2
max_consecutive_failures = 100

[classes.anything]
description = "every command"
tools = ["run_command"]
start = "{start}"
floor = "{start}"
ceiling = "{start}"
sandbox = "{profile}"
count_execution_failures = false

[classes.makefiles]
description = "build configuration: a human reviews every change"
tools = ["write_file", "edit_file"]
paths = ["Makefile"]
start = "draft"
ceiling = "confirm"
"""


# Tries to write each path given (appending a marker) and says what happened. Always exits 0.
PROBE = """
for target in "$@"; do
    if (mkdir -p "$(dirname "$target")" && printf 'PWNED' >> "$target") 2>/dev/null; then
        echo "WROTE $target"
    else
        echo "DENIED $target"
    fi
done
"""


@pytest.fixture(autouse=True)
def _needs_a_sandbox() -> None:
    status = sandbox_status()
    assert status.available, f"these tests need the sandbox: {status.detail}"


def _script(workspace: Path, text: str) -> str:
    """A script file (so the analysis sees `sh FILE`, and the test reaches the sandbox itself)."""
    (workspace / "scripts").mkdir(exist_ok=True)
    name = f"scripts/{uuid.uuid4().hex}.sh"
    (workspace / name).write_text(text)
    return name


async def _run(client: Client, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("run_command", args)
    out: dict[str, Any] = result.structured_content or {"status": "refused"}
    out["text"] = result.content[0].text
    return out


def _lines(out: dict[str, Any]) -> list[str]:
    result = out.get("result") or {}
    return str(result.get("stdout", "")).splitlines()


@pytest.mark.asyncio
async def test_a_read_classed_command_that_writes_by_a_shell_trick_writes_nothing(
    tmp_path: Path, workspace: Path, db: Path
) -> None:
    """The starter policies: bash evaluates a variable's value in arithmetic, so `echo $[x]` runs the
    command hidden in x. Whether the analysis sees through it or not, nothing is written."""
    make_repo(workspace, identity=("Dev", "dev@example.com"))
    policies = tmp_path / "policies"
    shutil.copytree(STARTER, policies)
    tricks = {
        "arith": "x='a[$(touch pwned-arith)]'; echo $[x]",
        "subscript": "a=(1); x='a[$(touch pwned-subscript)]'; echo ${a[x]}",
        "offset": "v=abc; x='a[$(touch pwned-offset)]'; echo ${v:x}",
    }
    async with connect(workspace, policies, db) as client:
        outs = {name: await _run(client, argv=["bash", "-c", line]) for name, line in tricks.items()}
    for name, out in outs.items():
        assert not (workspace / f"pwned-{name}").exists(), (name, out["text"])
        if out["status"] == "executed":
            assert out["action_class"] == "read-only-run"  # it ran as a read: under the read-only profile


@pytest.mark.asyncio
async def test_the_read_only_profile_writes_nothing_but_its_private_tmp(
    tmp_path: Path, workspace: Path, db: Path
) -> None:
    make_repo(workspace, identity=("Dev", "dev@example.com"))
    (workspace / "notes.txt").write_text("notes\n")
    targets = ["notes.txt", "new.txt", "sub/new.txt", ".git/HEAD", "/tmp/private.txt"]
    reader = write_policy(tmp_path / "read", _policy("read-only"))
    writer = write_policy(tmp_path / "write", _policy("workspace"))
    async with connect(workspace, reader, tmp_path / "r.db") as client:
        read = await _run(client, argv=["sh", _script(workspace, PROBE + "cat notes.txt\n"), *targets])
    async with connect(workspace, writer, tmp_path / "w.db") as client:
        write = await _run(client, argv=["sh", _script(workspace, PROBE), "new.txt"])
    assert read["status"] == "executed" and read["action_class"] == "anything", read["text"]
    assert _lines(read) == [
        "DENIED notes.txt",
        "DENIED new.txt",
        "DENIED sub/new.txt",
        "DENIED .git/HEAD",
        "WROTE /tmp/private.txt",
        "notes",
    ]
    assert (workspace / "notes.txt").read_text() == "notes\n" and not (workspace / "sub").exists()
    assert not Path("/tmp/private.txt").exists()
    # The same write under a class that writes: the workspace profile lets it through.
    assert write["status"] == "executed" and _lines(write) == ["WROTE new.txt"], write["text"]
    assert (workspace / "new.txt").read_text() == "PWNED"


@pytest.mark.asyncio
async def test_a_writing_class_cannot_touch_what_gates_the_agent_or_runs_outside_later(
    tmp_path: Path, workspace: Path, db: Path
) -> None:
    make_repo(workspace, identity=("Dev", "dev@example.com"))
    policies = write_policy(tmp_path / "policies", _policy())
    (workspace / ".claude").mkdir()
    (workspace / ".claude" / "settings.json").write_text("{}\n")
    (workspace / ".vscode").mkdir()
    (workspace / "githooks").mkdir()
    (workspace / "extra.gitconfig").write_text("[user]\n\tname = Dev\n")
    (workspace / "Makefile").write_text("all:\n")
    git(workspace, "config", "core.hooksPath", "githooks")
    git(workspace, "config", "include.path", "../extra.gitconfig")
    targets = [
        ".claude/settings.json",
        ".vscode/tasks.json",
        "githooks/pre-commit",
        "extra.gitconfig",
        ".git/info/attributes",
        ".git/info/exclude",
        "Makefile",
        "ordinary.txt",
    ]
    async with connect(workspace, policies, db) as client:
        out = await _run(client, argv=["sh", _script(workspace, PROBE), *targets])
        planted = await _run(client, argv=["sh", _script(workspace, "echo '{}' > .mcp.json\n")])
        codex = await _run(client, argv=["sh", _script(workspace, PROBE), ".codex/config.toml"])
    assert out["status"] == "executed", out["text"]
    assert _lines(out) == [f"DENIED {t}" for t in targets[:-1]] + ["WROTE ordinary.txt"], out["text"]
    assert (workspace / ".claude" / "settings.json").read_text() == "{}\n"
    assert not (workspace / "githooks" / "pre-commit").exists()
    assert (workspace / "Makefile").read_text() == "all:\n"
    assert not (workspace / ".vscode" / "tasks.json").exists()
    # A client configuration that did not exist cannot be created either: removed, and the call fails.
    for name, done in ((".mcp.json", planted), (".codex", codex)):
        assert done["status"] == "failed" and name in done["text"], done["text"]
        assert not (workspace / name).exists()


@pytest.mark.asyncio
async def test_a_command_a_person_approved_may_update_what_only_review_allows(
    tmp_path: Path, workspace: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Build configuration is read-only to what runs unreviewed, not to a command the human approved
    (an install that updates its lock file); the client configurations stay read-only even then."""
    make_repo(workspace, identity=("Dev", "dev@example.com"))
    policies = write_policy(tmp_path / "policies", _policy(start="draft"))
    (workspace / "Makefile").write_text("all:\n")
    (workspace / ".claude").mkdir()
    (workspace / ".claude" / "settings.json").write_text("{}\n")
    async with connect(workspace, policies, db) as client:
        queued = await _run(client, argv=["sh", _script(workspace, PROBE), "Makefile", ".claude/settings.json"])
    assert queued["status"] == "draft", queued["text"]
    code, text = await run_cli(capsys, workspace, policies, db, "approve", str(queued["draft_id"]))
    assert code == 0, text
    assert (workspace / "Makefile").read_text() == "all:\nPWNED"
    assert (workspace / ".claude" / "settings.json").read_text() == "{}\n"


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user runtime directory holding a listening socket and a secret, as a session has."""
    # In $HOME, not under /tmp: the sandbox's private /tmp would hide it whatever else held.
    folder = Path.home() / f".ratchet-rt-{uuid.uuid4().hex[:8]}"  # short: a socket path has a length limit
    folder.mkdir(mode=0o700)
    (folder / "secret").write_text("HUMAN-SIDE-SECRET\n")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(folder / "bus"))
    listener.listen(1)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    try:
        yield folder
    finally:
        listener.close()
        shutil.rmtree(folder)


@pytest.mark.asyncio
@pytest.mark.parametrize("profile", ["read-only", "workspace"])
async def test_the_runtime_directory_and_its_sockets_are_hidden(
    profile: str, tmp_path: Path, workspace: Path, db: Path, runtime_dir: Path
) -> None:
    policies = write_policy(tmp_path / "policies", _policy(profile))
    probe = f"""
ls -A {runtime_dir}
cat {runtime_dir}/secret || echo NO-SECRET
python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect("{runtime_dir}/bus"); print("CONNECTED")' \
    2>/dev/null || echo NO-SOCKET
"""
    async with connect(workspace, policies, db) as client:
        out = await _run(client, argv=["sh", _script(workspace, probe)])
    assert out["status"] == "executed", out["text"]
    assert _lines(out) == ["NO-SECRET", "NO-SOCKET"], out["text"]


@pytest.mark.asyncio
async def test_a_verification_check_cannot_read_the_review_token(tmp_path: Path, workspace: Path, db: Path) -> None:
    """Checks get their confinement from the one helper, so the review token is hidden from them too."""
    token = default_token_file(db)
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text("REVIEW-PAGE-TOKEN\n")
    policy = (
        _policy()
        + f"""
[classes.checked-docs]
tools = ["write_file"]
paths = ["docs/**"]
start = "autonomous"
verify = [["sh", "-c", "cat \\"$0\\" > leaked.txt; true", "{token}"]]
"""
    )
    policies = write_policy(tmp_path / "policies", policy)
    async with connect(workspace, policies, db) as client:
        done = await client.call_tool("write_file", {"path": "docs/a.md", "content": "a\n"})
    assert done.structured_content is not None and done.structured_content["status"] == "executed"
    assert (workspace / "leaked.txt").exists()  # the check ran
    assert "REVIEW-PAGE-TOKEN" not in (workspace / "leaked.txt").read_text()


@pytest.mark.asyncio
async def test_a_program_under_the_host_tmp_still_runs_inside_the_sandbox(
    tmp_path: Path, workspace: Path, db: Path
) -> None:
    """A tool unpacked under /tmp (outside the workspace) is bound read-only into the private /tmp."""
    tool = Path(f"/tmp/ratchet-tool-{uuid.uuid4().hex[:8]}")
    try:
        (tool / "bin").mkdir(parents=True)
        (tool / "share").mkdir()
        (tool / "share" / "data.txt").write_text("tool data\n")
        program = tool / "bin" / "mytool"
        program.write_text(f"#!/bin/sh\ncat {tool}/share/data.txt\necho x >> {tool}/share/data.txt || echo RO\n")
        program.chmod(0o755)
        policy = _policy() + '\n[classes.tool]\ntools = ["run_command"]\nargv = [["' + str(program) + '"]]\n'
        policy += 'start = "autonomous"\n'
        policies = write_policy(tmp_path / "policies", policy)
        async with connect(workspace, policies, db) as client:
            out = await _run(client, argv=[str(program)])
        assert out["status"] == "executed", out["text"]
        assert _lines(out) == ["tool data", "RO"]
        assert (tool / "share" / "data.txt").read_text() == "tool data\n"
    finally:
        shutil.rmtree(tool, ignore_errors=True)


def test_a_bad_sandbox_profile_fails_closed_naming_file_key_and_what_was_expected(tmp_path: Path) -> None:
    policies = write_policy(tmp_path / "policies", _policy("readonly"))
    with pytest.raises(PolicyError) as caught:
        load_policy(policies)
    text = str(caught.value)
    assert "policy.toml" in text and "classes.anything" in text and "'read-only'" in text and "'workspace'" in text
    # true and false keep their meaning: the workspace profile, and none.
    legacy = write_policy(tmp_path / "legacy", _policy().replace('sandbox = "workspace"', "sandbox = false"))
    assert load_policy(legacy).classes["anything"].profile == "off"
    assert not load_policy(legacy).classes["anything"].sandbox


@pytest.mark.asyncio
async def test_lint_shows_each_class_profile_and_the_starter_reads_are_read_only(
    workspace: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = load_policy(STARTER)
    assert policy.classes["read-only-run"].profile == "read-only"
    assert policy.classes["git-read"].profile == "read-only"
    assert policy.classes["tests-run"].profile == "workspace"
    code, text = await run_cli(capsys, workspace, STARTER, db, "lint")
    assert code == 0, text
    line = next(x for x in text.splitlines() if x.strip().startswith("read-only-run"))
    assert "sandbox read-only" in line
    assert "sandbox workspace +network" in next(x for x in text.splitlines() if "network-run" in x)


def test_the_starter_guards_client_configs_cli_approved_paths_and_reviewed_ones(tmp_path: Path) -> None:
    guarded = guarded_paths(load_policy(STARTER), tmp_path)
    always = {p.relative_to(tmp_path).as_posix() for p in guarded.always}
    reviewed = {p.relative_to(tmp_path).as_posix() for p in guarded.reviewed}
    assert set(CLIENT_CONFIGS) <= always
    assert {".github", "AGENTS.md", "CLAUDE.md", "Jenkinsfile"} <= always  # CLI approval: agent and CI config
    assert {"Makefile", "pyproject.toml", "package.json", ".env"} <= reviewed  # ceilings below autonomous
    assert "docs" not in always | reviewed and "src" not in always | reviewed


def test_an_installation_inside_the_workspace_is_guarded() -> None:
    """Ratchet installed in a project's `.venv` is read-only to the project's commands (a planted
    `.pth` there would run outside every sandbox at the next hook event)."""
    prefix = Path(os.path.realpath(sys.prefix))
    inside = installation_inside(prefix.parent)
    assert prefix in inside
    assert installation_inside(Path("/nonexistent-root")) == []


@pytest.mark.asyncio
async def test_the_undo_content_store_is_ignored_by_git_like_the_database(workspace: Path) -> None:
    """Prior versions kept for undo may hold what a change removed (a secret taken out of a file): they
    stay out of the team's repository, also where an older Ratchet wrote the ignore file."""
    make_repo(workspace, identity=("Dev", "dev@example.com"))
    state = workspace / ".ratchet"
    state.mkdir()
    (state / ".gitignore").write_text("# the trust database is per machine; policies/ here is shared\nratchet.db*\n")
    policies = write_policy(state / "policies", _policy())
    (workspace / "docs").mkdir()
    (workspace / "docs" / "a.md").write_text("before\n")
    policy = _policy() + '\n[classes.docs]\ntools = ["write_file"]\npaths = ["docs/**"]\nstart = "autonomous"\n'
    write_policy(state / "policies", policy)
    async with connect(workspace, policies, state / "ratchet.db") as client:
        done = await client.call_tool("write_file", {"path": "docs/a.md", "content": "after\n"})
    assert done.structured_content is not None and done.structured_content["status"] == "executed"
    kept = [p for p in (state / "content").rglob("*") if p.is_file()]
    assert kept, "the prior version was kept for undo"
    status = git(workspace, "status", "--porcelain", "--untracked-files=all")
    assert ".ratchet/content" not in status and "ratchet.db" not in status, status
    assert ".ratchet/policies/policy.toml" in status  # the policy is still the team's to commit
