"""What the engine needs of the executors to consult the delegated reviewer: run its command on one
request (executors/reviewer.py `review`: in an empty directory of its own, timed out, any failure
"unsure"). The engine reaches executors only through operations/.
"""

from __future__ import annotations

from ratchet.executors.reviewer import review

__all__ = ["review"]
