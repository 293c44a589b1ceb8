"""Secret redaction for anything shown to a human or a model: packets, previews, listings."""

from __future__ import annotations

import re

MARK = "[REDACTED]"

# Known token shapes, one alternation so the text is scanned once.
_TOKENS = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{30,}\b"  # GitHub tokens
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"  # Slack
    r"|\bsk-[A-Za-z0-9_-]{20,}\b"  # OpenAI/Anthropic-style keys
    r"|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",  # JWT
    re.DOTALL,
)
# key=value / key: value where the key names a secret; the value is replaced, the key kept. The match
# starts at the secret word (DB_PASSWORD matches at PASSWORD): a leading [\w]* would backtrack at
# every word of every file.
_ASSIGNMENT = re.compile(
    r"(?i)((?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth)[\w.-]*"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{4,})"
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")


def redact(text: str) -> str:
    """Replace anything that looks like a secret with a marker; the rest is left as it was."""
    text = _TOKENS.sub(MARK, text)
    text = _ASSIGNMENT.sub(lambda m: m.group(1) + MARK, text)
    if "://" in text:
        text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MARK + m.group(3), text)
    return text
