"""Database roles on a shared PostgreSQL record: an agent side that cannot vouch for itself.

A team's `ratchet serve` runs beside the agent, as the agent's OS user, with credentials the agent's
code can read. Without roles, that code could connect with them and write what only a human may: an
approval, a pin, a level. `install` sets up two group roles so the database itself refuses it:

- the **agent role** (the servers and hooks that act for agents) reads everything and records what an
  agent's calls do: actions, their outcomes, the samples and demotions their evidence makes. It cannot
  insert a review (no privilege on `reviews`), cannot move an action to `approved` or `approving`
  nor write any of an action's review or resolution columns, cannot raise a class's level (in
  `class_state`, nor by a `promote`, `pin`, `unpin`, `freeze`, `unfreeze` or `policy` transition),
  cannot pin, and cannot add a success to the window of a class below `autonomous`. What a decision
  rests on it cannot edit: an action's content (`CONTENT`) is immutable once inserted, its status moves
  only along the lifecycle, its arguments change only as it settles for good; a level move must start
  from the level of record and be appended at the end of the record; a sample is its action's evidence
  class's, in the current epoch, with an id the database chooses (column privileges), and only ever turns
  from a success into a failure. A verification check's result is appended only (no UPDATE, no DELETE, no
  chosen id), for an action its own person's logins recorded, `each` while that action settles and
  `task_end` once its task (or its session's open task) has ended, a pass only with exit code 0 and no
  timeout. A task's goal, scope, non-goals, budget and start are fixed once it starts (column privileges),
  its count of actions only grows, it gets a summary only as it ends and an ended task is never reopened
  or rewritten, and a session has one open task. An undo (chained as a review) it never writes.
  Everything it may write only lowers trust, or is the record of a call.
- who recorded an action is the database's answer, for every role: `recorded_by` is set from the login
  that inserted the row (`session_user`), mapped to a person by `ratchet_people` (`--person`), so a row
  never names its own recorder; a machine carries out only the drafts its own person's logins recorded
  (engine/origin.py).
- the **reviewer role** (the human's CLI and review page) writes anything a human's decision writes.

The guards are row triggers owned by the schema's owner, which the agent role cannot alter or drop;
they act only when the session's user is a member of the agent role and not of the reviewer role
(a superuser, a member of both, counts as a reviewer). Each refusal names what was refused and where
it is done instead.

What follows for the agent side (engine/): it detects that it may not record a human's answer
(`may_review`), so a `confirm` decision is queued as a draft for a reviewer, `review_drafts` offers
nothing, and its server leaves approved drafts to a reviewer-side `ratchet approve --pending` on the
origin machine. Evidence a human gives is written on the reviewer side, where the approval is made.

Which of these are column privileges and which are guards: INSERT on `actions` and `samples` is granted
on the columns Ratchet's agent side writes (never `id`, nor an action's review columns), UPDATE on
`samples` on `ok` only, INSERT on `checks` and `tasks` without their ids (and a task without its end or
count), UPDATE on `tasks` on `ended_at`, `summary` and `actions_used` only, nothing on `undos`; everything
else is a guard, because Ratchet's own UPDATE of an outcome names the review columns (unchanged) and a
column privilege would refuse it.

What this does not hold: the agent side witnesses the calls it runs, so with its credentials an
agent can still hide a failure of an autonomous class, record a call it never made, or fill in an
outcome that is not what happened; it runs the verification checks, so it can record, for its own actions
at the right moment, a verdict it never witnessed, or end a task without running its checks. It cannot
turn any of that into more trust: promotions below `autonomous` come only from a human's approvals.

`ratchet db check` (`state`) compares the guard functions installed with this Ratchet's (their bodies and
search path, `stale_functions`) and each trigger with its function, so guards an older Ratchet installed
are reported until `ratchet db roles` is run again.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from ratchet.errors import InvalidRequest
from ratchet.policy.levels import Level
from ratchet.record import lifecycle, postgres
from ratchet.record.integrity import LEVEL_KINDS
from ratchet.record.lifecycle import Status

DEFAULT_AGENT = "ratchet_agent"
DEFAULT_REVIEWER = "ratchet_reviewer"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
EACH, TASK_END = "each", "task_end"  # the phases a check runs in (record/checks.py)
_FUNCTION = re.compile(r"CREATE OR REPLACE FUNCTION (\w+)\(.*? AS \$\$(.*)\$\$\Z", re.S)

# Column privileges where the agent's code names its columns: it never chooses an action's or a sample's id
# (an id decides the order a window is read in), and it changes nothing of a sample but `ok`.
AGENT_COLUMNS = {
    "actions": (
        "INSERT (session_id, created_at, tool, target, class, rule, policy, args_json, preview, fingerprint, "
        "intent, confidence, class_level, level, route, triggers_json, flagged, status, pid, subject_json, "
        "level_transition, task_id, evidence_class, hidden_lines, error, finished_at, recorded_by, origin_host, "
        "origin_workspace, origin_repo), UPDATE"
    ),
    "samples": "INSERT (class, action_id, ok, epoch), UPDATE (ok)",
    # A check's result is appended, never rewritten: no UPDATE, no chosen id.
    "checks": "INSERT (action_id, at, phase, argv_json, passed, exit_code, timed_out, duration_s, tail)",
    # A task's goal, scope, non-goals and budget are fixed once it starts; it is ended, and counts its actions.
    "tasks": "INSERT (session_id, goal, scope_json, non_goals_json, budget_json, started_at), "
    "UPDATE (ended_at, summary, actions_used)",
}
# What the agent role may write, table by table (it reads every table). `reviews` is absent on purpose.
AGENT_WRITES = {
    "sessions": "INSERT",
    "actions": AGENT_COLUMNS["actions"],
    "class_state": "INSERT, UPDATE",
    "transitions": "INSERT",
    "samples": AGENT_COLUMNS["samples"],
    "streaks": "INSERT, UPDATE",
    "seen": "INSERT",
    "tasks": AGENT_COLUMNS["tasks"],
    "checks": AGENT_COLUMNS["checks"],
}
# `undos` is absent too: an undo is a person's (or a check's, made on the reviewer side), chained as a review.
GUARDED = ("class_state", "transitions", "samples", "actions", "checks", "tasks")  # trigger ratchet_guard_<table>
# The transitions an agent's evidence makes, all of them downward or level (checked by rank below); a
# `policy` move (a reviewed change of the policy files) is the reviewer side's.
AGENT_KINDS = ("demote", "complaint", "tamper-detected")
# Of those, the ones that move a class's earned level (record/integrity.py LEVEL_KINDS): each must start
# from the level of record.
AGENT_LEVEL_KINDS = ("demote", "complaint")
# An action's content: what a decision rests on, immutable under the agent role once inserted.
CONTENT = (
    "id", "session_id", "created_at", "tool", "target", "class", "rule", "policy", "preview", "fingerprint",
    "intent", "confidence", "class_level", "level", "route", "triggers_json", "flagged", "subject_json",
    "level_transition", "task_id", "evidence_class", "hidden_lines", "recorded_by", "origin_host",
    "origin_workspace", "origin_repo", "evidence",
)  # fmt: skip


def _rank(column: str) -> str:
    return f"ratchet_rank({column})"


def _guards(schema: str) -> list[str]:
    """The trigger functions and triggers, in the schema the record lives in."""
    path = f"SET search_path = {schema}, pg_temp"  # a temporary table cannot stand in for the record's
    top = Level.AUTONOMOUS.label
    kinds = ", ".join(f"'{k}'" for k in AGENT_KINDS)
    approval = f"'{Status.APPROVED.value}', '{Status.APPROVING.value}'"  # a human's approval, and its claim
    ranks = " ".join(f"WHEN '{level.label}' THEN {int(level)}" for level in Level)  # an unknown level ranks highest
    refuse = "RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = "
    level_kinds = ", ".join(f"'{k}'" for k in AGENT_LEVEL_KINDS)
    all_level_kinds = ", ".join(f"'{k}'" for k in LEVEL_KINDS)
    # Where an agent-side row may be born, and the moves it may make: the lifecycle's, less a human's approval.
    born = ", ".join(f"'{st.value}'" for st in sorted(lifecycle.BORN))
    moves = ", ".join(
        f"('{a.value}', '{b.value}')"
        for a, targets in sorted(lifecycle.MOVES.items())
        for b in sorted(targets)
        if b not in (Status.APPROVED, Status.APPROVING)
    )
    final = ", ".join(f"'{st.value}'" for st in sorted(lifecycle.FINAL))
    in_flight = ", ".join(f"'{st.value}'" for st in lifecycle.IN_FLIGHT)
    new_content = ", ".join(f"NEW.{c}" for c in CONTENT)
    old_content = ", ".join(f"OLD.{c}" for c in CONTENT)
    return [
        f"""CREATE OR REPLACE FUNCTION ratchet_agent_side() RETURNS boolean LANGUAGE sql STABLE {path} AS $$
            SELECT EXISTS (SELECT 1 FROM ratchet_roles r WHERE pg_has_role(current_user, r.agent, 'MEMBER')
                AND NOT pg_has_role(current_user, r.reviewer, 'MEMBER'))
        $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_rank(level text) RETURNS int LANGUAGE sql IMMUTABLE {path} AS $$
            SELECT CASE level {ranks} ELSE {len(Level)} END
        $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_person(login text) RETURNS text LANGUAGE sql STABLE {path} AS $$
            SELECT coalesce((SELECT person FROM ratchet_people WHERE ratchet_people.login = $1), $1)
        $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_successes(w text) RETURNS bigint LANGUAGE sql IMMUTABLE {path} AS $$
            SELECT count(*) FROM json_array_elements(coalesce(w, '[]')::json) e
            WHERE (e ->> 1) IN ('1', 'true')
        $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_guard_class_state() RETURNS trigger LANGUAGE plpgsql {path} AS $$
        BEGIN
            IF NOT ratchet_agent_side() THEN RETURN NEW; END IF;
            IF TG_OP = 'INSERT' THEN
                -- an upsert of a class that exists is judged by the UPDATE it becomes
                IF EXISTS (SELECT 1 FROM class_state WHERE name = NEW.name) THEN RETURN NEW; END IF;
                IF NEW.pinned IS NOT NULL OR {_rank("NEW.level")} > {_rank("NEW.policy_start")} THEN
                    {refuse} format('ratchet: the agent role cannot create class %s above its policy start '
                        'or pinned; a reviewer-side ratchet command records it', NEW.name);
                END IF;
                RETURN NEW;
            END IF;
            IF {_rank("NEW.level")} > {_rank("OLD.level")} THEN
                {refuse} format('ratchet: the agent role cannot raise class %s from %s to %s; promotions are '
                    'recorded on the reviewer side (a ratchet command run with the reviewer role)',
                    NEW.name, OLD.level, NEW.level);
            END IF;
            IF NEW.pinned IS DISTINCT FROM OLD.pinned THEN
                {refuse} format('ratchet: the agent role cannot pin or unpin class %s', NEW.name);
            END IF;
            IF {_rank("NEW.policy_start")} > {_rank("OLD.policy_start")} THEN
                {refuse} format('ratchet: the agent role cannot raise the start of class %s to %s; a '
                    'reviewer-side ratchet command records the policy change', NEW.name, NEW.policy_start);
            END IF;
            IF OLD.level <> '{top}' AND {_rank("NEW.level")} = {_rank("OLD.level")}
                    AND ratchet_successes(NEW.window_json) > ratchet_successes(OLD.window_json) THEN
                {refuse} format('ratchet: the agent role cannot add a success to the window of class %s '
                    'at %s; below {top} only a human''s approval is a success', NEW.name, OLD.level);
            END IF;
            RETURN NEW;
        END $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_guard_transitions() RETURNS trigger LANGUAGE plpgsql {path} AS $$
        DECLARE
            recorded text;
        BEGIN
            IF NOT ratchet_agent_side() THEN RETURN NEW; END IF;
            IF NEW.kind NOT IN ({kinds}) OR {_rank("NEW.to_level")} > {_rank("NEW.from_level")} THEN
                {refuse} format('ratchet: the agent role cannot record a %s transition of %s from %s to %s; '
                    'only a reviewer-side ratchet command can', NEW.kind, NEW.class, NEW.from_level, NEW.to_level);
            END IF;
            -- appended at the end of the chain only: an id is the row's place in the history
            IF NEW.id <= coalesce((SELECT max(id) FROM transitions), 0) THEN
                {refuse} format('ratchet: the agent role cannot insert transition %s before the end of the '
                    'record', NEW.id);
            END IF;
            IF NEW.kind IN ({level_kinds}) THEN
                -- a level is never taken from the row: it continues from the level of record
                SELECT to_level INTO recorded FROM transitions WHERE class = NEW.class AND kind IN ({all_level_kinds})
                    ORDER BY id DESC LIMIT 1;
                IF recorded IS NULL THEN
                    SELECT level INTO recorded FROM class_state WHERE name = NEW.class;
                END IF;
                IF recorded IS NULL OR NEW.from_level <> recorded THEN
                    {refuse} format('ratchet: the agent role cannot record a %s of %s from %s: the class stands '
                        'at %s by the record', NEW.kind, NEW.class, NEW.from_level, coalesce(recorded, 'no level'));
                END IF;
            END IF;
            RETURN NEW;
        END $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_guard_samples() RETURNS trigger LANGUAGE plpgsql {path} AS $$
        DECLARE
            judged text;
        BEGIN
            IF NOT ratchet_agent_side() THEN RETURN NEW; END IF;
            IF TG_OP = 'UPDATE' THEN
                IF (NEW.id, NEW.class, NEW.action_id, NEW.epoch) IS DISTINCT FROM (OLD.id, OLD.class, OLD.action_id,
                        OLD.epoch) OR NEW.ok > OLD.ok THEN
                    {refuse} format('ratchet: the agent role can only turn sample %s into a failure', OLD.id);
                END IF;
                RETURN NEW;
            END IF;
            -- a sample is evidence for the class its action was judged by, at the level of record
            SELECT coalesce(evidence_class, class) INTO judged FROM actions WHERE id = NEW.action_id;
            IF judged IS NULL OR judged <> NEW.class THEN
                {refuse} format('ratchet: the agent role cannot record a sample of action %s for class %s; it is '
                    'evidence for %s', NEW.action_id, NEW.class, coalesce(judged, 'no recorded action'));
            END IF;
            IF NEW.epoch <> coalesce((SELECT id FROM transitions WHERE class = NEW.class AND kind IN ({all_level_kinds})
                    ORDER BY id DESC LIMIT 1), 0) THEN
                {refuse} format('ratchet: the agent role cannot record a sample of class %s outside its current '
                    'level', NEW.class);
            END IF;
            IF NEW.ok <> 0 AND coalesce((SELECT level FROM class_state WHERE name = NEW.class), 'blocked') <> '{top}'
                    THEN
                {refuse} format('ratchet: the agent role cannot record a success for class %s below {top}; '
                    'only a human''s approval is one', NEW.class);
            END IF;
            RETURN NEW;
        END $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_guard_actions() RETURNS trigger LANGUAGE plpgsql {path} AS $$
        BEGIN
            IF TG_OP = 'INSERT' AND EXISTS (SELECT 1 FROM ratchet_roles) THEN
                -- who recorded it is the database's answer (the inserting login's person), never the row's
                NEW.recorded_by := ratchet_person(session_user::text);
            END IF;
            IF NOT ratchet_agent_side() THEN RETURN NEW; END IF;
            IF TG_OP = 'INSERT' THEN
                IF NEW.status NOT IN ({born}) OR NEW.approval_json IS NOT NULL
                        OR NEW.reviewed_by IS NOT NULL OR NEW.resolved_at IS NOT NULL THEN
                    {refuse} format('ratchet: the agent role cannot record an action as %s, approved or answered',
                        NEW.status);
                END IF;
                RETURN NEW;
            END IF;
            IF ({new_content}) IS DISTINCT FROM ({old_content}) THEN
                {refuse} format('ratchet: the agent role cannot change what action %s is (its tool, target, '
                    'arguments, preview, class, origin or who recorded it) once it is recorded', NEW.id);
            END IF;
            IF NEW.status IS DISTINCT FROM OLD.status AND NOT (OLD.status, NEW.status) IN ({moves}) THEN
                {refuse} format('ratchet: the agent role cannot move action %s from %s to %s', NEW.id, OLD.status,
                    NEW.status);
            END IF;
            IF NEW.args_json IS DISTINCT FROM OLD.args_json
                    AND NOT (NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ({final})) THEN
                {refuse} format('ratchet: the agent role cannot change the arguments of action %s; they are '
                    'reduced only as it settles for good', NEW.id);
            END IF;
            IF NEW.sample IS DISTINCT FROM OLD.sample AND OLD.sample IS NOT NULL AND NEW.sample <> 'failure' THEN
                {refuse} format('ratchet: the agent role cannot relabel the %s sample of action %s', OLD.sample,
                    NEW.id);
            END IF;
            IF NEW.status IN ({approval}) AND NEW.status IS DISTINCT FROM OLD.status THEN
                {refuse} format('ratchet: the agent role cannot approve action %s; a human approves it with '
                    'ratchet approve (the reviewer role)', NEW.id);
            END IF;
            IF NEW.approval_json IS DISTINCT FROM OLD.approval_json OR NEW.reviewed_by IS DISTINCT FROM OLD.reviewed_by
                    OR NEW.reviewer IS DISTINCT FROM OLD.reviewer OR NEW.review_note IS DISTINCT FROM OLD.review_note
                    OR NEW.review_seconds IS DISTINCT FROM OLD.review_seconds
                    OR NEW.review_channel IS DISTINCT FROM OLD.review_channel OR NEW.edited IS DISTINCT FROM OLD.edited
                    OR NEW.resolution IS DISTINCT FROM OLD.resolution
                    OR NEW.resolution_note IS DISTINCT FROM OLD.resolution_note
                    OR NEW.resolved_at IS DISTINCT FROM OLD.resolved_at
                    OR NEW.answered_at IS DISTINCT FROM OLD.answered_at THEN
                {refuse} format('ratchet: the agent role cannot write a human''s review or answer of action %s',
                    NEW.id);
            END IF;
            RETURN NEW;
        END $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_guard_checks() RETURNS trigger LANGUAGE plpgsql {path} AS $$
        DECLARE
            act record;
        BEGIN
            IF NOT ratchet_agent_side() THEN RETURN NEW; END IF;
            SELECT status, recorded_by, task_id, session_id INTO act FROM actions WHERE id = NEW.action_id;
            IF NOT FOUND OR act.recorded_by IS DISTINCT FROM ratchet_person(session_user::text) THEN
                {refuse} format('ratchet: the agent role cannot record a check of action %s: its own person''s '
                    'logins did not record that action', NEW.action_id);
            END IF;
            IF NEW.passed <> 0 AND (NEW.exit_code IS DISTINCT FROM 0 OR NEW.timed_out <> 0) THEN
                {refuse} format('ratchet: the agent role cannot record a check of action %s as passed with exit '
                    'code %s%s', NEW.action_id, coalesce(NEW.exit_code::text, 'none'),
                    CASE WHEN NEW.timed_out <> 0 THEN ' after a timeout' ELSE '' END);
            END IF;
            IF NEW.phase = '{EACH}' THEN
                -- right after the action ran, in the unit of work that settles it: never added later
                IF act.status NOT IN ({in_flight}) THEN
                    {refuse} format('ratchet: the agent role cannot add a check to action %s once it is %s; '
                        'checks are recorded as it settles', NEW.action_id, act.status);
                END IF;
            ELSIF NEW.phase = '{TASK_END}' THEN
                -- at its task's end (or its session's, for an action no task held): never before it
                IF act.status <> '{Status.EXECUTED.value}' OR (act.task_id IS NOT NULL AND EXISTS (SELECT 1 FROM tasks
                        WHERE id = act.task_id AND ended_at IS NULL)) OR (act.task_id IS NULL AND EXISTS (
                        SELECT 1 FROM tasks WHERE session_id = act.session_id AND ended_at IS NULL)) THEN
                    {refuse} format('ratchet: the agent role cannot record a task-end check of action %s before '
                        'its task has ended', NEW.action_id);
                END IF;
            ELSE
                {refuse} format('ratchet: the agent role cannot record a check in phase %s', NEW.phase);
            END IF;
            RETURN NEW;
        END $$""",
        f"""CREATE OR REPLACE FUNCTION ratchet_guard_tasks() RETURNS trigger LANGUAGE plpgsql {path} AS $$
        BEGIN
            IF NOT ratchet_agent_side() THEN RETURN NEW; END IF;
            IF TG_OP = 'INSERT' THEN
                IF EXISTS (SELECT 1 FROM tasks WHERE session_id = NEW.session_id AND ended_at IS NULL) THEN
                    {refuse} format('ratchet: the agent role cannot start a second open task in session %s',
                        NEW.session_id);
                END IF;
                RETURN NEW;
            END IF;
            IF NEW.actions_used < OLD.actions_used THEN
                {refuse} format('ratchet: the agent role cannot lower the actions task %s used', OLD.id);
            END IF;
            IF OLD.ended_at IS NOT NULL AND (NEW.ended_at IS DISTINCT FROM OLD.ended_at
                    OR NEW.summary IS DISTINCT FROM OLD.summary) THEN
                {refuse} format('ratchet: the agent role cannot reopen or rewrite task %s once it ended', OLD.id);
            END IF;
            IF OLD.ended_at IS NULL AND NEW.ended_at IS NULL AND NEW.summary IS DISTINCT FROM OLD.summary THEN
                {refuse} format('ratchet: the agent role writes the summary of task %s only as it ends', OLD.id);
            END IF;
            RETURN NEW;
        END $$""",
        *(
            statement
            for table in GUARDED
            for statement in (
                f"DROP TRIGGER IF EXISTS ratchet_guard ON {table}",
                f"CREATE TRIGGER ratchet_guard BEFORE INSERT OR UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION ratchet_guard_{table}()",
            )
        ),
    ]


@dataclass(frozen=True)
class Installed:
    """What `install` set up."""

    agent: str
    reviewer: str
    schema: str
    created: tuple[str, ...]  # the roles it had to create (as NOLOGIN groups)
    agent_writes: dict[str, str]
    people: dict[str, str]  # login -> person


def check_name(name: str, what: str) -> str:
    """A role name Ratchet will put into GRANT statements: lower-case letters, digits and `_` only."""
    if not _NAME.fullmatch(name):  # not `match`: its `$` would let a trailing newline through
        raise InvalidRequest(
            f"{what} role name {name!r} is not usable; expected lower-case letters, digits and _ "
            "(starting with a letter or _), at most 63 characters"
        )
    return name


def parse_people(specs: list[str] | None) -> dict[str, str]:
    """`--person alice=agent_alice,human_alice` (repeatable) as {login: person}; InvalidRequest names a bad one."""
    out: dict[str, str] = {}
    for spec in specs or []:
        person, sep, logins = spec.partition("=")
        names = [n.strip() for n in logins.split(",") if n.strip()]
        if not sep or not person.strip() or not names:
            raise InvalidRequest(
                f"--person {spec!r} is not usable; expected NAME=LOGIN[,LOGIN...] (a person and their database "
                "logins, e.g. alice=alice_agent,alice_review)"
            )
        for login in names:
            check_name(login, "login")
            if out.get(login, person.strip()) != person.strip():
                raise InvalidRequest(f"login {login} is named for two people ({out[login]} and {person.strip()})")
            out[login] = person.strip()
    return out


def install(conn: sqlite3.Connection, agent: str, reviewer: str, people: dict[str, str] | None = None) -> Installed:
    """Create the two group roles when missing, grant each what it may do, and install the guards.

    Run as the record's owner (who ran its migrations), in one transaction; running it again, as after
    an upgrade that added tables, brings the grants up to date. People's login roles are then made
    members: `GRANT ratchet_agent TO alice_agent`. `people` ({login: person}) says which logins are one
    person's (their agent's and their own): an action records the person of the login that inserted it, and
    a machine carries out only the drafts its own person's logins recorded. A login not named is its own
    person. Given again, it replaces the list; None keeps it.
    """
    if not isinstance(conn, postgres.Connection):
        raise InvalidRequest(
            "database roles need a PostgreSQL record (--db postgresql://...); an SQLite file is guarded by "
            "its file permissions: keep it where the agent's user cannot write"
        )
    check_name(agent, "agent")
    check_name(reviewer, "reviewer")
    if agent == reviewer:
        raise InvalidRequest("the agent and reviewer roles must differ; an agent must not review its own work")
    schema = str(conn.execute("SELECT current_schema()").fetchone()[0])
    check_name(schema, "schema")
    created = []
    for name in (agent, reviewer):
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (name,)).fetchone() is None:
            conn.execute(f"CREATE ROLE {name} NOLOGIN")
            created.append(name)
    conn.execute("CREATE TABLE IF NOT EXISTS ratchet_roles (agent TEXT NOT NULL, reviewer TEXT NOT NULL)")
    conn.execute("DELETE FROM ratchet_roles")
    conn.execute("INSERT INTO ratchet_roles (agent, reviewer) VALUES (?, ?)", (agent, reviewer))
    conn.execute("CREATE TABLE IF NOT EXISTS ratchet_people (login TEXT PRIMARY KEY, person TEXT NOT NULL)")
    if people is not None:
        conn.execute("DELETE FROM ratchet_people")
        for login, person in sorted(people.items()):
            conn.execute("INSERT INTO ratchet_people (login, person) VALUES (?, ?)", (login, person))
    tables = [
        str(r[0])
        for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = ? ORDER BY tablename", (schema,))
    ]
    for name in (agent, reviewer):
        conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {name}")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {name}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {name}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {name}")
    for table, privileges in AGENT_WRITES.items():
        conn.execute(f"GRANT {privileges} ON {table} TO {agent}")
    for table in tables:
        if table not in ("schema_version", "ratchet_roles", "ratchet_people"):
            conn.execute(f"GRANT INSERT, UPDATE, DELETE ON {table} TO {reviewer}")
    # Nobody but the owner creates objects in the record's schema (PostgreSQL before 15 let everyone).
    conn.execute(f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC")
    for statement in _guards(schema):
        conn.raw.execute(statement)  # no parameters: `%` and `?` are the SQL's own
    people_now = {str(r[0]): str(r[1]) for r in conn.execute("SELECT login, person FROM ratchet_people").fetchall()}
    return Installed(agent, reviewer, schema, tuple(created), dict(AGENT_WRITES), people_now)


def functions(schema: str) -> dict[str, str]:
    """The guard functions this Ratchet installs: {name: body}, as PostgreSQL keeps a body (`prosrc`)."""
    out = {}
    for statement in _guards(schema):
        found = _FUNCTION.match(statement)
        if found:
            out[found[1]] = found[2]
    return out


def stale_functions(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """The guard functions in the record's schema that are not this Ratchet's (an older Ratchet's, or changed by
    hand), or missing: (name, "missing" or "out of date")."""
    schema = str(conn.execute("SELECT current_schema()").fetchone()[0])
    setting = f"search_path={schema}, pg_temp"
    installed = {
        str(r[0]): (str(r[1]), list(r[2] or []))
        for r in conn.execute(
            "SELECT proname, prosrc, proconfig FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
            "AND left(proname, 8) = 'ratchet_'"
        ).fetchall()
    }
    out = []
    for name, body in functions(schema).items():
        if name not in installed:
            out.append((name, "missing"))
        elif installed[name] != (body, [setting]):
            out.append((name, "out of date"))
    return out


def person(conn: sqlite3.Connection) -> str | None:
    """Who this connection's login is in the record, when roles are set up (record/roles.py `--person`): the
    identity its actions and answers are recorded under. None on SQLite or without roles."""
    if not isinstance(conn, postgres.Connection):
        return None
    if conn.execute("SELECT to_regclass('ratchet_people') IS NULL").fetchone()[0]:
        return None
    return str(conn.execute("SELECT ratchet_person(session_user::text)").fetchone()[0])


def may_review(conn: sqlite3.Connection) -> bool:
    """Whether this connection may record a human's answer (False for the agent role). SQLite: always."""
    if not isinstance(conn, postgres.Connection):
        return True
    row = conn.execute("SELECT has_table_privilege(current_user, 'reviews', 'INSERT')").fetchone()
    return bool(row[0])


