"""The detached process that judges one decided action with the policy's reviewer (engine/reviewer.py).

`python -m ratchet.engine.shadow WORKSPACE POLICIES ACTION_ID`, with the record named by `$RATCHET_DB`: it
opens the record as the person's CLI would, runs the reviewer on the action (with its timeout), keeps the
verdict beside the person's answer, and exits. Started by `reviewer.shadow`, never waited for.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import anyio

from ratchet.engine import Engine
from ratchet.engine.reviewer import judge_recorded

log = logging.getLogger("ratchet")


def main(argv: list[str]) -> int:
    """Judge one recorded action; 0 when done (or nothing to judge), 1 when it failed."""
    workspace, policies, action_id = Path(argv[0]), Path(argv[1]), int(argv[2])

    async def run() -> None:
        engine = await Engine.open(workspace, policies=policies, session=False)
        try:
            await judge_recorded(engine.setting, action_id)
        finally:
            await engine.close()

    try:
        anyio.run(run)
    except Exception as exc:  # a detached process has nobody to tell but the log
        log.warning("ratchet: the reviewer's shadow verdict on action %s failed: %s", action_id, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
