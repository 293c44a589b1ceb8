"""A crash test's seam, in the tests alone: run the `ratchet` console script (or any Python code) with
the filesystem executor stopping each write after its temp file is fully written and fsynced, just before
the rename that would publish it, so that the test can SIGKILL the process mid-write.

`python tests/hold_write.py HOLD_DIR ARGS...` runs `ratchet ARGS...`; at the held write it creates
`HOLD_DIR/held` holding the temp file's path and sleeps for up to 120 s. `hold_before_rename` does the
same in a process of the test's own. Only the executor module's view of `os.replace` changes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

HOLD_SECONDS = 120.0


class _HeldOs:
    """The `os` module as `ratchet.executors.fs` sees it, with `replace` holding before the rename."""

    def __init__(self, hold_dir: Path) -> None:
        self._hold_dir = hold_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def replace(self, src: Any, dst: Any, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None) -> None:
        base = Path(f"/proc/self/fd/{src_dir_fd}").readlink() if src_dir_fd is not None else Path()
        (self._hold_dir / "held").write_text(str(base / os.fsdecode(src)), encoding="utf-8")
        deadline = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.05)
        os.replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


def hold_before_rename(hold_dir: Path) -> None:
    """From now on, this process's writes through the filesystem executor hold before their rename."""
    from ratchet.executors import fs

    fs.os = _HeldOs(hold_dir)  # type: ignore[assignment]


if __name__ == "__main__":
    hold_before_rename(Path(sys.argv[1]))
    from ratchet.entry import main

    sys.argv = ["ratchet", *sys.argv[2:]]
    sys.exit(main())
