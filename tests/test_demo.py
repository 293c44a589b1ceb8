"""The newcomer's demo runs and shows every level, a CLI approval, a promotion and a demotion; it names
its toy thresholds, shows the whole escalation packet, and refuses a used directory or options it
would ignore."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _demo(ratchet_bin: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ratchet_bin), "demo", *argv], capture_output=True, text=True, timeout=120)


def test_demo_shows_the_whole_ladder(ratchet_bin: Path, tmp_path: Path) -> None:
    done = _demo(ratchet_bin, "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "ratchet: executed",
        "[the human clicks: accept, at once",
        "not evidence: 1 unverified",
        "ratchet: draft",
        "ratchet: blocked",
        "draft 3: executed",
        "docs: autonomous -> confirm (complaint",
    ):
        assert expected in out, expected
    promotion = next(line for line in out.splitlines() if "promote by ratchet" in line)
    assert promotion.split()[2:5] == ["source", "draft", "confirm"], promotion
    assert "abc123secretvalue" not in out
    assert (tmp_path / "workspace/src/app.py").read_text() == "print('hi')\n"
    assert not (tmp_path / "workspace/.env").exists()


def test_demo_names_its_toy_thresholds_and_prints_the_whole_packet(ratchet_bin: Path, tmp_path: Path) -> None:
    done = _demo(ratchet_bin, "--dir", str(tmp_path / "new"))
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "promoted after 3 straight approvals (window_size 5, min_samples 3, promote_at 0.4)" in text
    assert "Ratchet's defaults need 52 straight approvals (window_size 100" in text
    packet = done.stdout.split("ratchet: blocked")[1].split("The human reviews")[0]
    # Every option of the packet, through to the last line, not cut before them.
    for line in ("1. approach", "2. take-over (recommended)", "3. policy", "waiting "):
        assert line in packet, packet
    assert "**" not in packet and "###" not in packet and "```" not in packet


def test_demo_refuses_a_used_directory_and_options_it_would_ignore(ratchet_bin: Path, tmp_path: Path) -> None:
    assert _demo(ratchet_bin, "--dir", str(tmp_path)).returncode == 0
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    again = _demo(ratchet_bin, "--dir", str(tmp_path))
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.splitlines() == [again.stderr.strip()] and "not an empty directory" in again.stderr
    assert "leave out --dir" in again.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    for option in ("--db", "--workspace", "--policies"):
        ignored = _demo(ratchet_bin, option, str(tmp_path / "x"))
        assert ignored.returncode == 2 and f"unrecognized arguments: {option}" in ignored.stderr
        assert not (tmp_path / "x").exists()
