"""Who is acting: the name the record keeps for the person behind a process.

A team shares one record, so each recorded action says who recorded it (the identity of the
server or hook that took the agent's call) and each review says who gave it (the identity of the
process the human answered through: the CLI, the review page, the server that relayed a dialog).
The name is `$RATCHET_IDENTITY` when it is set, else the OS user and the host, `user@host`.

It comes from the process's own environment and never from a tool's arguments: the agent cannot
name the reviewer. It is a label, not a credential: anyone who can run the CLI as a given OS user
can set `$RATCHET_IDENTITY` to any name, so it separates honest teammates' approvals, and the
agent's from a human's only together with the rule that the agent cannot run the human's CLI.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping

from ratchet.errors import InvalidRequest

ENV = "RATCHET_IDENTITY"
MAX_LENGTH = 200


def current(environ: Mapping[str, str] | None = None) -> str:
    """This process's identity: `$RATCHET_IDENTITY`, else `user@host`."""
    env = os.environ if environ is None else environ
    configured = env.get(ENV)
    if configured is not None and configured.strip():
        return checked(configured.strip())
    return f"{_user()}@{socket.gethostname() or 'localhost'}"


def checked(name: str) -> str:
    """A configured identity, refused when it could not be shown on one line of the record."""
    if len(name) > MAX_LENGTH or any(not ch.isprintable() for ch in name):
        raise InvalidRequest(
            f"${ENV} must be one printable line of at most {MAX_LENGTH} characters "
            f"(a name such as alice or alice@laptop), got {name[:40]!r}"
        )
    return name


def _user() -> str:
    """The OS user's name; a process without a password entry (a bare container) is named by its uid."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid{os.getuid()}"
