"""`ratchet install`: one command sets Ratchet up in Claude Code, Codex and Claude Desktop, keeping
everything already in their files, backing each file up, and changing nothing the second time."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ratchet import install
from ratchet.cli import main
from ratchet.errors import InvalidRequest

from .helpers import HOOK_POLICY, write_policy

BUILTINS = ["Bash", "Write", "Edit", "MultiEdit", "NotebookEdit"]

OTHER_SETTINGS: dict[str, Any] = {
    "model": "opus",
    "permissions": {"allow": ["Read"], "deny": ["WebFetch"]},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
    },
}
OTHER_SERVERS: dict[str, Any] = {"mcpServers": {"other": {"command": "other-server", "args": ["--x"]}}, "extra": 1}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $HOME (Path.home() follows it), no $CODEX_HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    return home


def _install(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    if args[:1] == ("claude-code",) and "--hook-path" not in args and "--check" not in args:
        # These tests hold the command-hook path; the mcp_tool path has its own (test_claude_code_real.py).
        args = (*args, "--hook-path", "command")
    code = main(["install", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.ratchet-backup-*"))


def _ours(settings: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [
        h for g in settings.get("hooks", {}).get(event, []) for h in g["hooks"] if "hook claude-code" in h["command"]
    ]


def _write_json(path: Path, data: Any) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n")  # not our indentation: kept as is when nothing changes
    return path.read_bytes()


def test_claude_code_keeps_what_is_there_backs_up_and_is_idempotent(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path
) -> None:
    mcp_file, settings_file = workspace / ".mcp.json", workspace / ".claude" / "settings.json"
    mcp_before, settings_before = _write_json(mcp_file, OTHER_SERVERS), _write_json(settings_file, OTHER_SETTINGS)

    # By default: a diff, and nothing written.
    code, out = _install(capsys, "claude-code", "--workspace", str(workspace))
    assert code == 0 and f"+++ {settings_file}" in out and "--apply" in out and '"PreToolUse"' in out
    assert mcp_file.read_bytes() == mcp_before and settings_file.read_bytes() == settings_before
    assert not _backups(mcp_file) and not _backups(settings_file)

    code, out = _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")
    assert code == 0 and f"wrote {settings_file}" in out
    servers = json.loads(mcp_file.read_text())
    assert servers["mcpServers"]["other"] == OTHER_SERVERS["mcpServers"]["other"] and servers["extra"] == 1
    ratchet = servers["mcpServers"]["ratchet"]
    assert ratchet["type"] == "stdio" and ratchet["args"] == ["serve", "--workspace", "."]
    assert Path(ratchet["command"]).name == "ratchet"
    settings = json.loads(settings_file.read_text())
    # Theirs kept, and Ratchet's own tools pass Claude Code's prompt (Ratchet's gate asks, once).
    assert settings["model"] == "opus" and settings["permissions"]["allow"] == ["Read", "mcp__ratchet"]
    assert settings["permissions"]["deny"][0] == "WebFetch"  # theirs kept; the sandbox's Edit rules follow
    assert settings["hooks"]["PreToolUse"][0] == OTHER_SETTINGS["hooks"]["PreToolUse"][0]  # theirs first, kept
    assert settings["hooks"]["Stop"][0] == OTHER_SETTINGS["hooks"]["Stop"][0]
    for event in ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied"):
        group = next(g for g in settings["hooks"][event] if _ours({"hooks": {event: [g]}}, event))
        assert group["matcher"] == "|".join(BUILTINS)
    for event in ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied", "Stop", "UserPromptSubmit"):
        assert len(_ours(settings, event)) == 1
        assert '--workspace "$CLAUDE_PROJECT_DIR"' in _ours(settings, event)[0]["command"]
    assert _ours(settings, "PreToolUse")[0]["command"].endswith("|| exit 2")  # a hook that cannot start blocks
    assert not _ours(settings, "PostToolUse")[0]["command"].endswith("|| exit 2")
    # Each file was backed up first, byte for byte.
    assert [b.read_bytes() for b in _backups(mcp_file)] == [mcp_before]
    assert [b.read_bytes() for b in _backups(settings_file)] == [settings_before]

    # A second run changes nothing, and says so.
    written = mcp_file.read_bytes(), settings_file.read_bytes()
    code, out = _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")
    assert code == 0 and "already installed" in out and "unchanged" in out and "wrote" not in out
    assert (mcp_file.read_bytes(), settings_file.read_bytes()) == written
    assert len(_backups(mcp_file)) == 1 and len(_backups(settings_file)) == 1
    # Reformatted by someone else (Claude Code rewrites its files) but holding the same: still unchanged.
    reformatted = _write_json(settings_file, json.loads(settings_file.read_text()))
    assert "already installed" in _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")[1]
    assert settings_file.read_bytes() == reformatted


def test_a_changed_installation_replaces_only_its_own_hooks(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path, tmp_path: Path
) -> None:
    settings_file = workspace / ".claude" / "settings.json"
    _write_json(settings_file, OTHER_SETTINGS)
    assert _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")[0] == 0
    db = tmp_path / "elsewhere.db"
    code, out = _install(capsys, "claude-code", "--workspace", str(workspace), "--db", str(db), "--apply")
    assert code == 0 and f"wrote {settings_file}" in out
    settings = json.loads(settings_file.read_text())
    assert len(_ours(settings, "PreToolUse")) == 1 and f"--db {db}" in _ours(settings, "PreToolUse")[0]["command"]
    assert settings["hooks"]["PreToolUse"][0] == OTHER_SETTINGS["hooks"]["PreToolUse"][0]
    assert json.loads((workspace / ".mcp.json").read_text())["mcpServers"]["ratchet"]["args"][-2:] == ["--db", str(db)]


def test_user_and_local_scopes(capsys: pytest.CaptureFixture[str], home: Path, workspace: Path) -> None:
    claude_json = home / ".claude.json"
    state = {"numStartups": 12, "mcpServers": {"other": {"command": "x"}}, "projects": {"/elsewhere": {"a": 1}}}
    _write_json(claude_json, state)

    assert _install(capsys, "claude-code", "--scope", "user", "--workspace", str(workspace), "--apply")[0] == 0
    data = json.loads(claude_json.read_text())
    assert data["numStartups"] == 12 and data["projects"] == state["projects"]
    assert set(data["mcpServers"]) == {"other", "ratchet"}
    assert _ours(json.loads((home / ".claude" / "settings.json").read_text()), "PreToolUse")

    assert _install(capsys, "claude-code", "--scope", "local", "--workspace", str(workspace), "--apply")[0] == 0
    data = json.loads(claude_json.read_text())
    assert data["projects"]["/elsewhere"] == {"a": 1}
    assert data["projects"][str(workspace.resolve())]["mcpServers"]["ratchet"]["args"][0] == "serve"
    assert _ours(json.loads((workspace / ".claude" / "settings.local.json").read_text()), "PreToolUse")
    assert not (workspace / ".mcp.json").exists() and not (workspace / ".claude" / "settings.json").exists()
    assert len(_backups(claude_json)) == 2


def test_deny_builtins_instead_of_hooks(capsys: pytest.CaptureFixture[str], home: Path, workspace: Path) -> None:
    settings_file = workspace / ".claude" / "settings.json"
    _write_json(settings_file, {**OTHER_SETTINGS, "permissions": {"deny": ["WebFetch", "Bash"]}})
    assert _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")[0] == 0
    code, out = _install(capsys, "claude-code", "--workspace", str(workspace), "--deny-builtins", "--apply")
    assert code == 0 and "denied" in out
    settings = json.loads(settings_file.read_text())
    deny = settings["permissions"]["deny"]
    assert [d for d in deny if not d.startswith("Edit(")] == ["WebFetch", *BUILTINS]  # kept, no duplicates
    assert not any(_ours(settings, e) for e in settings["hooks"])  # Ratchet's hooks removed ...
    assert settings["hooks"] == OTHER_SETTINGS["hooks"]  # ... theirs kept
    assert (
        _install(capsys, "claude-code", "--workspace", str(workspace), "--deny-builtins", "--apply")[1].count(
            "unchanged"
        )
        == 2
    )


def test_unreadable_settings_are_never_overwritten(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path
) -> None:
    settings_file = workspace / ".claude" / "settings.json"
    settings_file.parent.mkdir()
    settings_file.write_text('{"hooks": {"PreToolUse": [}')
    code, out = _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")
    assert code == 1 and "not valid JSON" in out
    assert settings_file.read_text() == '{"hooks": {"PreToolUse": [}' and not (workspace / ".mcp.json").exists()
    settings_file.write_text('{"hooks": []}')
    code, out = _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")
    assert code == 1 and "hooks is not an object" in out


def test_the_installed_hook_command_decides_and_fails_closed(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path, tmp_path: Path
) -> None:
    policies = write_policy(tmp_path / "p", HOOK_POLICY)
    db = tmp_path / "state" / "ratchet.db"
    args = ["claude-code", "--workspace", str(workspace), "--policies", str(policies), "--db", str(db), "--apply"]
    assert _install(capsys, *args)[0] == 0
    settings = json.loads((workspace / ".claude" / "settings.json").read_text())
    command = _ours(settings, "PreToolUse")[0]["command"]

    def run(cmd: str, tool: str, tool_input: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        event = {
            "session_id": "s",
            "cwd": str(workspace / "sub"),  # Claude Code's cwd moved; the workspace stays the project
            "hook_event_name": "PreToolUse",
            "tool_name": tool,
            "tool_input": tool_input,
            "tool_use_id": "toolu_1",
        }
        env = {**os.environ, "CLAUDE_PROJECT_DIR": str(workspace)}
        return subprocess.run(
            ["sh", "-c", cmd], input=json.dumps(event), capture_output=True, text=True, env=env, timeout=120
        )

    (workspace / "sub").mkdir()
    done = run(command, "Write", {"file_path": str(workspace / "auto/a.txt"), "content": "a"})
    assert done.returncode == 0 and json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "allow"
    done = run(command, "Bash", {"command": "touch x"})
    assert json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert db.exists() and not (workspace / "sub" / ".ratchet").exists()
    # Ratchet missing or broken: the shell's own failure becomes exit 2, which blocks the call.
    exe = json.loads((workspace / ".mcp.json").read_text())["mcpServers"]["ratchet"]["command"]
    broken = command.replace(exe, str(tmp_path / "no-such-ratchet"), 1)
    assert broken != command
    done = run(broken, "Write", {"file_path": str(workspace / "auto/a.txt"), "content": "a"})
    assert done.returncode == 2 and done.stdout == ""


# -- Codex ---------------------------------------------------------------------------------------

CODEX_CONFIG = """\
# my Codex settings
model = "gpt-5.2"
approval_policy = "on-request"

