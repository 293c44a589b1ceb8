"""When a freeze lifts by itself: `--until` as a person writes it (the CLI's and the review page's)."""

from __future__ import annotations

import re
import time
from datetime import datetime

from ratchet.errors import InvalidRequest

_UNTIL = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")


_UNTIL_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_until(value: str, now: float | None = None) -> float:
    """`--until`: a duration from now (`90m`, `2h`, `1d`, `1w`) or an ISO date-time (local time unless it
    names a zone), as a Unix time in the future; InvalidRequest otherwise."""
    now = time.time() if now is None else now
    text = value.strip()
    found = _UNTIL.match(text.lower())
    if found:
        moment = now + float(found[1]) * _UNTIL_UNITS[found[2]]
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRequest(
                f"cannot read --until {value!r}; expected a duration from now (90m, 2h, 1d, 1w) or an ISO "
                "date-time (2025-06-01T18:00)"
            ) from None
        moment = (parsed.astimezone() if parsed.tzinfo is None else parsed).timestamp()
    if moment <= now:
        raise InvalidRequest(f"--until {value!r} is not in the future; expected a later time or a duration (2h)")
    return moment
