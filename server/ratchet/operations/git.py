"""git_status, git_diff, git_commit, git_push, and git_revert (an undo's draft): reviewable previews.

The workspace root is the repository. A commit's preview is the staged diff it would record, and
its fingerprint is that diff plus HEAD, so a draft commit goes stale when either moves. A push's
preview lists the commits that would land and their diffstat; its fingerprint is the local and
remote-tracking heads. The matcher sees the branch and remote, and whether the push is forced.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ratchet.errors import InvalidRequest
from ratchet.executors import git
from ratchet.operations.base import OpContext, Operation, Prepared
from ratchet.policy.model import Subject


def _repo(ctx: OpContext) -> Path:
    root = ctx.workspace.root
    if not (root / ".git").exists():
        raise InvalidRequest(f"the workspace {root} is not a git repository (no .git at its root)")
    return root


def _paths(ctx: OpContext, paths: list[str] | None) -> list[str]:
    return [ctx.workspace.relpath(p) for p in paths or []]


async def _prepare_status(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    _repo(ctx)
    return Prepared("git_status", {}, (Subject(tool="git_status"),), "git status", "git status", None)


async def _run_status(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    return {"output": await git.git_status(_repo(ctx))}


async def _prepare_diff(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    _repo(ctx)
    paths = _paths(ctx, args.get("paths"))
    staged = bool(args.get("staged"))
    shown = "git diff" + (" --staged" if staged else "") + ("".join(f" {p}" for p in paths))
    return Prepared(
        "git_diff",
        {"staged": staged, "paths": paths},
        (Subject(tool="git_diff", paths=tuple(paths)),),
        shown,
        shown,
        None,
    )


async def _run_diff(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    args = prepared.args
    return {"diff": await git.git_diff(_repo(ctx), staged=args["staged"], paths=args["paths"])}


async def _commit_state(ctx: OpContext, paths: list[str]) -> tuple[str, str]:
    repo = _repo(ctx)
    diff = await git.staged_diff(repo, paths)
    head = await git.git_status(repo)  # branch header and index state both move the fingerprint
    return diff, "sha256:" + hashlib.sha256((diff + "\0" + head).encode()).hexdigest()


async def _prepare_commit(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    message = args.get("message") or ""
    size = ctx.ceiling.text("git_commit", "the commit message", message)
    if not message.strip():
        raise InvalidRequest("message is empty; expected a commit message")
    paths = _paths(ctx, args.get("paths"))
    branch = await git.current_branch(_repo(ctx))
    diff, fingerprint = await _commit_state(ctx, paths)
    if not diff.strip():
        raise InvalidRequest("nothing to commit: " + ("those paths have no changes" if paths else "nothing is staged"))
    # The paths it records, read exactly (never parsed out of the diff, where git quotes unusual names).
    touched = tuple(p for p in paths) or tuple(await git.staged_names(_repo(ctx)))
    preview = f"commit on {branch}: {message}\n\n{diff}"
    return Prepared(
        "git_commit",
        {"message": message, "paths": paths},
        (Subject(tool="git_commit", paths=touched, branch=branch),),
        f"{branch}: {message[:80]}",
        preview,
        fingerprint,
        sizes={"max_text_bytes": size},
    )


async def _fingerprint_commit(ctx: OpContext, args: dict[str, Any]) -> str | None:
    return (await _commit_state(ctx, _paths(ctx, args.get("paths"))))[1]


async def _run_commit(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    done = await git.git_commit(_repo(ctx), prepared.args["message"], prepared.args["paths"])
    return {"sha": done.sha, "summary": done.summary, "files": list(done.files)}


async def _push_target(ctx: OpContext, args: dict[str, Any]) -> tuple[str, str, bool]:
    repo = _repo(ctx)
    remote = args.get("remote") or "origin"
    branch = args.get("branch") or await git.current_branch(repo)
    return remote, git.check_ref_name(branch, "branch"), bool(args.get("force"))


async def _prepare_push(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    remote, branch, force = await _push_target(ctx, args)
    preview = await git.push_preview(_repo(ctx), remote, branch)
    lines = [
        f"git push{' --force-with-lease' if force else ''} {remote} {branch}"
        f"  ({preview.local_sha[:10]} onto {preview.remote_sha[:10] if preview.remote_sha else 'a new branch'})"
    ]
    if preview.non_fast_forward:
        lines.append(
            f"NOT a fast-forward: {len(preview.overwritten)} commit(s) on the remote would be "
            + ("overwritten" if force else "rejected")
        )
        lines += [f"  - {c.sha[:10]} {c.subject}" for c in preview.overwritten]
    lines.append(f"{preview.commit_count} commit(s) to push:")
    lines += [f"  {c.sha[:10]} {c.subject}" for c in preview.commits]
    lines += ["", preview.diffstat]
    fingerprint = f"{preview.local_sha}:{preview.remote_sha}"
    subject = Subject(tool="git_push", branch=branch, remote=remote, force=force)
    return Prepared(
        "git_push",
        {"remote": remote, "branch": branch, "force": force},
        (subject,),
        f"{remote} {branch}",
        "\n".join(lines),
        fingerprint,
    )


async def _fingerprint_push(ctx: OpContext, args: dict[str, Any]) -> str | None:
    remote, branch, _ = await _push_target(ctx, args)
    preview = await git.push_preview(_repo(ctx), remote, branch)
    return f"{preview.local_sha}:{preview.remote_sha}"


async def _run_push(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    a = prepared.args
    done = await git.git_push(_repo(ctx), a["remote"], a["branch"], force=a["force"])
    return {"output": (done.stdout + done.stderr).strip()}


async def _revert_state(ctx: OpContext, sha: str) -> tuple[git.RevertPreview, str]:
    repo = _repo(ctx)
    preview = await git.revert_preview(repo, sha)
    status = await git.git_status(repo)  # HEAD and the working tree's state both move the fingerprint
    return preview, "sha256:" + hashlib.sha256((preview.head + "\0" + status).encode()).hexdigest()


async def _prepare_revert(ctx: OpContext, args: dict[str, Any]) -> Prepared:
    # Not an agent's tool: `ratchet undo` of a git_commit action queues it as a draft for a human.
    sha = args.get("sha")
    if not isinstance(sha, str):
        raise InvalidRequest("sha must be the full sha of the commit to revert")
    preview, fingerprint = await _revert_state(ctx, sha)
    shown = f"revert {sha[:10]} ({preview.subject}) with a new commit on {preview.branch}\n\n{preview.diff}"
    return Prepared(
        "git_revert",
        {"sha": sha},
        (Subject(tool="git_revert", paths=preview.paths, branch=preview.branch),),
        f"{preview.branch}: revert {sha[:10]} {preview.subject[:60]}",
        shown,
        fingerprint,
    )


async def _fingerprint_revert(ctx: OpContext, args: dict[str, Any]) -> str | None:
    return (await _revert_state(ctx, str(args["sha"])))[1]


async def _run_revert(ctx: OpContext, prepared: Prepared, token: str) -> dict[str, Any]:
    done = await git.git_revert(_repo(ctx), prepared.args["sha"])
    return {"sha": done.sha, "summary": done.summary, "files": list(done.files), "reverted": prepared.args["sha"]}


async def _none(ctx: OpContext, args: dict[str, Any]) -> str | None:
    return None


def _at_open() -> None:
    git.discard_stale_indexes()  # a commit preview killed midway leaves its throwaway index behind


OPERATIONS = (
    Operation("git_status", _prepare_status, _none, _run_status, at_open=_at_open),
    Operation("git_diff", _prepare_diff, _none, _run_diff, at_open=_at_open),
    Operation("git_commit", _prepare_commit, _fingerprint_commit, _run_commit, at_open=_at_open),
    Operation("git_push", _prepare_push, _fingerprint_push, _run_push, at_open=_at_open),
    Operation("git_revert", _prepare_revert, _fingerprint_revert, _run_revert, at_open=_at_open),
)