[mcp_servers.docs]
command = "docs-server"
args = ["--port", "1"]   # keep this comment

[profiles.fast]
model = "gpt-5.2-mini\""""  # no newline at the end, on purpose


def test_codex_appends_a_managed_block_and_keeps_the_rest_byte_for_byte(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)  # the default install also writes the project's .codex/hooks.json
    config = home / ".codex" / "config.toml"
    config.parent.mkdir()
    config.write_text(CODEX_CONFIG)

    code, out = _install(capsys, "codex")
    assert code == 0 and "+[mcp_servers.ratchet]" in out and config.read_text() == CODEX_CONFIG
    assert "Codex's own shell and apply_patch go through Ratchet's gate" in out

    code, out = _install(capsys, "codex", "--apply")
    assert code == 0 and f"wrote {config}" in out
    text = config.read_text()
    assert text.startswith(CODEX_CONFIG + "\n")  # everything before is untouched
    data = tomllib.loads(text)
    assert data["model"] == "gpt-5.2" and data["mcp_servers"]["docs"] == {
        "command": "docs-server",
        "args": ["--port", "1"],
    }
    ratchet = data["mcp_servers"]["ratchet"]
    assert Path(ratchet["command"]).name == "ratchet" and ratchet["args"] == ["serve", "--workspace", "."]
    modes = {tool: v["approval_mode"] for tool, v in ratchet["tools"].items()}
    assert {"write_file", "edit_file", "run_command", "trust_levels", "review_drafts"} <= set(modes)
    assert set(modes.values()) == {"approve"}
    assert "# read-only" in text and "# governed" in text
    assert [b.read_text() for b in _backups(config)] == [CODEX_CONFIG]

    code, out = _install(capsys, "codex", "--apply")
    assert code == 0 and "already installed" in out and config.read_text() == text and len(_backups(config)) == 1

    # A new installation replaces its own block in place; what follows it is kept too.
    config.write_text(text + "\n[tui]\nnotifications = true\n")
    code, out = _install(capsys, "codex", "--command", "/opt/ratchet/bin/ratchet", "--apply")
    assert code == 0
    new = config.read_text()
    assert new.startswith(CODEX_CONFIG + "\n") and new.endswith("\n[tui]\nnotifications = true\n")
    assert new.count("[mcp_servers.ratchet]") == 1
    assert tomllib.loads(new)["mcp_servers"]["ratchet"]["command"] == "/opt/ratchet/bin/ratchet"


