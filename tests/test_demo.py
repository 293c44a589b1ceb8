"""The newcomer's demo runs and shows every level, a CLI approval, a promotion and a demotion."""

from __future__ import annotations

import subprocess
from pathlib import Path


def test_demo_shows_the_whole_ladder(ratchet_bin: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ratchet_bin), "demo", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "ratchet: executed",
        "[the human clicks: accept, at once",
        "not evidence: 1 unverified",
        "ratchet: draft",
        "ratchet: blocked",
        "draft 3: executed",
        "source: draft -> confirm [promote by ratchet]",
        "docs: autonomous -> confirm (complaint",
    ):
        assert expected in out, expected
    assert "abc123secretvalue" not in out
    assert (tmp_path / "workspace/src/app.py").read_text() == "print('hi')\n"
    assert not (tmp_path / "workspace/.env").exists()
