"""`ratchet db`: a record moved to a team's PostgreSQL, checked, and its roles set up."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from ratchet.cli.common import (
    Add,
    emit,
    existing_db,
    joined,
)
from ratchet.errors import UsageError
from ratchet.record.postgres import is_url as is_postgres
from ratchet.record.store import Store


async def cmd_db(args: argparse.Namespace) -> int:
    """Move a record to a team's PostgreSQL database, or check one: `db copy SQLITE_FILE postgresql://...`
    copies a history (every table, ids kept) into an empty database and verifies the copy; `db check`
    reports the schema version, the rows of each table and whether the hash chain verifies (exit 1 if not);
    `db roles` (as the database's owner) sets up the agent and reviewer roles (record/roles.py)."""
    from ratchet.record import transfer  # start-up: PostgreSQL's schema and roles, only for db

    if args.task == "copy":
        if args.source is None or args.target is None or not is_postgres(args.target):
            raise UsageError(
                "db copy takes SQLITE_FILE and a postgresql:// URL: ratchet db copy ratchet.db postgresql://..."
            )
        report = await anyio.to_thread.run_sync(transfer.copy, Path(args.source), args.target)
        emit(
            args,
            report,
            lambda: joined(
                f"copied {report.source} to {report.target}:",
                *(f"  {table:<12} {n}" for table, n in report.rows.items()),
                f"chain verified on both; head {report.head}",
            ),
        )
        return 0
    if args.task == "roles":
        return await _db_roles(args)
    if args.source is not None:
        raise UsageError("db check takes no arguments; name the database with --db")
    location = existing_db(args)
    store = await Store.open(location)
    try:
        result = await store.call(lambda conn: transfer.check(conn, str(location)))
    finally:
        await store.close()
    emit(
        args,
        result,
        lambda: joined(
            f"{result.database} ({result.backend}), schema version {result.schema_version}",
            *(f"  {table:<12} {n}" for table, n in result.rows.items()),
            f"chain: {result.chain}",
            *([f"roles: {result.roles}"] if result.roles is not None else []),
        ),
    )
    return 0 if result.ok else 1


async def _db_roles(args: argparse.Namespace) -> int:
    """`db roles`: set up the agent and reviewer roles on the PostgreSQL record --db names (run as its owner)."""
    from ratchet.record import roles  # start-up: PostgreSQL's schema and roles, only for db

    if args.source is not None:
        raise UsageError("db roles takes no positional arguments; name the database with --db")
    location = existing_db(args)
    if isinstance(location, Path):
        raise UsageError(f"db roles needs a PostgreSQL record (--db postgresql://...); {location} is an SQLite file")
    store = await Store.open(location)
    try:
        people = roles.parse_people(args.person) if args.person else None
        done = await store.run(lambda conn: roles.install(conn, args.agent, args.reviewer, people))
    finally:
        await store.close()
    emit(
        args,
        done,
        lambda: joined(
            f"roles set up on {location} (schema {done.schema}):",
            f"  agent    {done.agent}: reads everything; writes "
            + ", ".join(f"{t} ({p.lower()})" for t, p in done.agent_writes.items()),
            "           and never a review, an approval, a pin, a freeze, a raised level, a policy move, a success "
            "below autonomous, nor an action's content once recorded",
            f"  reviewer {done.reviewer}: reads and writes every table",
            *(
                f"  person   {who}: logins {', '.join(sorted(lg for lg, p in done.people.items() if p == who))}"
                for who in sorted(set(done.people.values()))
            ),
            *([f"  created (NOLOGIN groups): {', '.join(done.created)}"] if done.created else []),
            f"next: GRANT {done.agent} TO <the agent servers' login role>; GRANT {done.reviewer} TO <each reviewer's>",
        ),
    )
    return 0


def add_db(add: Add) -> None:
    p = add("db", cmd_db, json_flag=True, what="what was copied or found")
    p.add_argument(
        "task",
        choices=["copy", "check", "roles"],
        help="copy a record into PostgreSQL, check one, or set up its agent and reviewer roles",
    )
    p.add_argument("--agent", default="ratchet_agent", help="roles: the agent side's group role (default: %(default)s)")
    p.add_argument(
        "--reviewer", default="ratchet_reviewer", help="roles: the reviewer side's group role (default: %(default)s)"
    )
    p.add_argument(
        "--person",
        action="append",
        metavar="NAME=LOGIN[,LOGIN]",
        help="roles: one person's database logins (their agent's and their own; repeatable; replaces the list): "
        "actions record the person, and a machine carries out only drafts its own person's logins recorded",
    )
    p.add_argument("source", nargs="?", metavar="SQLITE_FILE", help="copy: the SQLite trust database to copy from")
    p.add_argument("target", nargs="?", metavar="URL", help="copy: the empty PostgreSQL database (postgresql://...)")
