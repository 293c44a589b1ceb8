"""Text a person reads is inert: control characters in agent text are shown, never obeyed.

Every rendering for a human (the CLI, the client's dialogs and tool results, hook answers, the review
page, notify payloads, escalation packets) passes agent-written text through `inert` (or `inert_line`
for a one-line field such as a target in a table or a dialog's first line). Escaped, as visible text:

- C0 controls (U+0000-U+001F) but newline and tab in `inert`, so ESC, and with it every ANSI CSI
  (`ESC [`) and OSC (`ESC ]`, terminal titles, hyperlinks, clipboard writes) sequence, and a carriage
  return that would overwrite a line already shown;
- DEL (U+007F) and the C1 controls (U+0080-U+009F, among them the one-byte CSI U+009B and OSC U+009D);
- the Unicode line and paragraph separators and the bidirectional overrides and isolates
  (U+2028-U+2029, U+202A-U+202E, U+2066-U+2069), which reorder or break what is shown.

An escaped character reads `\\xHH` (`\\uHHHH` above U+00FF), so `\\x1b[2J` is printed, not obeyed.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["controls", "inert", "inert_line", "inert_output", "inert_values"]

_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_BLOCK = re.compile(f"[{_CONTROLS}]")  # newline and tab kept
_LINE = re.compile(f"[{_CONTROLS}\n\t]")
# The only escape sequences Ratchet writes itself: a diff's colours (terminal.diff) and their reset.
_OWN_SGR = ("\x1b[32m", "\x1b[31m", "\x1b[36m", "\x1b[0m")
_OUTPUT = re.compile("(" + "|".join(re.escape(s) for s in _OWN_SGR) + f")|[{_CONTROLS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def controls(text: str) -> list[str]:
    """The control characters (newline and tab included) in `text`, escaped, in order of appearance."""
    return [_escape(m) for m in _LINE.finditer(text)]


def inert(text: str) -> str:
    """`text` with every control character but newline and tab escaped as visible text."""
    return _BLOCK.sub(_escape, text)


def inert_line(text: str) -> str:
    """`text` for a one-line field: newlines and tabs escaped too, so it cannot start a line of its own."""
    return _LINE.sub(_escape, text)


def inert_output(text: str) -> str:
    """A whole rendering for the terminal: like `inert`, but Ratchet's own diff colours pass (they can
    only colour text red, green or cyan, never move the cursor, erase or hide)."""
    return _OUTPUT.sub(lambda m: m.group(1) or _escape(m), text)


def inert_values(value: Any) -> Any:
    """Every string in a JSON-like value (dicts, lists) made inert: a payload another program shows."""
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, dict):
        return {k: inert_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [inert_values(v) for v in value]
    return value