def state(conn: sqlite3.Connection) -> tuple[str, bool] | None:
    """What `ratchet db check` says of the roles, and whether that is sound: None on SQLite; not set up;
    or set up, with any guard missing or switched off and any table the roles were never granted (a
    migration after `db roles`), which `ratchet db roles` run again puts right."""
    if not isinstance(conn, postgres.Connection):
        return None
    if conn.execute("SELECT to_regclass('ratchet_roles') IS NULL").fetchone()[0]:
        return "not set up (ratchet db roles): any login that can connect may write anything", True
    agent, reviewer = conn.execute("SELECT agent, reviewer FROM ratchet_roles").fetchone()
    guarded = {
        str(r[0])
        for r in conn.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = "
            "t.tgfoid WHERE t.tgname = 'ratchet_guard' AND t.tgenabled <> 'D' AND c.relnamespace = "
            "current_schema()::regnamespace AND p.proname = 'ratchet_guard_' || c.relname"
        ).fetchall()
    }
    problems = [f"no guard on {table}" for table in GUARDED if table not in guarded]
    problems += [f"guard {name} {how}" for name, how in stale_functions(conn)]
    ungranted = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
        "AND NOT has_table_privilege(?, format('%I.%I', schemaname, tablename), 'SELECT') ORDER BY tablename",
        (agent,),
    ).fetchall()
    problems += [f"{r[0]} not granted" for r in ungranted]
    line = f"agent role {agent}, reviewer role {reviewer}"
    if problems:
        return f"{line}: {'; '.join(problems)}; run ratchet db roles again as the owner", False
    return f"{line}; guards on {', '.join(GUARDED)}", True
