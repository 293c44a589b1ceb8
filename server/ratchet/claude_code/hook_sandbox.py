"""Claude Code's own Bash, run under the sandbox profile of the class it was classified as.

The PreToolUse hook decides a Bash call by its class; allowing it as written would run it outside
any Ratchet sandbox, with the whole workspace (and everything the user can write) writable, however
the class was trusted. So an allowed (or asked) Bash call's input is rewritten (`updatedInput`) to
run the same command line under bubblewrap with the confinement the one helper builds for its class
(operations/confine.py), exactly as `run_command` would run it:

    bwrap --args 3 -- /bin/bash -c 'COMMAND' 3< PLAN"${IS_SANDBOX:+-nested}"; . AFTER

- PLAN holds the sandbox's options, NUL-separated (bubblewrap's `--args FD`); AFTER removes what must
  not appear (a `.mcp.json`, `.git/commondir` a command created: they cannot be bound read-only before
  they exist) and then fails the call, naming them. Both are written by the hook into its own
  directory (hook_socket.socket_dir, mode 0700), which every sandbox hides, and named by a checksum
  of their content, so the many calls of one profile share one pair of files and nothing piles up.
- The command line itself is passed as one argument to `bash -c`, unchanged: Claude Code's own
  shell only starts bubblewrap; the command runs in the sandbox's bash, in the same directory, with
  Claude Code's environment (`TMPDIR` pointing at the sandbox's private /tmp).
- Claude Code's own sandbox, when on, wraps this line in its own: Ratchet's then runs nested inside
  it, and each holds its own rules (the stricter wins). Claude Code refuses new namespaces to the
  commands it sandboxes unless the user's settings say `sandbox.allowNestedUserNamespaces: true`
  (honoured from user or managed settings only); without it every Bash call fails with bubblewrap's
  "Creating new namespace failed", and nothing runs. Inside it (`IS_SANDBOX=yes`, set by Claude Code)
  a fresh /proc cannot be mounted, so the `-nested` plan binds Claude Code's /proc read-only instead.

What this does not do: a `cd` inside the command no longer carries over to Claude Code's next Bash
call (it happened inside the sandbox's shell); nothing runs where bubblewrap cannot (the gate holds
command classes to `confirm` then, trigger `no-sandbox`, and the call runs as written after the
human's answer).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ratchet.claude_code.hook_socket import check_directory, socket_dir
from ratchet.executors.confined import Confinement
from ratchet.executors.sandbox import plan as sandbox_plan

__all__ = ["sandboxed_bash"]

_SHELL = "/bin/bash"


def sandboxed_bash(command: str, confined: Confinement) -> str:
    """The Bash command line that runs `command` under `confined` (see the module docstring).

    Raises ExecutionFailed when the sandbox cannot be planned (a layout it cannot protect), and
    hook_socket.Untrusted when the hook's directory is not this user's own.
    """
    shell = shutil.which("bash") or _SHELL
    boxed = sandbox_plan(
        [shell, "-c", command],
        workspace=confined.workspace,
        cwd=None,
        protected=confined.protected,
        network=confined.network,
        env={},
        hidden=confined.hidden,
        profile=confined.profile,
        read_only=confined.read_only,
        never_create=confined.never_create,
        check=False,
    )
    bwrap, options = boxed.argv[0], boxed.argv[1:]
    split = options.index("--")
    program = options[split + 1 :]
    options = [*options[:split], "--setenv", "TMPDIR", "/tmp"]
    folder = Path(socket_dir()) / "sandbox"
    check_directory(socket_dir(), create=True)
    check_directory(str(folder), create=True)
    text = "\0".join(options) + "\0"
    plan_file = _stored(folder, "plan", text)
    # Inside Claude Code's sandbox a fresh /proc cannot be mounted (its /proc has parts covered): there
    # the plan binds the /proc of Claude Code's own PID namespace, read-only, instead.
    nested = text.replace("\0--proc\0/proc\0", "\0--ro-bind\0/proc\0/proc\0", 1)
    _stored(folder, "plan", nested, name=f"{Path(plan_file).name}-nested")
    chosen = shlex.quote(plan_file) + '"${IS_SANDBOX:+-nested}"'
    line = f"{shlex.quote(bwrap)} --args 3 -- {shlex.join(program)} 3< {chosen}"
    if boxed.must_not_appear:
        line += f"; . {shlex.quote(_stored(folder, 'after', _after_script(boxed.must_not_appear)))}"
    return line


def _after_script(paths: Sequence[Path]) -> str:
    """Shell run in Claude Code's own shell after the sandbox ended: remove what must not appear."""
    quoted = " ".join(shlex.quote(str(p)) for p in paths)
    return (
        "__ratchet_status=$?\n"
        f"for __ratchet_path in {quoted}; do\n"
        # Shell builtins first: nothing is spawned unless a path exists. Inside Claude Code's own
        # sandbox a path it protects exists as its mount point, which is not the command's doing.
        '    if { [ -e "$__ratchet_path" ] || [ -L "$__ratchet_path" ]; } && ! mountpoint -q -- "$__ratchet_path"\n'
        "    then\n"
        '        rm -rf -- "$__ratchet_path"\n'
        '        echo "Ratchet removed $__ratchet_path: the command created it, and it would configure a client, '
        'gate the agent or decide what programs git runs" >&2\n'
        "        __ratchet_status=1\n"
        "    fi\n"
        "done\n"
        "return $__ratchet_status\n"  # from the sourced file: no subshell spawned
    )


def _stored(folder: Path, kind: str, text: str, *, name: str | None = None) -> str:
    """`text` in `folder` under `name` (default: a checksum of it), written when missing or changed,
    atomically, mode 0600."""
    path = folder / (name or f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}")
    try:
        if path.read_text(encoding="utf-8") == text:
            return str(path)
    except OSError:
        pass
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{kind}-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    Path(temporary).replace(path)
    return str(path)
