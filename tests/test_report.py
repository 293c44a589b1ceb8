"""`ratchet report`: a terminal summary, JSON, and a self-contained HTML page with one plot per class."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ratchet.cli import main
from ratchet.mcp_server import ServerConfig, build_server


async def _cli(capsys: pytest.CaptureFixture[str], base: list[str], *argv: str) -> tuple[int, str]:
    code = await anyio.to_thread.run_sync(main, [*argv, *base])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.asyncio
async def test_report_terminal_json_and_an_offline_html_page(
    workspace: Path, policies: Path, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--workspace", str(workspace), "--policies", str(policies), "--db", str(db)]
    async with Client(build_server(ServerConfig(workspace, policies, db))) as client:
        for n in range(3):  # three approvals promote `climb` (min_samples 3, promote_at 0.4)
            out = (await client.call_tool("write_file", {"path": f"climb/{n}.txt", "content": "x"})).structured_content
            code, _ = await _cli(capsys, base, "approve", str(out["draft_id"]))
            assert code == 0
        auto = (await client.call_tool("write_file", {"path": "auto/a.txt", "content": "x"})).structured_content
        await client.call_tool("write_file", {"path": "stop/s.txt", "content": "x"})
    code, _ = await _cli(capsys, base, "complain", str(auto["action_id"]), "--reason", "wrong")
    assert code == 0

    code, text = await _cli(capsys, base, "report")
    assert code == 0 and "climb" in text and "draft -> confirm" in text and "autonomous -> confirm" in text

    code, text = await _cli(capsys, base, "report", "--json")
    assert code == 0
    report = json.loads(text)
    trajectories = {t["action_class"]: t for t in report["trajectories"]}
    assert {"auto", "ask", "queue", "stop", "climb"} <= set(trajectories)

    page = tmp_path / "report.html"
    code, _ = await _cli(capsys, base, "report", "--html", str(page))
    assert code == 0
    html = page.read_text()
    # Opens offline: nothing fetched from the network, no script from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script src" not in html and "@import" not in html
    # One plot per class of the policy (and the built-in unclassified one).
    assert html.count("<svg") == len(trajectories)
    for name in trajectories:
        assert name in html
