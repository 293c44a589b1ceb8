"""The database roles' own rules that need no database (record/roles.py): the role and login names Ratchet
puts into GRANT statements, `--person` as given on the command line, the guard functions it installs as
PostgreSQL keeps their bodies, and what the roles say of an SQLite record. The guards themselves are tried
against a real PostgreSQL in test_roles.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ratchet.errors import InvalidRequest
from ratchet.record import roles


@pytest.mark.parametrize("name", ["a", "_", "ratchet_agent", "agents_0f3a", "a" * 63, "x9_"])
def test_a_usable_role_name_is_returned_as_it_is(name: str) -> None:
    assert roles.check_name(name, "agent") == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "9lives", "agent-x", "agent x", "a;DROP TABLE reviews", "a" * 64, "ratchet_agent\n", "é"],
)
def test_a_role_name_that_could_not_go_into_a_grant_is_refused_naming_it_and_the_rule(name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        roles.check_name(name, "reviewer")
    text = str(caught.value)
    assert text.startswith(f"reviewer role name {name!r} is not usable")
    assert "lower-case letters, digits and _" in text and "at most 63 characters" in text


def test_people_map_each_login_to_its_person() -> None:
    people = roles.parse_people(["alice=alice_agent, alice_review", " bob =bob_agent", "alice=alice_laptop"])
    assert people == {"alice_agent": "alice", "alice_review": "alice", "bob_agent": "bob", "alice_laptop": "alice"}
    assert roles.parse_people(None) == {} and roles.parse_people([]) == {}
    # The same login named twice for the same person is the same statement, not a conflict.
    assert roles.parse_people(["carol=c1", "carol=c1,c2"]) == {"c1": "carol", "c2": "carol"}


@pytest.mark.parametrize("spec", ["alice", "=alice_agent", " =alice_agent", "alice=", "alice= , ,", "alice=,"])
def test_a_person_spec_without_a_name_or_a_login_is_refused_naming_it(spec: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        roles.parse_people(["ok=ok_login", spec])
    assert str(caught.value).startswith(f"--person {spec!r} is not usable; expected NAME=LOGIN[,LOGIN...]")


def test_a_login_that_is_not_a_usable_role_name_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"^login role name 'Alice' is not usable"):
        roles.parse_people(["alice=Alice"])


def test_one_login_named_for_two_people_is_refused_naming_both() -> None:
    with pytest.raises(InvalidRequest) as caught:
        roles.parse_people(["alice=shared_login", "bob=bob_agent,shared_login"])
    assert str(caught.value) == "login shared_login is named for two people (alice and bob)"


def test_the_guard_functions_are_each_named_with_the_body_postgresql_keeps() -> None:
    found = roles.functions("team_schema")
    statements = roles._guards("team_schema")
    made = [s for s in statements if s.startswith("CREATE OR REPLACE FUNCTION")]
    assert len(found) == len(made) and len(made) >= len(roles.GUARDED) + 3
    assert {f"ratchet_guard_{table}" for table in roles.GUARDED} <= set(found)
    assert {"ratchet_agent_side", "ratchet_rank", "ratchet_successes", "ratchet_person"} <= set(found)
    for name, body in found.items():
        (statement,) = [s for s in made if s.startswith(f"CREATE OR REPLACE FUNCTION {name}(")]
        # The body is exactly what lies between the dollar quotes: what pg_proc.prosrc holds.
        assert statement.endswith(f"AS $${body}$$") and "$$" not in body, name
        assert "SET search_path = team_schema, pg_temp" in statement, name  # a temporary table cannot stand in
    # Every guarded table gets its trigger, on the function of its own name.
    for table in roles.GUARDED:
        assert any(
            s.startswith("CREATE TRIGGER ratchet_guard")
            and f" ON {table} " in s
            and s.rstrip().endswith(f"EXECUTE FUNCTION ratchet_guard_{table}()")
            for s in statements
        ), table


def test_an_sqlite_record_has_no_roles_and_cannot_be_given_any(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "ratchet.db")
    try:
        assert roles.may_review(conn) is True  # an SQLite file is guarded by its permissions, not by roles
        assert roles.person(conn) is None and roles.state(conn) is None
        with pytest.raises(InvalidRequest, match=r"^database roles need a PostgreSQL record"):
            roles.install(conn, "agents", "reviewers")
    finally:
        conn.close()
