"""Secrets do not survive Ratchet: a corpus of secret spellings is redacted wherever a call is kept or
shown (database bytes, CLI output, packets, elicitation messages, the notify command's stdin), while
look-alikes that are not secrets stay readable; and redaction takes linear time on hostile input."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

from ratchet.mcp.server import ServerConfig, build_server
from ratchet.policy.argv import analyse_shell
from ratchet.record.store import parse_location
from ratchet.redact import MARK, MAX_CHARS, redact, redact_argv

from .helpers import Clock, PgCluster, run_cli, write_policy

GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
PYPI = "pypi-" + "AgEIcHlwaS5vcmcCJGI4YmNlNmMxLTk2YjQtNDFjZC1hNDk5LTRiZjA5ZTI0ZjE4NQACKlszLCJmZjQ"
SENDGRID = "SG." + "ngeVfQFYQlKU0ufo8x5d1A.TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr"
DIGITALOCEAN = "dop_v1_" + "3f7a" * 16
# (text, the secret in it that must not survive)
CASES: list[tuple[str, str]] = [
    (f"git push https://x:{GH}@github.com/o/r", GH),
    (f"export GITHUB_TOKEN={GH}", GH),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    ),
    ("glpat-abcdefghij0123456789xy", "glpat-abcdefghij0123456789xy"),
    (f"aws configure set aws_access_key_id {AWS_ID}", AWS_ID),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    (f'{{"SecretAccessKey": "{AWS_SECRET}"}}', AWS_SECRET),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET} aws s3 ls", AWS_SECRET),
    ("curl -H 'Authorization: Bearer abc123def456ghi789' https://api", "abc123def456ghi789"),
    ('{"headers": {"Authorization": "Basic dXNlcjpodW50ZXIy"}}', "dXNlcjpodW50ZXIy"),
    ("token = Bearer zz9yy8xx7ww6vv5", "zz9yy8xx7ww6vv5"),
    ("curl -u admin:S3cr3tPw! https://x", "S3cr3tPw!"),
    ("curl --user 'deploy:open-sesame-42' https://x", "open-sesame-42"),
    ("mysql -uroot -pHunter2db mydb", "Hunter2db"),
    ("mysqldump --single-transaction -pQwErTy99 shop > dump.sql", "QwErTy99"),
    ("sshpass -p 'letmein77' ssh host", "letmein77"),
    ("psql --password TopSecret77 -h db", "TopSecret77"),
    ("tool --password=TopSecret88 run", "TopSecret88"),
    ("deploy --token tkn_abcdef123456 --env prod", "tkn_abcdef123456"),
    ("cli --api-key=k3yk3yk3yk3y", "k3yk3yk3yk3y"),
    ("postgres://app:pgPa55word@db.internal:5432/app", "pgPa55word"),
    ("DATABASE_URL=mysql://root:rootpw123@localhost/db", "rootpw123"),
    (json.dumps({"cmd": json.dumps({"password": "inner-s3cret"})}), "inner-s3cret"),
    (json.dumps({"args": 'login {"token": "tok-99887766"}'}), "tok-99887766"),
    ("API_KEY=abcd1234efgh5678", "abcd1234efgh5678"),
    ("export SECRET=shh-its-a-secret", "shh-its-a-secret"),
    ('DB_PASSWORD="correct horse battery staple"', "horse battery staple"),
    ("db_password: 'yaml-pass-1'", "yaml-pass-1"),
    ("PGPASSWORD=pgpass42 psql -h x", "pgpass42"),
    (
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX", "XXXXXXXXXXXXXXXX"),
    ("STRIPE=sk_live_51H8abcdefghijklmnop", "sk_live_51H8abcdefghijklmnop"),
    ("key=AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("anthropic sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345"),
    (f"cookie: session={JWT}", JWT),
    (
        "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789",
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    ),
    ("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"),
    (f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n", PEM_BODY),
    (f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}", PEM_BODY),
    (json.dumps(f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"), PEM_BODY),
    ("client_secret: cs-998877665544", "cs-998877665544"),
    # Each of the token families the README names, bare (no NAME= or flag before it): only its own pattern
    # can catch it.
    (f"twine upload -u __token__ {PYPI} dist/*", PYPI),
    (f"echo {SENDGRID} | mail-setup", SENDGRID),
    (f"doctl auth init --context ci {DIGITALOCEAN}", DIGITALOCEAN),
    ("restricted rk_live_51H8abcdefghijklmnop here", "rk_live_51H8abcdefghijklmnop"),
    # An argv as records, subjects and results keep it: a JSON or Python list, the value its own word.
    (json.dumps(["mysql", "--password", "ListPass01"]), "ListPass01"),
    (json.dumps({"argv": ["deploy", "--token", "ListTok02", "--env", "prod"]}), "ListTok02"),
    (json.dumps(json.dumps(["cli", "--api-key", "ListKey03"])), "ListKey03"),
    (repr(["mysqldump", "-p", "ListPass04", "shop"]), "ListPass04"),
    (json.dumps(["sshpass", "-p", "ListPass05", "ssh", "host"]), "ListPass05"),
    (json.dumps(["curl", "-u", "bob:ListPass06", "https://x"]), "ListPass06"),
    (json.dumps(["vault", "login", "--client-secret", "ListSec07"]), "ListSec07"),
]
# Look-alikes that must stay exactly as written.
KEEP: list[str] = [
    "commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: Jane <jane@example.com>",
    "5b2d1e0 Fix password reset email",
    "id 123e4567-e89b-12d3-a456-426614174000",
    "docker run -p 8080:80 nginx",
    "ssh -p 2222 host",
    "pytest -p no:cacheprovider",
    "Please reset your password before the token expires",
    "max_tokens=4096",
    "password_file=/run/secrets/db",
    "TOKEN_URL=https://auth.example.com/token",
    "author: Jane Doe",
    "docker login --password-stdin -u deploy",
    "https://github.com/owner/repo.git",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "tokenizer=bert-base",
    json.dumps(["docker", "run", "-p", "8080:80", "nginx"]),
    json.dumps(["ssh", "-p", "2222", "host"]),
    json.dumps(["tool", "--password", "--verbose"]),
    json.dumps(["docker", "login", "--password-stdin", "-u", "deploy"]),
]


@pytest.mark.parametrize(("text", "secret"), CASES, ids=[f"secret{i}" for i in range(len(CASES))])
def test_each_secret_spelling_is_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and MARK in out, out


@pytest.mark.parametrize("text", KEEP, ids=[f"keep{i}" for i in range(len(KEEP))])
def test_look_alikes_stay_readable(text: str) -> None:
    assert redact(text) == text


def test_the_corpus_is_large_enough() -> None:
    assert len({text for text, _ in CASES}) >= 30 and len(KEEP) >= 10


# Secrets given as their own argv word: (argv, the secret that must not survive).
ARGV_CASES: list[tuple[list[str], str]] = [
    (["mysql", "--password", "WordPass01", "shop"], "WordPass01"),
    (["deploy", "--token", "WordTok02", "--env", "prod"], "WordTok02"),
    (["cli", "--api-key", "WordKey03"], "WordKey03"),
    (["cli", "--API-KEY", "WordKey04"], "WordKey04"),
    (["/usr/bin/mysql", "-u", "root", "-p", "WordPass05", "shop"], "WordPass05"),
    (["mariadb-dump", "-p", "WordPass06"], "WordPass06"),
    (["sshpass", "-p", "WordPass07", "ssh", "host"], "WordPass07"),
    (["curl", "-u", "bob:WordPass08", "https://x"], "WordPass08"),
    (["sudo", "mysql", "--passwd", "WordPass09"], "WordPass09"),
    (["vault", "write", "--client-secret", "WordSec10"], "WordSec10"),
    (["gh", "--access-token", "WordTok11"], "WordTok11"),
    (["x", "--db-password", "WordPass12"], "WordPass12"),
]
ARGV_KEEP: list[list[str]] = [
    ["docker", "run", "-p", "8080:80", "nginx"],
    ["ssh", "-p", "2222", "host"],
    ["pytest", "-p", "no:cacheprovider"],
    ["tool", "--password", "--verbose"],
    ["docker", "login", "--password-stdin", "-u", "deploy"],
    ["git", "log", "--format=%H"],
]


@pytest.mark.parametrize(("argv", "secret"), ARGV_CASES, ids=[f"argv{i}" for i in range(len(ARGV_CASES))])
def test_a_secret_as_its_own_argv_word_is_redacted(argv: list[str], secret: str) -> None:
    forms = (redact_argv(argv), redact(json.dumps(argv)), redact(repr(argv)), redact(json.dumps(json.dumps(argv))))
    for shown in forms:
        assert secret not in str(shown) and MARK in str(shown), shown
    assert len(redact_argv(argv)) == len(argv)  # word for word: the flag stays, only the value goes


@pytest.mark.parametrize("argv", ARGV_KEEP, ids=[f"argvkeep{i}" for i in range(len(ARGV_KEEP))])
def test_argv_look_alikes_stay_readable(argv: list[str]) -> None:
    assert redact_argv(argv) == argv
    assert redact(json.dumps(argv)) == json.dumps(argv)


ARGV_POLICY = """
[defaults]
unmatched = "blocked"
max_consecutive_failures = 100

