"""The hook's way to a resident decider: a Unix socket in a per-user directory, stdlib only.

A hook process that imports the engine, loads the policy and opens SQLite for every event costs
about twenty times a trivial Python process; Claude Code pays it twice per tool call. So the first
governed event of a workspace also starts `python -m ratchet.claude_code.hook_server` in the background (it
outlives the hook, serves every later event of the same set-up, and exits after IDLE_S without
one), and every later event is sent to it over a socket and answered from there. The resident
server decides with exactly the code the hook process would run (`hooks.claude_code`, the engine
opened per event, so a policy edit counts at once): the socket saves the imports, nothing else.

The socket is trusted only when (this module checks every one on every event):

- its directory is `$RATCHET_HOOK_SOCKET_DIR`, else `$XDG_RUNTIME_DIR/ratchet`, else
  `<tmp>/ratchet-<uid>`; it is a real directory (not a link), owned by this uid, mode 0700;
- the socket file is a socket owned by this uid that nobody else may open (no group/other bits);
- the process that accepted the connection runs as this uid (SO_PEERCRED); the server checks the
  same of every client;
- every client presents the server's secret (`<key>.secret` beside the socket, mode 0600, written
  fresh by each server at start). The directory is hidden in every sandbox Ratchet starts (the
  runtime directory and this one are replaced by empty ones there), so nothing the agent runs can
  read the secret or reach the socket; a client without it gets no answer (its hook fails closed).

Its name is a checksum of what the decision depends on outside the event: the interpreter, the hook's
--workspace/--policies/--db and the environment variables Ratchet reads. Any other set-up gets its
own server.

What happens when (`ask`):

- no socket yet, or nobody listening: the hook decides itself, exactly as without a server, and
  starts one for next time (unless the directory is not trusted);
- the directory or the socket fails a check, or the peer is another uid: nothing is sent; the hook
  decides itself and says why on stderr;
- the server says its code changed on disk since it started, or that it serves another set-up
  (`stale`): it decided nothing, and the hook decides itself; a changed server exits and the next
  event starts a fresh one;
- anything else after the event was sent (an error, a reply that is not one, no reply within
  HARD_DEADLINE_S): a governed PreToolUse is denied (fail closed); any other event gets no answer and
  a note on stderr. It is never decided twice: the server may already have recorded it.

`RATCHET_HOOK_SERVER=off` turns the resident path off: every event is decided in its own process.
"""

# On the hook's import path pathlib costs milliseconds a process: plain os.path here.
# ruff: noqa: PTH100, PTH102, PTH105, PTH112, PTH117, PTH118

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import struct
import sys
import time
import zlib
from collections.abc import Mapping

from ratchet.claude_code.events import is_governed_pre_tool_use, unattended
from ratchet.codex.events import is_codex_pre_tool_use

SERVER_ENV = "RATCHET_HOOK_SERVER"  # "off": no resident server
SOCKET_DIR_ENV = "RATCHET_HOOK_SOCKET_DIR"
# What the decision reads from the environment besides the event; part of the server's name.
KEYED_ENV: tuple[str, ...] = ("RATCHET_POLICIES", "RATCHET_DB", "RATCHET_SANDBOX", "RATCHET_WEB_URL")
# Where a decision's telemetry goes (ratchet/telemetry, read here without importing it: this path is stdlib only).
KEYED_ENV += (
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "RATCHET_OTEL_CAPTURE_CONTENT",
)
IDLE_S = 600.0  # the server exits after this long without an event
HARD_DEADLINE_S = 30.0  # as hooks.HARD_DEADLINE_S: the client's limit for the whole exchange
MAX_MESSAGE = 64 * 1024 * 1024  # a Write's content travels in the event
PROTOCOL = 1
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Untrusted(Exception):
    """The socket, its directory or its peer failed a check: do not send it anything."""


class Stale(Exception):
    """The server's code changed since it started; it decided nothing."""


class Endpoint:
    """Where the resident server for one set-up listens, and what it is started with. Plain strings
    and no dataclass: this module is on the hook's import path, where every millisecond counts."""

    __slots__ = ("argv", "directory", "key", "lock", "log", "secret", "socket")

    def __init__(self, directory: str, key: str, argv: tuple[str, ...]) -> None:
        self.directory = directory
        self.key = key
        self.argv = argv  # the hook's own options, absolute: --workspace W --policies P --db D
        self.socket = os.path.join(directory, f"{key}.sock")
        self.lock = os.path.join(directory, f"{key}.lock")
        self.log = os.path.join(directory, f"{key}.log")
        self.secret = os.path.join(directory, f"{key}.secret")  # what every caller must present