def test_codex_refuses_what_it_cannot_merge_safely(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    config = tmp_path / "codex-home" / "config.toml"
    config.parent.mkdir()
    unmanaged = '[mcp_servers.ratchet]\ncommand = "ratchet"\nargs = ["serve"]\n'
    for text, why in [
        (unmanaged, "outside Ratchet's managed block"),
        ("model = \n", "not valid TOML"),
        ('mcp_servers = { docs = { command = "d" } }\n', "not be valid TOML"),
        ("# >>> ratchet: managed by `ratchet install codex`; this block is replaced on every install >>>\n", "damaged"),
    ]:
        config.write_text(text)
        code, out = _install(capsys, "codex", "--apply")
        assert code == 1 and why in out, out
        assert config.read_text() == text and not _backups(config)
    assert not (home / ".codex").exists()


def test_codex_hooks_are_written_beside_the_scope_and_keep_other_hooks(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    hooks_file = workspace / ".codex" / "hooks.json"
    other = {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}]}
    _write_json(hooks_file, {"description": "team hooks", "hooks": other})

    code, out = _install(capsys, "codex", "--workspace", str(workspace), "--apply")
    assert code == 0, out
    data = json.loads(hooks_file.read_text())
    assert data["description"] == "team hooks"
    pre, post = data["hooks"]["PreToolUse"], data["hooks"]["PostToolUse"]
    assert pre[0] == other["PreToolUse"][0]  # the team's hook stays, first
    [ours] = pre[1]["hooks"]
    assert pre[1]["matcher"] == "^(Bash|apply_patch)$" and ours["timeout"] == 60
    assert " hook codex" in ours["command"] and ours["command"].endswith("exit 2; }")  # blocks when it cannot run
    assert " hook codex" in post[0]["hooks"][0]["command"] and "exit 2" not in post[0]["hooks"][0]["command"]
    assert "open /hooks and trust" in out and "project you trust" in out
    # Default scope: the MCP entry in the user's config, the hooks in the project.
    assert (tmp_path / "codex-home" / "config.toml").exists()

    code, out = _install(capsys, "codex", "--workspace", str(workspace), "--apply")
    assert code == 0 and "already installed" in out  # a second run changes nothing

    # User scope: both beside the user's config; a new command replaces Ratchet's hooks, never adds twice.
    code, out = _install(capsys, "codex", "--scope", "user", "--command", "/x/ratchet", "--apply")
    user_hooks = json.loads((tmp_path / "codex-home" / "hooks.json").read_text())["hooks"]
    assert [g["hooks"][0]["command"].split()[0] for g in user_hooks["PreToolUse"]] == ["/x/ratchet"]
    code, out = _install(capsys, "codex", "--scope", "user", "--command", "/y/ratchet", "--apply")
    user_hooks = json.loads((tmp_path / "codex-home" / "hooks.json").read_text())["hooks"]
    assert [g["hooks"][0]["command"].split()[0] for g in user_hooks["PreToolUse"]] == ["/y/ratchet"]

    # Codex refuses a hooks.json with other top-level keys; so does the installer, and writes nothing.
    _write_json(hooks_file, {"$schema": "x", "hooks": {}})
    code, out = _install(capsys, "codex", "--workspace", str(workspace), "--apply")
    assert code == 1 and "other top-level keys" in out


