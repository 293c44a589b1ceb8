"""The core every edge shares: evaluate a call, carry it out at its level, record everything.

The MCP server and the CLI are thin edges over an `Engine`. A call goes:

    evaluate:  operation.prepare (confine, validate, preview) -> policy.classify -> gate.decide
    carry_out: record intent -> execute / ask / queue / refuse -> record outcome -> trust sample

Reads and writes of the trust database happen here and in record/standing.py only; the gate and the
trust rules are pure.
"""

from __future__ import annotations

from ratchet.engine.core import CLI_SESSION, Evaluation, HumanAnswer
from ratchet.engine.human import HumanSide
from ratchet.engine.views import Reading

__all__ = ["CLI_SESSION", "Engine", "Evaluation", "HumanAnswer"]


class Engine(HumanSide, Reading):
    """One workspace, one policy, one trust database, one session.

    The agent's side (evaluate, carry_out, handoffs' packets) is in engine/core.py, the human's side
    (approve, reject, complain, demote, pin, freeze) in engine/human.py, and the read-only views in engine/views.py.
    """