[classes.echo]
tools = ["run_command"]
argv = [["echo"]]
start = "autonomous"

[classes.other]
tools = ["run_command"]
argv = [["mysql"], ["mariadb-dump"], ["sshpass"], ["curl"], ["deploy"], ["cli"], ["sudo"], ["vault"], ["gh"], ["x"]]
start = "autonomous"
floor = "autonomous"
count_execution_failures = false
"""


def _pg_bytes(cluster: PgCluster, url: str) -> bytes:
    """Every byte the PostgreSQL cluster keeps on disk (tables and the write-ahead log), after a checkpoint."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return b"".join(p.read_bytes() for p in cluster.data.rglob("*") if p.is_file())


@pytest.mark.asyncio
async def test_a_secret_as_its_own_argv_word_never_reaches_the_database_bytes(
    workspace: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    policies = write_policy(tmp_path / "policies", ARGV_POLICY)
    async with Client(build_server(ServerConfig(workspace, policies, parse_location(backend)))) as client:
        for argv, _ in ARGV_CASES:
            ran = await client.call_tool("run_command", {"argv": ["echo", *argv]})  # runs: output holds it
            assert ran.structured_content is not None and ran.structured_content["status"] == "executed"
            assert MARK in ran.structured_content["preview"]  # the human's view of the call
            direct = await client.call_tool("run_command", {"argv": argv})  # the program itself (mostly absent)
            assert direct.structured_content is not None, direct
            assert direct.structured_content["status"] in ("executed", "failed", "blocked"), direct.structured_content
    if backend.startswith("postgresql://"):
        stored = _pg_bytes(request.getfixturevalue("pg_cluster"), backend)
    else:
        stored = _db_bytes(Path(backend))
    assert stored
    for _, secret in ARGV_CASES:
        assert secret.encode() not in stored, f"{secret!r} reached the database bytes"


def test_redaction_is_idempotent_and_keeps_the_name() -> None:
    once = redact("DB_PASSWORD=hunter22 --token abcdef123 curl -u me:pw12345")
    assert redact(once) == once
    assert once == f"DB_PASSWORD={MARK} --token {MARK} curl -u me:{MARK}"


def test_over_the_cap_is_cut_with_a_marker() -> None:
    out = redact("x" * (MAX_CHARS + 10) + "password=hunter22")
    assert "hunter22" not in out and out.endswith("characters ...]") and len(out) < MAX_CHARS + 100


def test_a_private_key_block_is_cut_exactly_to_its_closing_dashes() -> None:
    for label in ("PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY"):
        block = f"-----BEGIN {label}-----\n{PEM_BODY}\n-----END {label}-----"
        assert redact(f"before\n{block}\nafter") == f"before\n{MARK}\nafter"
        assert redact(f"{block}x") == f"{MARK}x"  # the character right after the block is kept
    assert redact(f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY") == MARK  # no closing dashes


def test_a_key_block_after_a_certificate_is_still_cut() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    key = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----"
    assert redact(f"{cert}\n{key}\n{cert}") == f"{cert}\n{MARK}\n{cert}"


def test_the_cap_cuts_only_past_it() -> None:
    assert redact("x" * MAX_CHARS) == "x" * MAX_CHARS
    cut = redact("x" * (MAX_CHARS + 1))
    assert cut.startswith("x" * MAX_CHARS) and cut[MAX_CHARS:].startswith("\n[... cut by redaction")


def test_a_quoted_value_keeps_its_quotes_and_what_follows() -> None:
    assert redact('DB_PASSWORD="correct horse battery staple" next') == f'DB_PASSWORD="{MARK}" next'
    assert redact("db_password: 'yaml-pass-1'") == f"db_password: '{MARK}'"
    assert redact("--token tkn_abcdef123456 --env prod") == f"--token {MARK} --env prod"


@pytest.mark.asyncio
async def test_long_texts_are_redacted_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import ratchet.redact as module

    where: list[bool] = []
    real = module.redact

    def recording(text: str) -> str:
        where.append(threading.current_thread() is threading.main_thread())
        return real(text)

    monkeypatch.setattr(module, "redact", recording)
    limit = module.OFF_LOOP_CHARS
    assert await module.redact_all("a" * (limit // 2), "b" * (limit - limit // 2)) == [
        "a" * (limit // 2),
        "b" * (limit - limit // 2),
    ]
    assert where == [True, True]  # at the limit: in the loop's own thread
    where.clear()
    secret = f"password={'x' * 8}"
    assert await module.redact_all("a" * limit, secret) == ["a" * limit, f"password={MARK}"]
    assert where == [False, False]  # past it: in a worker thread, the loop free to answer


# -- linear time -------------------------------------------------------------------------------------

HOSTILE = {
    "pem-begins": "-----BEGIN PRIVATE KEY-----\n",
    "pem-begin-end": "-----BEGIN PRIVATE KEY-----\n-----END ",
    "password-words": "password",
    "password-equals": "password=",
    "url-schemes": "a://b:",
    "jwt-heads": "eyJ-",
    "bearer": "bearer ",
    "flags": "--password ",
    "user": "-u a:",
    "mysql": "mysql -p ",
    "escaped-json": '{\\"password\\": \\"',
    "letters": "abcdefgh",
    "backslashes": 'password="\\\\\\',
    "nested-quotes": 'p: \\\\\\"',
}


def _seconds(fn: Any, arg: Any) -> float:
    best = float("inf")
    gc.disable()  # a collection landing in one run only is noise, not growth
    try:
        for _ in range(3):
            start = time.perf_counter()
            fn(arg)
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best


def _ratio(fn: Any, small: Any, large: Any) -> float:
    return _seconds(fn, large) / max(_seconds(fn, small), 1e-6)


@pytest.mark.parametrize("unit", list(HOSTILE), ids=list(HOSTILE))
def test_redaction_grows_linearly(unit: str) -> None:
    # 8x the input: about 8x the time when linear, about 64x when quadratic.
    n = 100_000 // len(HOSTILE[unit]) + 1  # large enough that fixed costs do not dominate
    ratio = _ratio(redact, HOSTILE[unit] * n, HOSTILE[unit] * (8 * n))
    assert ratio < 20, ratio


SCRIPTS = {
    "words": "a ",
    "separators": "true;",
    "pipes": "a|",
    "redirects": "echo >f ",
    "quotes": "'x'",
    "assignments": "A=1 ",
    "newlines": "echo a\n",
}


@pytest.mark.parametrize("unit", list(SCRIPTS), ids=list(SCRIPTS))
def test_shell_analysis_grows_linearly(unit: str) -> None:
    n = 16_000 // len(SCRIPTS[unit]) + 1
    tail = "" if unit != "assignments" else "echo"
    ratio = _ratio(analyse_shell, "echo " + SCRIPTS[unit] * n + tail, "echo " + SCRIPTS[unit] * (8 * n) + tail)
    assert ratio < 20, ratio


# -- end to end ----------------------------------------------------------------------------------------

E2E_POLICY = """
[defaults]
unmatched = "blocked"
max_consecutive_failures = 100
notify = ["sh", "-c", "cat >> \\"$0\\"; echo >> \\"$0\\"", "NOTIFY_LOG"]

[classes.echo]
tools = ["run_command"]
argv = [["echo"]]
start = "autonomous"

[classes.fails]
tools = ["run_command"]
argv = [["false"]]
start = "autonomous"
floor = "autonomous"

[classes.curl]
tools = ["run_command"]
argv = [["curl"]]
start = "blocked"

[classes.queue]
tools = ["write_file"]
paths = ["queue/**"]
start = "draft"
ceiling = "draft"

[classes.stop]
tools = ["write_file"]
paths = ["stop/**"]
start = "blocked"

[classes.ask]
tools = ["write_file"]
paths = ["ask/**"]
start = "confirm"
floor = "confirm"
ceiling = "confirm"
"""


class Decliner:
    """The human at the client's dialog, reading each change for a while (on the test's clock) and
    declining it, and keeping what it was shown."""

    def __init__(self, clock: Clock) -> None:
        self.seen: list[str] = []
        self.clock = clock

    async def __call__(self, ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.seen.append(params.message)
        self.clock.advance(30)  # a human's reading time: a decline that fast would be no answer
        return types.ElicitResult(action="accept", content={"approve": False})


def _db_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


@pytest.mark.asyncio
async def test_secrets_never_reach_the_record_the_cli_packets_or_notify(
    workspace: Path, tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str], clock: Clock
) -> None:
    log = tmp_path / "notify.log"
    policies = write_policy(tmp_path / "policies", E2E_POLICY.replace("NOTIFY_LOG", str(log)))
    human = Decliner(clock)
    kept: dict[str, str] = {}  # secret -> how it was carried; drafts are kept apart (their arguments wait)
    drafted: list[str] = []
    results: list[Any] = []
    server = build_server(ServerConfig(workspace, policies, db, clock=clock))
    async with Client(server, elicitation_callback=human) as client:
        for i, (text, secret) in enumerate(CASES):
            kind = i % 6
            # Prefixed: the SDK reads a JSON-looking string as JSON for `str | None` parameters.
            why = f"re: {text}"
            if kind == 0:  # runs, and its output holds the secret too
                call = ("run_command", {"argv": ["echo", text], "intent": why}, "executed")
            elif kind == 1:  # runs and fails
                call = ("run_command", {"argv": ["false", text], "intent": why}, "failed")
            elif kind == 2:  # refused: a blocked class, with a packet
                call = ("run_command", {"argv": ["curl", text], "intent": why, "uncertainty": why}, "blocked")
            elif kind == 3:  # refused: a blocked file write
                call = ("write_file", {"path": f"stop/s{i}.txt", "content": text, "intent": why}, "blocked")
            elif kind == 4:  # asked and declined: the elicitation message carries it
                call = ("write_file", {"path": f"ask/a{i}.txt", "content": text, "intent": why}, "declined")
            else:  # drafted: queued for a human
                call = ("write_file", {"path": f"queue/q{i}.txt", "content": text, "intent": why}, "draft")
            result = await client.call_tool(call[0], call[1])
            assert result.structured_content is not None, (i, result.content)
            assert result.structured_content["status"] == call[2], (text, result.structured_content)
            results.append(result.structured_content)
            (drafted.append(secret) if call[2] == "draft" else kept.__setitem__(secret, call[2]))
        # Refused before it could be classified (outside the workspace): recorded as `refused`.
        refused = await client.call_tool(
            "write_file", {"path": "../out/password=Hunter2Refused", "content": "x", "intent": "re: x"}
        )
        assert refused.is_error and "outside" in str(refused.content[0])
        kept["Hunter2Refused"] = "refused"
        for text in KEEP:
            result = await client.call_tool("run_command", {"argv": ["echo", text]})
            assert result.structured_content["status"] == "executed"
        # While the server still has the database open: the WAL holds the latest pages.
        live = _db_bytes(db)
    settled = _db_bytes(db)
    assert len(set(kept) - set(drafted)) >= 25
    for secret, how in kept.items():
        if secret in drafted:
            continue  # the same value also rode in a waiting draft, whose arguments are kept to run it
        raw = secret.encode()
        assert raw not in live and raw not in settled, f"{how} call left {secret!r} in the database"

    # Every CLI view of what happened, drafts included.
    outputs = []
    for args in (("history", "--json", "--limit", "500"), ("queue",), ("queue", "--json"), ("inbox",), ("status",)):
        code, out = await run_cli(capsys, workspace, policies, db, *args)
        assert code == 0, out
        outputs.append(out)
    for r in results:
        code, out = await run_cli(capsys, workspace, policies, db, "show", str(r["action_id"]), "--json")
        assert code == 0, out
        outputs.append(out)
        code, out = await run_cli(capsys, workspace, policies, db, "show", str(r["action_id"]))
        outputs.append(out)
    shown = "\n".join(outputs)
    packets = json.dumps([r["packet"] for r in results if r.get("packet")])
    assert packets.count('"action_id"') >= 2 * len(CASES) // 6
    await anyio.sleep(0.5)  # the notifier is detached; give it a moment to write
    notified = log.read_text()
    assert notified.count('"status"') >= len(CASES) // 6  # one line per inbox arrival
    for secret in [*kept, *drafted]:
        assert secret not in shown, f"CLI output shows {secret!r}"
        assert secret not in packets, f"a packet shows {secret!r}"
        assert secret not in notified, f"notify stdin got {secret!r}"
        assert all(secret not in m for m in human.seen), f"an elicitation showed {secret!r}"
    assert len(human.seen) == sum(1 for i in range(len(CASES)) if i % 6 == 4)
    history = json.loads(outputs[0])
    assert {"executed", "failed", "blocked", "declined", "draft", "refused"} <= {h["status"] for h in history}
    readable = json.dumps(history)
    for text in KEEP:
        assert json.dumps(text)[1:-1] in readable or text.split("\n")[0] in readable, text