def test_codex_check_without_codex_says_so_and_fails(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(workspace))  # no codex there
    code, out = _install(capsys, "codex", "--check", "--workspace", str(workspace))
    assert code == 1 and "No `codex` found on PATH" in out
    code, out = _install(capsys, "claude-desktop", "--check")
    assert code == 2 and "--check applies to codex" in out
    code, out = _install(capsys, "codex", "--trust-hooks", "--workspace", str(workspace))  # not without --apply
    assert code == 2 and "--trust-hooks applies to codex, with --apply" in out
    assert not (workspace / ".codex").exists()


# -- Claude Desktop -------------------------------------------------------------------------------


def test_claude_desktop_writes_the_example_entry(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path
) -> None:
    config = home / ".config" / "Claude" / "claude_desktop_config.json"
    before = _write_json(config, {"mcpServers": {"other": {"command": "x"}}, "globalShortcut": "Ctrl+Space"})
    code, out = _install(capsys, "claude-desktop", "--workspace", str(workspace))
    assert code == 0 and config.read_bytes() == before and "+++" in out
    assert _install(capsys, "claude-desktop", "--workspace", str(workspace), "--apply")[0] == 0
    data = json.loads(config.read_text())
    example = json.loads((Path(__file__).parent.parent / "claude_desktop_config.example.json").read_text())
    entry = data["mcpServers"]["ratchet"]
    assert set(entry) == set(example["mcpServers"]["ratchet"])
    assert Path(entry["command"]).is_absolute() and entry["args"] == ["serve", "--workspace", str(workspace.resolve())]
    assert data["mcpServers"]["other"] == {"command": "x"} and data["globalShortcut"] == "Ctrl+Space"
    assert "already installed" in _install(capsys, "claude-desktop", "--workspace", str(workspace), "--apply")[1]


