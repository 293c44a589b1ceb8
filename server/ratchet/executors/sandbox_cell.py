"""The runner inside a reused sandbox: it prepares one fresh cell per command, ahead of the command.

This file is run as a program (`python -I -S -c SOURCE SPEC CONTROL_FD`, SPEC in `marshal`'s format,
as hex; so is each command the server sends) as the first process of
a bubblewrap sandbox built from the command's plan (executors/sandbox_reuse.py); it imports nothing
of Ratchet and only the standard library. It holds CAP_SYS_ADMIN, CAP_SETPCAP and CAP_NET_ADMIN in
the sandbox's own user namespace (never the host's) and uses them only to build cells.

For each cell the server asks for (a byte on the control socket), the runner forks a process that
becomes the first process (PID 1) of a new PID namespace and, before any command is known:

- enters new mount, IPC and UTS namespaces (and a new network namespace with only its loopback
  when the sandbox has no network), so nothing of another command's mounts, System V IPC objects,
  hostname or sockets is shared;
- lays a fresh tmpfs over every tmpfs of the plan (`/tmp`, the runtime directories), mounts a fresh
  `/proc` for its PID namespace (`/proc/sys` and `/proc/sysrq-trigger` read-only again), a fresh
  `/dev/shm`, and remounts `/dev` read-only; then binds again, in the plan's order, everything the
  plan laid under those (the workspace under `/tmp`, the protected directories, the hidden files);
- drops every capability (effective, permitted, inheritable, ambient and the bounding set), keeps
  `no_new_privs`, and makes itself undumpable, so the command can neither ptrace it nor read its
  `/proc` entries or steal its descriptors;
- sends the server its socket (through the runner) and waits.

The server sends the command (argv, environment, working directory, and its stdin, stdout and
stderr as descriptors). The cell changes to the working directory, spawns the command as PID 2 in
its own session, reaps every orphan as an init does, and when the command exits kills every
process left in the namespace, reaps them all, and only then reports the exit status. Killed by a
signal N, the status is 128 + N, as bubblewrap reports it. The server kills a cell (timeout,
cancellation) through a pidfd: the kernel then kills every process of its PID namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import marshal
import os
import select
import signal
import socket
import struct
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 36, 38, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
MAX_MESSAGE = 1 << 20
_UNCATCHABLE = (signal.SIGKILL, signal.SIGSTOP)

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _encode(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    result = _libc.mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data))
    _check(result, f"mount {target}")


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _mountpoint(target: str, directory: bool) -> None:
    """Create what a bind needs in a fresh tmpfs: the directory, or an empty file in its directory."""
    # os, not pathlib: importing less keeps the runner's start short (once per sandbox).
    if directory:
        os.makedirs(target, mode=0o755, exist_ok=True)  # noqa: PTH103
        return
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)  # noqa: PTH103, PTH120
    if not os.path.lexists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _read_only(target: str) -> None:
    kept = os.statvfs(target).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def _lay_out(ops: list[list[str]]) -> None:
    """Fresh tmpfs, /proc and /dev/shm over the shared ones; the plan's binds under them laid again."""
    held: dict[str, int] = {}
    for op in ops:  # before anything is covered: what each bind shows in the sandbox now
        if op[0] == "rebind" and op[1] not in held and os.path.lexists(op[1]):
            held[op[1]] = os.open(op[1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    for op in ops:
        kind, target = op[0], op[1]
        if kind == "tmpfs":
            _mountpoint(target, True)
            _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        elif kind == "proc":
            _mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        elif kind == "dev":
            _mount("tmpfs", f"{target}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
            _read_only(target)
        elif kind == "self-ro":  # a path of the fresh /proc, read-only
            if os.path.lexists(target):
                _mount(target, target, None, MS_BIND | MS_REC)
                _read_only(target)
        elif kind == "rebind" and target in held:
            fd = held[target]
            _mountpoint(target, os.path.isdir(f"/proc/self/fd/{fd}"))  # noqa: PTH112
            _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    for fd in held.values():
        os.close(fd)


def _unescape(field: bytes) -> str:
    """A mount point as /proc/self/mountinfo spells it (space, tab, newline, backslash as octal)."""
    out, i = bytearray(), 0
    while i < len(field):
        if field[i : i + 1] == b"\\" and field[i + 1 : i + 4].isdigit():
            out.append(int(field[i + 1 : i + 4], 8))
            i += 4
        else:
            out += field[i : i + 1]
            i += 1
    return os.fsdecode(bytes(out))


def _missing(expected: list[list[Any]]) -> list[str]:
    """Those of the plan's mount points ([path, read-only]) not mounted here now, or not as the plan says."""
    present: dict[str, bool] = {}
    with open("/proc/self/mountinfo", "rb") as table:
        for line in table.read().splitlines():
            fields = line.split(b" ")
            if len(fields) > 5:  # the last mount on a path is the one seen there
                present[_unescape(fields[4])] = b"ro" in fields[5].split(b",")
    return [path for path, read_only in expected if present.get(path) is not read_only]


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def _drop_capabilities() -> None:
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last one: nothing to drop
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")


def _char(ch: str) -> str:
    if ch.isprintable() and ch not in '"\\':
        return ch
    code = ord(ch)
    if code > 0xFFFF:  # a surrogate pair, as JSON spells it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _json(message: dict[str, Any]) -> bytes:
    """A flat message as JSON (what the server reads), without importing json (and re) here."""

    def value(item: object) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int):
            return str(item)
        return '"' + "".join(_char(ch) for ch in str(item)) + '"'

    return ("{" + ", ".join(f"{value(key)}: {value(item)}" for key, item in message.items()) + "}").encode()


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = _json(message)
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def _cell(sock: socket.socket, spec: dict[str, Any]) -> None:
    """PID 1 of a fresh PID namespace: prepare, wait for one command, run it, leave nothing behind."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)  # from inside, only signals an init handles arrive: none
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (0 if spec["network"] else CLONE_NEWNET)
    _check(_libc.unshare(flags), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _lay_out(spec["ops"])
    if not spec["network"]:
        _loopback_up()
    _drop_capabilities()
    own = os.pidfd_open(os.getpid())
    _send(sock, {"ready": True}, [own])
    os.close(own)
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 3)
    if not data:
        return  # the server let the cell go unused
    request = marshal.loads(data)  # from the server, which made it with marshal.dumps
    for fd in fds:
        os.set_inheritable(fd, False)
    # A directory the sandbox binds that is removed on the host takes its binds with it, in every
    # namespace (the runner's too, before this cell was laid out): then the layout is no longer the
    # plan's, and the command must not run here.
    missing = _missing(spec["binds"])
    if missing:
        _send(sock, {"error": "layout", "detail": f"no longer bound: {', '.join(missing)}"})
        return
    path = request["env"].get("PATH")
    if path is None:  # the program is looked up as execvp does: in the command's PATH, else the default
        os.environ.pop("PATH", None)
    else:
        os.environ["PATH"] = path
    try:
        os.chdir(request["cwd"])
        child = os.posix_spawnp(
            request["argv"][0],
            request["argv"],
            request["env"],
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)],
            setsid=True,
            setsigdef=[sig for sig in signal.valid_signals() if sig < signal.SIGRTMIN and sig not in _UNCATCHABLE],
        )
    except OSError as exc:
        _send(sock, {"error": type(exc).__name__, "detail": str(exc)})
        return
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(child)
    _send(sock, {"spawned": True}, [pidfd])
    os.close(pidfd)
    status = 0
    while True:  # an init's loop: reap orphans until the command itself exits
        pid, waited = os.wait()
        if pid == child:
            status = waited
            break
    code = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)  # from PID 1: every other process of the namespace
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    _send(sock, {"exit": 128 - code if code < 0 else code})


def main() -> None:
    """The runner's loop: a byte on the control socket asks for a cell; end of file ends the runner."""
    spec = marshal.loads(bytes.fromhex(sys.argv[1]))
    control = socket.socket(fileno=int(sys.argv[2]))
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "subreaper")
    own_pid = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    while True:
        ready, _, _ = select.select([control], [], [], 1.0)
        while True:  # reap finished cells
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not ready:
            continue
        asked = control.recv(64)
        if not asked:
            return
        for _ in asked:
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            _check(_libc.setns(own_pid, CLONE_NEWPID), "setns")
            _check(_libc.unshare(CLONE_NEWPID), "unshare pid")
            pid = os.fork()
            if pid == 0:
                try:
                    control.close()
                    mine.close()
                    os.close(own_pid)
                    _cell(theirs, spec)
                except BaseException as exc:  # told to the server, then gone
                    with contextlib.suppress(OSError):
                        _send(theirs, {"error": "cell", "detail": f"{type(exc).__name__}: {exc}"})
                os._exit(0)
            theirs.close()
            socket.send_fds(control, [b"cell"], [mine.fileno()])
            mine.close()


if __name__ == "__main__":
    main()
