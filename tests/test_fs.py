"""The filesystem executor against real files: planning, edits, atomic apply and its refusals."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ratchet.errors import DraftStale, EditAmbiguous, EditNotFound, ExecutionFailed, InvalidRequest, PathRefused
from ratchet.executors import fs
from ratchet.executors.fs import (
    Edit,
    apply_plan,
    fingerprint,
    plan_edit,
    plan_write,
    read_state,
    temp_path_for,
)
from ratchet.executors.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "ws").mkdir()
    return Workspace(tmp_path / "ws")


def stray_temps(ws: Workspace) -> list[Path]:
    return [p for p in ws.root.rglob("*") if p.name.endswith(".tmp")]


class RacingWorkspace(Workspace):
    """Runs ``after_check`` right after the next successful check: the window a real race exploits."""

    after_check: object = None

    def relpath(self, path: str) -> str:
        rel = super().relpath(path)
        hook, self.after_check = self.after_check, None
        if callable(hook):
            hook()
        return rel


# --- reading and planning -------------------------------------------------------------------------


def test_fingerprint() -> None:
    assert fingerprint(None) == "absent"
    assert fingerprint(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_read_state_absent_and_present(ws: Workspace) -> None:
    assert read_state(ws, "no/such.txt").exists is False
    (ws.root / "a.txt").write_bytes(b"x\r\ny\r\nz\n")
    (ws.root / "a.txt").chmod(0o640)
    state = read_state(ws, "a.txt")
    assert state.exists and state.text == "x\r\ny\r\nz\n"
    assert state.newline == "\r\n" and state.mode == 0o640
    assert state.fingerprint == fingerprint(b"x\r\ny\r\nz\n")


def test_non_utf8_and_directory_refused(ws: Workspace) -> None:
    (ws.root / "bin.dat").write_bytes(b"\xff\xfe\x00")
    (ws.root / "dir").mkdir()
    with pytest.raises(InvalidRequest, match=r"bin\.dat is not UTF-8 text"):
        plan_write(ws, "bin.dat", "text")
    with pytest.raises(InvalidRequest, match="is a directory"):
        plan_write(ws, "dir", "text")
    with pytest.raises(InvalidRequest, match="not a directory"):
        plan_write(ws, "bin.dat/child.txt", "text")


def test_fifo_refused_without_blocking(ws: Workspace) -> None:
    os.mkfifo(ws.root / "pipe")
    with pytest.raises(InvalidRequest, match="not a regular file"):
        plan_write(ws, "pipe", "text")


def test_diff_headers(ws: Workspace) -> None:
    created = plan_write(ws, "docs/new.md", "one\ntwo\n")
    assert created.diff.startswith("--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1,2 @@\n+one\n+two\n")
    (ws.root / "old.md").write_text("one\ntwo")
    changed = plan_write(ws, "old.md", "one\nthree")
    assert changed.diff.startswith("--- a/old.md\n+++ b/old.md\n")
    assert "-two\n\\ No newline at end of file\n+three\n\\ No newline at end of file\n" in changed.diff
    assert plan_write(ws, "old.md", "one\ntwo").diff == ""
    assert plan_write(ws, "empty.md", "").diff == "--- /dev/null\n+++ b/empty.md\n"


def test_diff_is_capped_with_marker(ws: Workspace) -> None:
    plan = plan_write(ws, "big.txt", "".join(f"line {i}\n" for i in range(10_000)))
    assert plan.diff.endswith(" more lines not shown]\n")
    assert plan.diff.count("\n") < 2100
    assert plan.new_text.count("\n") == 10_000  # the content itself is never cut


# --- writing --------------------------------------------------------------------------------------


def test_create_with_parent_directories(ws: Workspace) -> None:
    plan = plan_write(ws, "a/b/c.txt", "hello\n")
    assert plan.rel == "a/b/c.txt" and not plan.before.exists
    result = apply_plan(ws, plan, token="t1")
    assert (ws.root / "a/b/c.txt").read_text() == "hello\n"
    assert result.created and result.bytes_written == 6
    assert result.fingerprint == fingerprint(b"hello\n")
    assert stray_temps(ws) == []


def test_overwrite_keeps_mode_and_crlf(ws: Workspace) -> None:
    target = ws.root / "run.sh"
    target.write_bytes(b"#!/bin/sh\r\necho old\r\n")
    target.chmod(0o755)
    result = apply_plan(ws, plan_write(ws, "run.sh", "#!/bin/sh\necho new\n"), token="t2")
    assert target.read_bytes() == b"#!/bin/sh\r\necho new\r\n"
    assert target.stat().st_mode & 0o7777 == 0o755
    assert not result.created


def test_content_with_cr_is_written_as_given(ws: Workspace) -> None:
    (ws.root / "f.txt").write_bytes(b"a\r\nb\r\n")
    plan = plan_write(ws, "f.txt", "x\ny\r\n")
    assert plan.new_text == "x\ny\r\n"
    assert plan_write(ws, "lf.txt", "x\n").new_text == "x\n"  # new files keep content as given


def test_unencodable_content_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidRequest, match="UTF-8"):
        plan_write(ws, "f.txt", "lone \ud800 surrogate")


def test_hard_link_to_outside_file_is_replaced_not_written_through(ws: Workspace) -> None:
    outside = ws.root.parent / "outside.txt"
    outside.write_text("outside\n")
    os.link(outside, ws.root / "linked.txt")
    apply_plan(ws, plan_write(ws, "linked.txt", "inside\n"), token="t3")
    assert outside.read_text() == "outside\n"
    assert outside.stat().st_nlink == 1
    assert (ws.root / "linked.txt").read_text() == "inside\n"


def test_temp_path_naming(ws: Workspace) -> None:
    assert temp_path_for(ws, "a/b.txt", "d_42") == ws.root / "a" / ".b.txt.ratchet-d_42.tmp"
    assert len(temp_path_for(ws, "x" * 255, "t").name.encode()) <= 255
    with pytest.raises(InvalidRequest, match="token"):
        temp_path_for(ws, "a.txt", "../escape")


# --- refusals at apply time -----------------------------------------------------------------------


def test_stale_file_is_not_overwritten(ws: Workspace) -> None:
    target = ws.root / "f.txt"
    target.write_text("v1\n")
    plan = plan_write(ws, "f.txt", "mine\n")
    target.write_text("theirs\n")
    with pytest.raises(DraftStale, match="changed since it was previewed"):
        apply_plan(ws, plan, token="t4")
    assert target.read_text() == "theirs\n"
    assert stray_temps(ws) == []


def test_stale_creation_and_vanished_parent(ws: Workspace) -> None:
    plan = plan_write(ws, "new.txt", "mine\n")
    (ws.root / "new.txt").write_text("theirs\n")
    with pytest.raises(DraftStale):
        apply_plan(ws, plan, token="t5")
    assert (ws.root / "new.txt").read_text() == "theirs\n"

    (ws.root / "d").mkdir()
    (ws.root / "d" / "f.txt").write_text("v1\n")
    plan = plan_write(ws, "d/f.txt", "mine\n")
    (ws.root / "d" / "f.txt").unlink()
    (ws.root / "d").rmdir()
    with pytest.raises(DraftStale):
        apply_plan(ws, plan, token="t6")
    assert not (ws.root / "d").exists()  # parents are only created once the check has passed


def test_parent_swapped_for_symlink_after_check(ws: Workspace, tmp_path: Path) -> None:
    racing = RacingWorkspace(ws.root)
    (racing.root / "sub").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    plan = plan_write(racing, "sub/f.txt", "pwned\n")

    def swap() -> None:
        (racing.root / "sub").rmdir()
        (racing.root / "sub").symlink_to(outside)

    racing.after_check = swap
    with pytest.raises(PathRefused) as refused:
        apply_plan(racing, plan, token="t7")
    assert refused.value.rule == "symlink-parent"
    assert list(outside.iterdir()) == []


def test_leaf_swapped_for_symlink_after_check(ws: Workspace, tmp_path: Path) -> None:
    racing = RacingWorkspace(ws.root)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret\n")
    plan = plan_write(racing, "f.txt", "pwned\n")
    racing.after_check = lambda: (racing.root / "f.txt").symlink_to(secret)
    with pytest.raises(PathRefused) as refused:
        apply_plan(racing, plan, token="t8")
    assert refused.value.rule == "symlink-leaf"
    assert secret.read_text() == "secret\n"
    assert (racing.root / "f.txt").is_symlink()


def test_parent_retargeted_inside_is_stale(ws: Workspace) -> None:
    (ws.root / "a").mkdir()
    (ws.root / "b").mkdir()
    plan = plan_write(ws, "a/f.txt", "x\n")
    (ws.root / "a").rmdir()
    (ws.root / "a").symlink_to("b")
    with pytest.raises(DraftStale, match="location changed"):
        apply_plan(ws, plan, token="t9")
    assert list((ws.root / "b").iterdir()) == []


def test_temp_file_removed_on_failure(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    target = ws.root / "f.txt"
    target.write_text("old\n")
    plan = plan_write(ws, "f.txt", "new\n")
    # A failure after the temp file is written and before the rename: the rename itself fails.
    staged: list[Path] = []

    class FailingRename:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        def replace(self, src: str, dst: str, *, src_dir_fd: int, dst_dir_fd: int) -> None:
            staged.append(Path(f"/proc/self/fd/{src_dir_fd}").readlink() / src)
            assert staged[0].read_text() == "new\n"  # fully written before the rename
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fs, "os", FailingRename())
    with pytest.raises(ExecutionFailed, match=r"writing f\.txt failed"):
        apply_plan(ws, plan, token="t10")
    assert target.read_text() == "old\n"
    assert staged == [temp_path_for(ws, "f.txt", "t10")] and stray_temps(ws) == []


def test_existing_temp_file_is_neither_reused_nor_removed(ws: Workspace) -> None:
    plan = plan_write(ws, "f.txt", "new\n")
    squatter = temp_path_for(ws, "f.txt", "t11")
    squatter.write_text("someone else's\n")
    with pytest.raises(ExecutionFailed):
        apply_plan(ws, plan, token="t11")
    assert squatter.read_text() == "someone else's\n"
    assert not (ws.root / "f.txt").exists()


def test_crash_before_rename_leaves_target_intact(ws: Workspace, tmp_path: Path) -> None:
    target = ws.root / "f.txt"
    target.write_text("old\n")
    hold = tmp_path / "hold"
    hold.mkdir()
    script = (
        "import sys\nfrom pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from hold_write import hold_before_rename\n"
        "from ratchet.executors.workspace import Workspace\nfrom ratchet.executors.fs import apply_plan, plan_write\n"
        "hold_before_rename(Path(sys.argv[2]))\n"
        "ws = Workspace(Path(sys.argv[1]))\n"
        "apply_plan(ws, plan_write(ws, 'f.txt', 'new\\n'), token='crash')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(ws.root), str(hold)])
    try:
        deadline = time.monotonic() + 30
        while not (hold / "held").exists():
            assert proc.poll() is None, "writer exited before reaching the hold point"
            assert time.monotonic() < deadline, "writer never reached the hold point"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    temp = temp_path_for(ws, "f.txt", "crash")
    assert target.read_text() == "old\n"
    assert (hold / "held").read_text() == str(temp)
    assert temp.read_text() == "new\n"  # fully written before the hold, never renamed


# --- edits ----------------------------------------------------------------------------------------


@pytest.fixture
def code(ws: Workspace) -> Path:
    path = ws.root / "code.py"
    path.write_text("a = 1\nb = 1\nc = 2\n")
    return path


def test_edit_once(ws: Workspace, code: Path) -> None:
    plan = plan_edit(ws, "code.py", [Edit("c = 2", "c = 3")])
    assert plan.new_text == "a = 1\nb = 1\nc = 3\n"
    assert "-c = 2\n+c = 3\n" in plan.diff
    apply_plan(ws, plan, token="e1")
    assert code.read_text() == "a = 1\nb = 1\nc = 3\n"


def test_edit_ambiguous_names_count(ws: Workspace, code: Path) -> None:
    with pytest.raises(EditAmbiguous, match=r"edits\[0\].*occurs 2 times.*count=2"):
        plan_edit(ws, "code.py", [Edit("= 1", "= 9")])


def test_edit_with_count(ws: Workspace, code: Path) -> None:
    assert plan_edit(ws, "code.py", [Edit("= 1", "= 9", count=2)]).new_text == "a = 9\nb = 9\nc = 2\n"
    with pytest.raises(EditNotFound, match=r"occurs 2 times.*expected 3"):
        plan_edit(ws, "code.py", [Edit("= 1", "= 9", count=3)])
    with pytest.raises(EditAmbiguous, match=r"occurs 2 times.*expected 1"):
        plan_edit(ws, "code.py", [Edit("= 1", "= 9", count=1)])
    with pytest.raises(InvalidRequest, match="count must be at least 1"):
        plan_edit(ws, "code.py", [Edit("= 1", "= 9", count=0)])


def test_edit_not_found_names_index_and_excerpt(ws: Workspace, code: Path) -> None:
    with pytest.raises(EditNotFound, match=r"edits\[1\]: old_text 'zzz' does not occur in code\.py"):
        plan_edit(ws, "code.py", [Edit("a = 1", "a = 0"), Edit("zzz", "y")])


def test_edits_apply_in_order(ws: Workspace, code: Path) -> None:
    plan = plan_edit(ws, "code.py", [Edit("a = 1", "a = X"), Edit("a = X\nb", "a = Y\nb")])
    assert plan.new_text == "a = Y\nb = 1\nc = 2\n"


def test_edit_replacement_is_literal(ws: Workspace, code: Path) -> None:
    new = r"c = re.sub(r'(\d)', r'\1', s)  # $& \n"
    assert plan_edit(ws, "code.py", [Edit("c = 2", new)]).new_text == f"a = 1\nb = 1\n{new}\n"
    with pytest.raises(EditNotFound):
        plan_edit(ws, "code.py", [Edit("[abc] = 1", "x")])  # not a regex either


def test_edit_crlf_file_with_lf_old_text(ws: Workspace) -> None:
    path = ws.root / "win.txt"
    path.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    plan = plan_edit(ws, "win.txt", [Edit("one\ntwo\n", "1\n2\n"), Edit("three\r\n", "3\r\n")])
    apply_plan(ws, plan, token="e2")
    assert path.read_bytes() == b"1\r\n2\r\n3\r\n"


def test_edit_bad_requests(ws: Workspace, code: Path) -> None:
    with pytest.raises(InvalidRequest, match="old_text is empty"):
        plan_edit(ws, "code.py", [Edit("", "x")])
    with pytest.raises(InvalidRequest, match="edits is empty"):
        plan_edit(ws, "code.py", [])
    with pytest.raises(InvalidRequest, match="does not exist"):
        plan_edit(ws, "missing.py", [Edit("a", "b")])
    with pytest.raises(PathRefused):
        plan_edit(ws, "../code.py", [Edit("a", "b")])
