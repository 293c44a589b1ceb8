"""A trial benchmark run (`python -m bench --quick`) never overwrites the committed figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_quick_run_writes_to_a_scratch_directory_not_bench_results() -> None:
    results = REPO / "bench" / "results"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in results.iterdir()}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "redaction", "--no-external"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in results.iterdir()}
    assert after == before
    found = re.search(r"wrote bench\.json, bench\.md in (\S+) ", done.stderr)
    assert found, done.stderr[-2000:]
    out = Path(found[1])
    try:
        assert out.resolve() != results.resolve()
        assert '"mode": "quick"' in (out / "bench.json").read_text()
    finally:
        for p in out.iterdir():
            p.unlink()
        out.rmdir()
