"""Redaction throughput on 1 MB of mixed text, against the previous patterns as a baseline.

`.venv/bin/python -m bench.redaction` prints JSON: MB/s for the current `redact` and for the regexes
it replaced (run in the same process, on the same text), plus the pathological PEM input that took
the old patterns quadratic time.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

from ratchet.redact import redact

from . import Config

# The patterns before linear-time redaction, kept here only as the baseline.
_OLD_TOKENS = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{30,}\b"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"
    r"|\bsk-[A-Za-z0-9_-]{20,}\b"
    r"|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",
    re.DOTALL,
)
_OLD_ASSIGNMENT = re.compile(
    r"(?i)((?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth)[\w.-]*"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{4,})"
)
_OLD_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")


def old_redact(text: str) -> str:
    """The previous implementation."""
    text = _OLD_TOKENS.sub("[REDACTED]", text)
    text = _OLD_ASSIGNMENT.sub(lambda m: m.group(1) + "[REDACTED]", text)
    if "://" in text:
        text = _OLD_URL.sub(lambda m: m.group(1) + "[REDACTED]" + m.group(3), text)
    return text


def mixed_text(size: int = 1_000_000, seed: int = 1) -> str:
    """Code, logs, git output and a sprinkling of secrets, about `size` characters."""
    rng = random.Random(seed)
    words = "the quick brown fox def return import class self value 12345 path/to/file.py if else".split()  # noqa: SIM905
    specials = [
        "export API_KEY=abcd1234efgh5678",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "curl -H 'Authorization: Bearer abc123def456ghi789' https://api.example.com",
        "postgres://app:pgPa55word@db.internal:5432/app",
        '{"password": "hunter22", "user": "admin"}',
        "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    ]
    lines: list[str] = []
    total = 0
    while total < size:
        line = rng.choice(specials) if rng.random() < 0.03 else " ".join(rng.choice(words) for _ in range(10))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def throughput(fn: Callable[[str], str], text: str, rounds: int = 5) -> float:
    """Best-of-`rounds` MB/s."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return len(text) / 1e6 / best


def bench(cfg: Config, tmp: Path) -> dict[str, object]:
    """The bench runner's entry: the same figures (a smaller text in tiny mode)."""
    return run(100_000 if cfg.mode == "tiny" else 1_000_000)


def run(size: int = 1_000_000) -> dict[str, object]:
    text = mixed_text(size)
    pem = "-----BEGIN PRIVATE KEY-----\n" * 2000
    out: dict[str, object] = {
        "mixed_text_bytes": len(text),
        "current_mb_s": round(throughput(redact, text), 2),
        "previous_mb_s": round(throughput(old_redact, text), 2),
    }
    start = time.perf_counter()
    redact(pem)
    out["pem_2000_begins_current_s"] = round(time.perf_counter() - start, 4)
    start = time.perf_counter()
    old_redact(pem)
    out["pem_2000_begins_previous_s"] = round(time.perf_counter() - start, 4)
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