SECRET_BYTES = 32


def write_secret(ep: Endpoint) -> str:
    """A fresh secret for a starting server, in a file only this uid can read (written atomically)."""
    import secrets  # start-up: only a starting server writes a secret, never a hook process

    value = secrets.token_hex(SECRET_BYTES)
    temporary = f"{ep.secret}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value)
    os.replace(temporary, ep.secret)
    return value


def read_secret(ep: Endpoint) -> str:
    """The running server's secret. FileNotFoundError when there is none (no server started yet);
    Untrusted when the file is not this uid's own private regular file."""
    fd = os.open(ep.secret, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise Untrusted(f"{ep.secret} is not a private file of uid {os.getuid()}")
        return os.read(fd, 4 * SECRET_BYTES).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether events go to a resident server (RATCHET_HOOK_SERVER is not `off`)."""
    env = os.environ if environ is None else environ
    return env.get(SERVER_ENV, "").strip().lower() != "off"


def socket_dir(environ: Mapping[str, str] | None = None) -> str:
    """The per-user directory the sockets live in (see the module doc)."""
    env = os.environ if environ is None else environ
    if env.get(SOCKET_DIR_ENV):
        return os.path.abspath(env[SOCKET_DIR_ENV])
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "ratchet")
    return os.path.join(env.get("TMPDIR") or "/tmp", f"ratchet-{os.getuid()}")


def endpoint(options: dict[str, str], environ: Mapping[str, str] | None = None) -> Endpoint:
    """The endpoint for the hook's options (`workspace`, `policies`, `db`, as given) in this environment."""
    env = os.environ if environ is None else environ
    argv: list[str] = []
    for name in ("workspace", "policies", "db"):
        if options.get(name):
            argv += [f"--{name}", os.path.abspath(options[name])]
    material = setup(argv, env).encode()
    # A checksum, not a cryptographic hash (hashlib's import alone costs milliseconds per event): the
    # server compares the whole set-up on every event, so two set-ups sharing a name only cost speed.
    key = f"{zlib.crc32(material):08x}{zlib.adler32(material):08x}"
    return Endpoint(socket_dir(env), key, tuple(argv))


def setup(argv: list[str] | tuple[str, ...], environ: Mapping[str, str]) -> str:
    """What a decision depends on besides the event; a server answers only events of its own set-up."""
    return json.dumps([PROTOCOL, sys.executable, list(argv), [environ.get(k) for k in KEYED_ENV]])


def check_directory(path: str, *, create: bool) -> None:
    """Untrusted unless `path` is a real directory owned by this uid with mode 0700 (made so if `create`).
    FileNotFoundError when it does not exist (and not `create`)."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise Untrusted(f"cannot create {path}: {exc}") from None
    info = os.lstat(path)  # FileNotFoundError: no server was ever started here
    if not stat.S_ISDIR(info.st_mode):
        raise Untrusted(f"{path} is not a directory")
    if info.st_uid != os.getuid():
        raise Untrusted(f"{path} is owned by uid {info.st_uid}, not {os.getuid()}")
    if stat.S_IMODE(info.st_mode) != 0o700:
        raise Untrusted(f"{path} has mode {stat.S_IMODE(info.st_mode):o}, not 700")


def hold_lock(directory: str, lock: str) -> int | None:
    """The descriptor holding the exclusive lock on `lock` (in the checked `directory`), with this pid
    written in it: the one resident server of a set-up. None when another process holds it."""
    check_directory(directory, create=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def check_socket_file(path: str) -> None:
    """Untrusted unless `path` is a socket owned by this uid with no group or other permissions.
    FileNotFoundError when there is none (nobody started a server yet)."""
    info = os.lstat(path)
    if not stat.S_ISSOCK(info.st_mode):
        raise Untrusted(f"{path} is not a socket")
    if info.st_uid != os.getuid():
        raise Untrusted(f"{path} is owned by uid {info.st_uid}, not {os.getuid()}")
    if info.st_mode & 0o077:
        raise Untrusted(f"{path} has mode {stat.S_IMODE(info.st_mode):o}; others may use it")


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return int(uid)


def connect(ep: Endpoint) -> socket.socket:
    """A connection to the server, every check passed. FileNotFoundError/ConnectionRefusedError when
    none listens; Untrusted when a check fails."""
    check_directory(ep.directory, create=False)
    check_socket_file(ep.socket)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(HARD_DEADLINE_S)
        sock.connect(ep.socket)
        if (uid := peer_uid(sock)) != os.getuid():
            raise Untrusted(f"the process listening on {ep.socket} runs as uid {uid}, not {os.getuid()}")
    except BaseException:
        sock.close()
        raise
    return sock


def read_all(sock: socket.socket, deadline: float) -> bytes:
    """Everything the peer sends until it shuts its side, within MAX_MESSAGE and the deadline."""
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete reply in time")
        sock.settimeout(remaining)
        chunk = sock.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_MESSAGE:
            raise ValueError(f"message over {MAX_MESSAGE} bytes")
        chunks.append(chunk)


def exchange(
    sock: socket.socket, raw: bytes, attended: bool, ep_setup: str, client: str = "claude-code", *, secret: str = ""
) -> str:
    """Send one event of set-up `ep_setup` with the server's `secret`, return the server's answer ('' for
    none). Stale if the server declined it unread (its code changed, or it serves another set-up); any
    other failure raises (the caller fails closed; a wrong secret gets no reply). `client`: whose event
    it is (`codex` events are decided by codex_hooks; the header names only that one)."""
    deadline = time.monotonic() + HARD_DEADLINE_S
    meta: dict[str, object] = {"v": PROTOCOL, "attended": attended, "setup": ep_setup, "secret": secret}
    if client != "claude-code":
        meta["client"] = client
    header = json.dumps(meta).encode() + b"\n"
    sock.sendall(header + raw)
    sock.shutdown(socket.SHUT_WR)
    reply = json.loads(read_all(sock, deadline))
    if not isinstance(reply, dict):
        raise ValueError("the reply is not a JSON object")
    if reply.get("stale") is True:
        raise Stale()
    answer = reply.get("answer")
    if not isinstance(answer, str):
        raise ValueError("the reply has no answer")
    return answer


def start_server(ep: Endpoint) -> None:
    """Start the resident server for `ep` in the background, detached; it outlives this process.
    Two hooks starting one at once is harmless: the second server finds the lock held and exits."""
    import subprocess  # start-up: a hook process spawns a server only when none is running

    with open(ep.log, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "ratchet.claude_code.hook_server", "--key", ep.key, *ep.argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd="/",
            start_new_session=True,
        )


def resident_answer(options: dict[str, str], raw: bytes, client: str = "claude-code") -> str | None:
    """The resident hook server's answer to this event; None when this process should decide it (no
    server, or one that is not trusted or declined it unread). Fails closed once the event was sent."""
    ep = endpoint(options)
    try:
        sock = connect(ep)
    except (FileNotFoundError, ConnectionRefusedError):
        try:  # nobody listens: decide here, and start one for the next event
            check_directory(ep.directory, create=True)
            start_server(ep)
        except (Untrusted, OSError) as exc:
            print(f"ratchet hook: no resident hook server ({exc}); deciding in this process", file=sys.stderr)
        return None
    except (Untrusted, OSError) as exc:
        print(f"ratchet hook: not using the hook server: {exc}; deciding in this process", file=sys.stderr)
        return None
    with sock:
        try:
            secret = read_secret(ep)
        except (Untrusted, OSError) as exc:
            print(f"ratchet hook: not using the hook server: {exc}; deciding in this process", file=sys.stderr)
            return None
        try:
            wanted = setup(ep.argv, os.environ)
            return exchange(sock, raw, not unattended(), wanted, client, secret=secret)
        except Stale:
            return None
        except Exception as exc:
            why = f"Ratchet's hook server failed ({type(exc).__name__}: {exc})"
    if is_codex_pre_tool_use(raw) if client == "codex" else is_governed_pre_tool_use(raw):
        return json.dumps(
            {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": f"{why}. Nothing was run; tell the human (fail closed).",
                }
            }
        )
    print(f"ratchet hook: {why}; this event was not recorded", file=sys.stderr)
    return ""