def test_options_that_belong_to_claude_code_only(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out = _install(capsys, "codex", "--scope", "local")
    assert code == 2 and "claude-code only" in out
    code, out = _install(capsys, "claude-desktop", "--scope", "user")
    assert code == 2 and "one config file" in out
    code, out = _install(capsys, "claude-desktop", "--deny-builtins")
    assert code == 2 and "claude-code only" in out


# -- Claude Code's own sandbox -------------------------------------------------------------------


def test_claude_code_sandbox_denies_writes_to_ratchets_protected_paths(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path, tmp_path: Path
) -> None:
    settings_file = workspace / ".claude" / "settings.json"
    theirs = {
        **OTHER_SETTINGS,
        "sandbox": {"excludedCommands": ["docker"], "filesystem": {"allowWrite": ["~/.kube"], "denyWrite": ["~/x"]}},
    }
    _write_json(settings_file, theirs)
    code, out = _install(capsys, "claude-code", "--workspace", str(workspace))
    assert code == 0 and '"denyWrite"' in out and '"allowUnsandboxedCommands": false' in out  # shown first
    assert json.loads(settings_file.read_text()) == theirs  # and nothing written without --apply
    assert _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")[0] == 0
    sandbox = json.loads(settings_file.read_text())["sandbox"]
    assert sandbox["enabled"] is True and sandbox["allowUnsandboxedCommands"] is False
    assert sandbox["excludedCommands"] == ["docker"] and sandbox["filesystem"]["allowWrite"] == ["~/.kube"]
    # Relative to the project directory (the settings root of project settings): the file stays portable.
    assert sandbox["filesystem"]["denyWrite"] == ["~/x", ".ratchet", ".git/hooks", ".git/config"]
    deny = json.loads(settings_file.read_text())["permissions"]["deny"]
    assert deny == ["WebFetch", "Edit(/.ratchet/**)", "Edit(/.git/hooks/**)", "Edit(/.git/config)"]
    assert "sandbox.failIfUnavailable" in out and "bubblewrap" in out  # the note says where it cannot start
    # Idempotent: a second run changes nothing.
    before = settings_file.read_bytes()
    assert "already installed" in _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")[1]
    assert settings_file.read_bytes() == before

    # A policy directory and database of their own are denied by absolute path (`//`), with the database's
    # companions (WAL, shared memory, journal) and the HTTP token beside it.
    policies = write_policy(tmp_path / "team-policies", HOOK_POLICY)
    db = tmp_path / "state" / "trust.db"
    args = ["--workspace", str(workspace), "--policies", str(policies), "--db", str(db), "--apply"]
    assert _install(capsys, "claude-code", *args)[0] == 0
    settings = json.loads(settings_file.read_text())
    denied = settings["sandbox"]["filesystem"]["denyWrite"]
    assert f"/{policies.resolve()}" in denied and f"/{db}" in denied
    assert {f"/{db}-wal", f"/{db}-shm", f"/{db}-journal", f"/{db}.http-token"} <= set(denied)
    assert f"Edit(/{policies.resolve()}/**)" in settings["permissions"]["deny"]
    assert f"Edit(/{db}-wal)" in settings["permissions"]["deny"]
    assert len(denied) == len(set(denied))


def test_user_scope_sandbox_paths_are_absolute(capsys: pytest.CaptureFixture[str], home: Path, workspace: Path) -> None:
    assert _install(capsys, "claude-code", "--scope", "user", "--workspace", str(workspace), "--apply")[0] == 0
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    ws = workspace.resolve()
    # In user settings a relative path would be taken from ~/.claude: every path is absolute.
    assert settings["sandbox"]["filesystem"]["denyWrite"] == [
        f"/{ws}/.ratchet",
        f"/{ws}/.git/hooks",
        f"/{ws}/.git/config",
    ]
    assert settings["permissions"]["deny"] == [
        f"Edit(/{ws}/.ratchet/**)",
        f"Edit(/{ws}/.git/hooks/**)",
        f"Edit(/{ws}/.git/config)",
    ]
    assert all(p.startswith("//") for p in settings["sandbox"]["filesystem"]["denyWrite"])


def test_a_sandbox_setting_of_the_wrong_shape_is_never_overwritten(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path
) -> None:
    settings_file = workspace / ".claude" / "settings.json"
    for broken, message in (
        ({"sandbox": True}, "sandbox is not an object"),
        ({"sandbox": {"filesystem": {"denyWrite": ".ratchet"}}}, "denyWrite is not a list"),
        ({"permissions": {"deny": "Bash"}}, "deny is not a list"),
    ):
        before = _write_json(settings_file, broken)
        code, out = _install(capsys, "claude-code", "--workspace", str(workspace), "--apply")
        assert code == 1 and message in out and "nothing was changed" in out
        assert settings_file.read_bytes() == before and not (workspace / ".mcp.json").exists()


# -- through the console script: the command path, a missing workspace, the backups -----------------


def _console(ratchet_bin: Path, home: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`ratchet install ...` with this installation's bin directory first on PATH, as in an active venv."""
    env = {**os.environ, "HOME": str(home), "PATH": f"{ratchet_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("CODEX_HOME", None)
    return subprocess.run(
        [str(ratchet_bin), "install", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_client_gets_an_absolute_command_even_with_ratchet_on_path(
    ratchet_bin: Path, home: Path, workspace: Path
) -> None:
    done = _console(
        ratchet_bin, home, workspace, "claude-code", "--workspace", str(workspace), "--apply", "--hook-path", "command"
    )
    assert done.returncode == 0, done.stderr
    server = json.loads((workspace / ".mcp.json").read_text())["mcpServers"]["ratchet"]
    assert server["command"] == str(ratchet_bin) and Path(server["command"]).is_absolute()
    assert f"The client starts Ratchet as {ratchet_bin} (this installation's console script" in done.stdout
    hooks = json.loads((workspace / ".claude" / "settings.json").read_text())["hooks"]["PreToolUse"]
    assert all(h["command"].startswith(str(ratchet_bin)) for g in hooks for h in g["hooks"])


def test_a_workspace_that_does_not_exist_is_warned_about(ratchet_bin: Path, home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "src" / "your-project"
    done = _console(ratchet_bin, home, tmp_path, "claude-desktop", "--workspace", str(missing))
    assert done.returncode == 0
    assert f"ratchet: warning: workspace {missing} does not exist" in done.stderr
    as_json = _console(ratchet_bin, home, tmp_path, "claude-desktop", "--workspace", str(missing), "--json")
    assert any(str(missing) in w for w in json.loads(as_json.stdout)["warnings"])
    here = _console(ratchet_bin, home, tmp_path, "claude-desktop", "--workspace", str(tmp_path))
    assert "warning" not in here.stderr


def test_backups_inside_a_git_repository_are_ignored_by_git(ratchet_bin: Path, home: Path, workspace: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    settings = workspace / ".claude" / "settings.json"
    _write_json(settings, OTHER_SETTINGS)
    _write_json(workspace / ".mcp.json", OTHER_SERVERS)
    done = _console(ratchet_bin, home, workspace, "claude-code", "--workspace", str(workspace), "--apply")
    assert done.returncode == 0, done.stderr
    assert len(_backups(settings)) == 1 and len(_backups(workspace / ".mcp.json")) == 1
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=workspace, capture_output=True, text=True
    ).stdout
    assert ".mcp.json" in untracked and "ratchet-backup" not in untracked, untracked
    exclude = (workspace / ".git" / "info" / "exclude").read_text()
    # Installing again (another change) adds no second pattern.
    again = _console(
        ratchet_bin, home, workspace, "claude-code", "--workspace", str(workspace), "--deny-builtins", "--apply"
    )
    assert again.returncode == 0 and (workspace / ".git" / "info" / "exclude").read_text() == exclude
    assert exclude.count("*.ratchet-backup-*") == 1


# -- what each Claude Code version gets, and the check ----------------------------------------------

CURRENT, OLD = install.ClaudeVersion((2, 1, 337), "Claude Code 2.1.337"), install.ClaudeVersion((2, 1, 200), "old")


def test_the_installed_claude_code_version_decides_what_is_written(home: Path, workspace: Path) -> None:
    assert install.parse_claude_version("2.1.337 (Claude Code)") == (2, 1, 337)
    current = install.plan_claude_code(workspace, client=CURRENT)
    settings = json.loads(current.changes[1].after)
    for event in ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied"):
        hook = settings["hooks"][event][0]["hooks"][0]
        assert (hook["type"], hook["server"], hook["tool"], hook["onFailure"]) == (
            "mcp_tool",
            "ratchet",
            "claude_code_hook",
            "block",
        )
        assert hook["input"]["tool_input"] == "${tool_input}"
    assert "mcp__ratchet__claude_code_hook" in settings["permissions"]["deny"]  # out of the model's reach
    assert any("mcp_tool" in n and "onFailure" in n for n in current.notes)
    # Command hooks, where asked for: failing closed on a timeout too.
    command = json.loads(install.plan_claude_code(workspace, client=CURRENT, hook_path="command").changes[1].after)
    assert all(g["hooks"][0]["onFailure"] == "block" for e in install.TOOL_EVENTS for g in command["hooks"][e])
    assert "mcp__ratchet__claude_code_hook" not in command["permissions"]["deny"]
    # A version without onFailure gets command hooks without it, and is told what stays open.
    old = install.plan_claude_code(workspace, client=OLD)
    hooks = json.loads(old.changes[1].after)["hooks"]
    assert all("onFailure" not in g["hooks"][0] and g["hooks"][0]["type"] == "command" for g in hooks["PreToolUse"])
    assert any("times out" in n and "lets the call through" in n for n in old.notes)
    with pytest.raises(InvalidRequest, match="cannot fail closed"):
        install.plan_claude_code(workspace, client=OLD, hook_path="mcp")


def test_the_check_reports_what_holds_and_what_fails_open(
    capsys: pytest.CaptureFixture[str], home: Path, workspace: Path
) -> None:
    # Nothing installed: the check fails and says so.
    code, out = _install(capsys, "claude-code", "--workspace", str(workspace), "--check")
    assert code == 1 and "FAIL PreToolUse: no Ratchet hook" in out and "check(s) failed" in out
    install.apply(install.plan_claude_code(workspace, client=CURRENT))
    found = {f.what: f.ok for f in install.check_claude_code(workspace, client=CURRENT)}
    assert found["the project's ratchet server not switched off in Claude Code"]
    projects = {str(workspace.resolve()): {"disabledMcpjsonServers": ["ratchet"]}}
    (home / ".claude.json").write_text(json.dumps({"projects": projects}))
    bad = [f.what for f in install.check_claude_code(workspace, client=CURRENT) if not f.ok]
    assert "the project's ratchet server is switched off in Claude Code (/mcp to enable it)" in bad
    (home / ".claude.json").unlink()
    assert found["PreToolUse: Ratchet's mcp_tool hook, failing closed (onFailure block)"]
    assert found["hook path in use: mcp_tool"] and found["Claude Code's sandbox on, without unsandboxed retries"]
    assert found["Ratchet's MCP tools allowed (mcp__ratchet in permissions.allow)"]
    # Ratchet's sandbox nests in Claude Code's only by the user's own setting, which the install wrote there.
    nesting = (
        "Ratchet's sandbox may nest in Claude Code's (sandbox.allowNestedUserNamespaces in ~/.claude/settings.json)"
    )
    user_settings = home / ".claude" / "settings.json"
    assert json.loads(user_settings.read_text())["sandbox"]["allowNestedUserNamespaces"] is True
    assert found[nesting]
    user_settings.write_text(json.dumps({"sandbox": {}}))
    bad = [f.what for f in install.check_claude_code(workspace, client=CURRENT) if not f.ok]
    assert nesting + ": without it every Bash call the hook allows fails" in bad
    install.apply(install.plan_claude_code(workspace, client=CURRENT))
    assert all(
        f.ok for f in install.check_claude_code(workspace, client=CURRENT) if f.what.startswith("Ratchet's sandbox")
    )
    # The same files under a Claude Code without onFailure: every tool hook fails open on a timeout.
    old = install.check_claude_code(workspace, client=OLD)
    assert not next(f for f in old if f.what.startswith("PreToolUse")).ok
    # Someone switched the sandbox off and dropped the allow rule: both reported.
    settings_file = workspace / ".claude" / "settings.json"
    settings = json.loads(settings_file.read_text())
    settings["sandbox"]["enabled"] = False
    settings["permissions"]["allow"].remove("mcp__ratchet")
    settings_file.write_text(json.dumps(settings))
    bad = [f.what for f in install.check_claude_code(workspace, client=CURRENT) if not f.ok]
    assert "Claude Code's sandbox on, without unsandboxed retries" in bad
    assert "Ratchet's MCP tools allowed (mcp__ratchet in permissions.allow)" in bad
