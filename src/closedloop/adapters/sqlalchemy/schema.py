"""The tables of the SQL store: plain columns and JSON, readable with plain SQL.

Nothing is pickled. The columns a host filters on (state, unit, category, area,
warning level, deadlines) are real columns; the full case body is kept beside them as
JSON so a case reads back exactly. Every table name starts with ``closedloop_`` so the
store can share a database with the host application's own tables, and the Alembic
version table is ours too, apart from the host's ``alembic_version``.

Tables are defined without a schema; :class:`~closedloop.adapters.sqlalchemy.SQLStore`
maps them into ``schema=`` at execution time (``schema_translate_map``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    event,
    literal_column,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import DDL
from sqlalchemy.types import TypeDecorator

from closedloop.engine.clock import utc

HEAD_REVISION = "0013"
"""The Alembic revision that :data:`metadata` corresponds to.

A store that creates its schema itself records this revision, so a later
:func:`~closedloop.adapters.sqlalchemy.upgrade` starts from here. A test checks that
it is the head of the shipped migrations.
"""

VERSION_TABLE = "closedloop_alembic_version"
"""Where Alembic records the schema revision (the host's own ``alembic_version`` is left
alone)."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Instant(TypeDecorator[datetime]):
    """A timezone-aware instant: rejects naive values, always reads back in UTC.

    PostgreSQL keeps ``timestamptz``. SQLite has no time type, so the value is stored
    as UTC text that sorts in time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """UTC for the database; naive values raise ``NaiveDatetime``."""
        if value is None:
            return None
        value = utc(value, "a stored instant")
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """The stored instant, aware, in UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


JSONList = JSON().with_variant(JSONB(), "postgresql")
"""A JSON array of strings: ``jsonb`` on PostgreSQL (GIN indexes find an element)."""

# SQLite only autoincrements an INTEGER PRIMARY KEY; elsewhere a 64-bit key.
RowId = BigInteger().with_variant(Integer(), "sqlite")

cases = Table(
    "closedloop_cases",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("id", String, nullable=False, unique=True),
    Column("workflow", String, nullable=False),
    Column("state", String, nullable=False, index=True),
    Column("category", String, index=True),
    Column("area", String, index=True),
    Column("lead_unit", String, index=True),
    Column("urgency", String),
    Column("version", Integer, nullable=False),
    Column("reporter_id", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("reported_at", Instant, nullable=False),
    Column("updated_at", Instant, nullable=False),
    # The running clock (NULL once final), for the warning and overdue queries.
    Column("clock", String),
    Column("warning_level", String, index=True),
    Column("due_at", Instant, index=True),
    Column("paused_at", Instant),
    Column("body", JSON, nullable=False),
    # The case's timers (revision 0008): the earliest due instant of the timers the
    # engine derives from the case (NULL: none), and a ticker's lease on the case.
    Column("next_timer_at", Instant),
    Column("tick_owner", String),
    Column("tick_expires_at", Instant),
    Column("tick_token", String),
    # What the case queries read beside the columns above (revision 0009), written from
    # the case with the row so no index or trigger parses the body: the text a ``text``
    # criterion searches, the co-units, the reporters of the duplicates merged into the
    # case, the supervision flag and the master a duplicate was merged into.
    Column("search_text", Text),
    Column("co_units", JSONList),
    Column("followers", JSONList),
    Column("supervised", Boolean),
    Column("merged_into", String),
    comment="One row per case; body holds the whole case as JSON, without contact data.",
)

# A tick claims the cases whose earliest timer is due, earliest first: the cost follows
# the number due, not the number open. The row id breaks ties in the index's own order.
Index("ix_closedloop_cases_next_timer_at", cases.c.next_timer_at, cases.c.row_id)
# Whether the store holds the cases of one workflow only (revision 0013): the least and
# the greatest name, read from the index's two ends; the case tally answers only then.
Index("ix_closedloop_cases_workflow", cases.c.workflow)

# -- what the case queries read (revision 0005) ------------------------------------------

# Index expressions hold their constants as SQL text, not bound parameters: a query
# matches an expression index only when it spells the expression the same way.
urgency_rank: ColumnElement[int] = literal_column(
    "(CASE warning_level WHEN 'red' THEN 0 WHEN 'yellow' THEN 1 WHEN 'none' THEN 2 ELSE 3 END)"
)
"""The urgent order's first key: red, yellow, no warning, then final cases (no clock)."""

Index(
    "ix_closedloop_cases_reporter_urgency",
    cases.c.reporter_id,
    urgency_rank,
    cases.c.due_at,
    cases.c.row_id,
)
Index("ix_closedloop_cases_channel", cases.c.channel)
Index("ix_closedloop_cases_reported_at_row_id", cases.c.reported_at, cases.c.row_id)
# The cases changed in a window (revision 0011): the ``updated_*`` criteria.
Index("ix_closedloop_cases_updated_at_row_id", cases.c.updated_at, cases.c.row_id)
Index("ix_closedloop_cases_urgency", urgency_rank, cases.c.due_at, cases.c.row_id)
Index(
    "ix_closedloop_cases_lead_unit_urgency",
    cases.c.lead_unit,
    urgency_rank,
    cases.c.due_at,
    cases.c.row_id,
)
# Partial: a row that is neither supervised nor merged has no entry, so writing it (with
# these columns unchanged) costs no index work; a query for either finds its few rows.
Index(
    "ix_closedloop_cases_supervised",
    cases.c.supervised,
    sqlite_where=cases.c.supervised == true(),
    postgresql_where=cases.c.supervised == true(),
)
Index(
    "ix_closedloop_cases_merged_into",
    cases.c.merged_into,
    sqlite_where=cases.c.merged_into.is_not(None),
    postgresql_where=cases.c.merged_into.is_not(None),
)
# Prefixes of codes compare bytewise ("D1." <= code < "D1/"), whatever the collation.
Index("ix_closedloop_cases_area_c", cases.c.area.collate("C")).ddl_if(dialect="postgresql")
Index("ix_closedloop_cases_category_c", cases.c.category.collate("C")).ddl_if(dialect="postgresql")
# PostgreSQL finds a co-unit or a follower by jsonb containment, and searches the text
# by trigrams; SQLite keeps tables for the three, filled by triggers (below).
Index("ix_closedloop_cases_co_units", cases.c.co_units, postgresql_using="gin").ddl_if(
    dialect="postgresql"
)
Index("ix_closedloop_cases_followers", cases.c.followers, postgresql_using="gin").ddl_if(
    dialect="postgresql"
)
Index(
    "ix_closedloop_cases_search_text",
    cases.c.search_text,
    postgresql_using="gin",
    postgresql_ops={"search_text": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")

EXPRESSION_INDEXES = {
    "sqlite": (
        "ix_closedloop_cases_urgency",
        "ix_closedloop_cases_lead_unit_urgency",
        "ix_closedloop_cases_reporter_urgency",
    ),
    "postgresql": (
        "ix_closedloop_cases_urgency",
        "ix_closedloop_cases_lead_unit_urgency",
        "ix_closedloop_cases_reporter_urgency",
        "ix_closedloop_cases_followers",
        "ix_closedloop_cases_area_c",
        "ix_closedloop_cases_category_c",
        "ix_closedloop_cases_co_units",
        "ix_closedloop_cases_search_text",
    ),
}
"""The indexes over expressions or of one dialect only, per dialect (Alembic cannot
compare them)."""

CASE_TEXT = "closedloop_case_text"
"""SQLite: the FTS5 table (trigram tokenizer) over each case's description and address,
kept by triggers; its rowid is the case's ``row_id``."""

CASE_CO_UNITS = "closedloop_case_co_units"
"""SQLite: one row per (co-unit, case ``row_id``), kept by triggers."""

CASE_FOLLOWERS = "closedloop_case_followers"
"""SQLite: one row per (reporter of a duplicate, master case ``row_id``), kept by triggers."""

_INDEX_ROW = (
    f"INSERT INTO {CASE_TEXT} (rowid, text) VALUES (new.row_id, new.search_text); "
    f"INSERT INTO {CASE_CO_UNITS} (unit, row_id) SELECT DISTINCT value, new.row_id "
    "FROM json_each(new.co_units); "
    f"INSERT INTO {CASE_FOLLOWERS} (reporter, row_id) SELECT DISTINCT value, new.row_id "
    "FROM json_each(new.followers); "
)


def _when_changed(name: str, body: str) -> str:
    """A trigger that runs ``body`` when an UPDATE changes the column ``name``."""
    return (
        f"CREATE TRIGGER closedloop_cases_{name}_changed AFTER UPDATE OF {name} "
        f"ON closedloop_cases WHEN old.{name} IS NOT new.{name} BEGIN {body}END"
    )


SQLITE_TRIGGERS = (
    f"CREATE TRIGGER closedloop_cases_indexed AFTER INSERT ON closedloop_cases "
    f"BEGIN {_INDEX_ROW}END",
    _when_changed(
        "search_text",
        f"DELETE FROM {CASE_TEXT} WHERE rowid = old.row_id; "
        f"INSERT INTO {CASE_TEXT} (rowid, text) VALUES (new.row_id, new.search_text); ",
    ),
    _when_changed(
        "co_units",
        f"DELETE FROM {CASE_CO_UNITS} WHERE row_id = old.row_id; "
        f"INSERT INTO {CASE_CO_UNITS} (unit, row_id) SELECT DISTINCT value, new.row_id "
        "FROM json_each(new.co_units); ",
    ),
    _when_changed(
        "followers",
        f"DELETE FROM {CASE_FOLLOWERS} WHERE row_id = old.row_id; "
        f"INSERT INTO {CASE_FOLLOWERS} (reporter, row_id) SELECT DISTINCT value, new.row_id "
        "FROM json_each(new.followers); ",
    ),
    f"CREATE TRIGGER closedloop_cases_unindexed AFTER DELETE ON closedloop_cases BEGIN "
    f"DELETE FROM {CASE_TEXT} WHERE rowid = old.row_id; "
    f"DELETE FROM {CASE_CO_UNITS} WHERE row_id = old.row_id; "
    f"DELETE FROM {CASE_FOLLOWERS} WHERE row_id = old.row_id; END",
)
"""SQLite: the triggers that keep the search, co-unit and follower tables (revision
0009: they read the row's columns, not its body)."""

SQLITE_QUERY_DDL = (
    f"CREATE VIRTUAL TABLE {CASE_TEXT} USING fts5(text, tokenize='trigram')",
    f"CREATE TABLE {CASE_CO_UNITS} (unit TEXT NOT NULL, row_id INTEGER NOT NULL, "
    "PRIMARY KEY (unit, row_id)) WITHOUT ROWID",
    f"CREATE INDEX ix_{CASE_CO_UNITS}_row_id ON {CASE_CO_UNITS} (row_id)",
    f"CREATE TABLE {CASE_FOLLOWERS} (reporter TEXT NOT NULL, row_id INTEGER NOT NULL, "
    "PRIMARY KEY (reporter, row_id)) WITHOUT ROWID",
    f"CREATE INDEX ix_{CASE_FOLLOWERS}_row_id ON {CASE_FOLLOWERS} (row_id)",
    *SQLITE_TRIGGERS,
)
"""SQLite: the search, co-unit and follower tables and the triggers that keep them from
the row's own columns, created after ``closedloop_cases`` (outside :data:`metadata`:
Alembic cannot describe them)."""

AUXILIARY_PREFIXES = (CASE_TEXT, CASE_CO_UNITS, CASE_FOLLOWERS)
"""Names of the SQLite tables outside :data:`metadata` (FTS5 adds its own beside them)."""


def _ddl(statement: str, dialect: str) -> DDL:
    return DDL(statement).execute_if(dialect=dialect)  # type: ignore[no-untyped-call]


for _statement in SQLITE_QUERY_DDL:
    event.listen(cases, "after_create", _ddl(_statement, "sqlite"))
event.listen(
    metadata, "before_create", _ddl("CREATE EXTENSION IF NOT EXISTS pg_trgm", "postgresql")
)


# -- counts kept as cases change (revision 0010) ---------------------------------------

case_tally = Table(
    "closedloop_case_tally",
    metadata,
    Column("lead_unit", String),
    Column("state", String, nullable=False),
    Column("warning_level", String),
    Column("n", Integer, nullable=False),
    Index(None, "state", "lead_unit", "warning_level"),
    comment="How many cases there are per (lead unit, state, warning level), kept by "
    "triggers; on PostgreSQL with the pending changes beside it.",
)

case_tally_changes = Table(
    "closedloop_case_tally_changes",
    metadata,
    Column("lead_unit", String),
    Column("state", String, nullable=False),
    Column("warning_level", String),
    Column("n", Integer, nullable=False),
    comment="PostgreSQL: changes to the case tally not yet folded into it, appended by "
    "triggers (empty on SQLite).",
)

TALLY_KEYS = ("lead_unit", "state", "warning_level")
"""The case columns the tally counts by (a row per combination that occurs)."""


def _tally_sqlite_add(sign: str, row: str) -> str:
    """SQLite: add ``sign`` 1 to the tally row of the case values ``row`` (old or new)."""
    match = (
        f"state = {row}.state AND lead_unit IS {row}.lead_unit "
        f"AND warning_level IS {row}.warning_level"
    )
    missing = (
        "INSERT INTO closedloop_case_tally (lead_unit, state, warning_level, n) "
        f"SELECT {row}.lead_unit, {row}.state, {row}.warning_level, 0 "
        f"WHERE NOT EXISTS (SELECT 1 FROM closedloop_case_tally WHERE {match}); "
    )
    update = f"UPDATE closedloop_case_tally SET n = n {sign} 1 WHERE {match}; "
    return update if sign == "-" else missing + update


_TALLY_MOVED_WHEN = " OR ".join(f"old.{k} IS NOT new.{k}" for k in TALLY_KEYS)

SQLITE_TALLY_TRIGGERS = (
    "CREATE TRIGGER closedloop_cases_tally_added AFTER INSERT ON closedloop_cases "
    f"BEGIN {_tally_sqlite_add('+', 'new')}END",
    "CREATE TRIGGER closedloop_cases_tally_moved AFTER UPDATE OF lead_unit, state, "
    f"warning_level ON closedloop_cases WHEN {_TALLY_MOVED_WHEN} "
    f"BEGIN {_tally_sqlite_add('-', 'old')}{_tally_sqlite_add('+', 'new')}END",
    "CREATE TRIGGER closedloop_cases_tally_removed AFTER DELETE ON closedloop_cases "
    f"BEGIN {_tally_sqlite_add('-', 'old')}END",
)
"""SQLite: the triggers that keep ``closedloop_case_tally`` (one writer at a time, so
they change its rows in place)."""


def postgres_tally_ddl(schema: str | None) -> tuple[str, ...]:
    """PostgreSQL: the functions and triggers that append to
    ``closedloop_case_tally_changes``, in ``schema`` (the default one when ``None``).

    Inserts and deletes are counted once per statement from its transition table (a
    bulk insert appends a row per combination, not per case); an update that moves a
    case appends -1 for its old combination and +1 for its new one. No trigger updates
    a row another transaction may update too, so writers never wait for each other here.
    """
    q = f'"{schema}".' if schema else ""
    columns = ", ".join(TALLY_KEYS)
    moved_when = " OR ".join(f"OLD.{k} IS DISTINCT FROM NEW.{k}" for k in TALLY_KEYS)
    return (
        *(
            f"CREATE FUNCTION {q}closedloop_cases_tally_{name}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {q}closedloop_case_tally_changes "
            f"({columns}, n) SELECT {columns}, {sign}count(*) FROM {name} "
            f"GROUP BY {columns}; RETURN NULL; END $$"
            for name, sign in (("added", ""), ("removed", "-"))
        ),
        f"CREATE FUNCTION {q}closedloop_cases_tally_moved() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {q}closedloop_case_tally_changes "
        f"({columns}, n) VALUES (OLD.lead_unit, OLD.state, OLD.warning_level, -1), "
        "(NEW.lead_unit, NEW.state, NEW.warning_level, 1); RETURN NULL; END $$",
        f"CREATE TRIGGER closedloop_cases_tally_added AFTER INSERT ON {q}closedloop_cases "
        "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {q}closedloop_cases_tally_added()",
        f"CREATE TRIGGER closedloop_cases_tally_removed AFTER DELETE ON {q}closedloop_cases "
        "REFERENCING OLD TABLE AS removed FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {q}closedloop_cases_tally_removed()",
        f"CREATE TRIGGER closedloop_cases_tally_moved AFTER UPDATE OF {columns} "
        f"ON {q}closedloop_cases FOR EACH ROW WHEN ({moved_when}) "
        f"EXECUTE FUNCTION {q}closedloop_cases_tally_moved()",
    )


def tally_ddl(dialect: str, schema: str | None) -> tuple[str, ...]:
    """The triggers (and PostgreSQL functions) keeping the case tally, for a new schema."""
    return postgres_tally_ddl(schema) if dialect == "postgresql" else SQLITE_TALLY_TRIGGERS


case_events = Table(
    "closedloop_case_events",
    metadata,
    Column("case_id", String, ForeignKey(cases.c.id), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", Instant, nullable=False),
    Column("actor", String, nullable=False),
    Column("role", String),
    Column("trigger", String, nullable=False),
    Column("from_state", String),
    Column("to_state", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("reason", Text),
    Column("changes", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("sealed", JSON),
    PrimaryKeyConstraint("case_id", "seq"),
    comment="Append-only audit trail; each hash covers the event and the previous hash.",
)
# The events recorded in a window, in time order (revision 0012): the Open311 updates.
Index("ix_closedloop_case_events_at", case_events.c.at, case_events.c.case_id, case_events.c.seq)

reporter_contacts = Table(
    "closedloop_reporter_contacts",
    metadata,
    Column("case_id", String, ForeignKey(cases.c.id), primary_key=True),
    Column("name", Text),
    Column("phone", Text),
    Column("email", Text),
    comment="Personal data of reporters, apart from cases so it can be masked and purged.",
)

idempotency_keys = Table(
    "closedloop_idempotency_keys",
    metadata,
    Column("key", String, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("case_id", String, nullable=False, index=True),
    Column("version", Integer, nullable=False),
    comment="The first result of each command sent with an idempotency key.",
)

outbox = Table(
    "closedloop_outbox",
    metadata,
    Column("id", String, primary_key=True),
    Column("case_id", String, index=True),
    Column("event", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("recipient", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Instant, nullable=False),
    Column("last_error", Text),
    Column("created_at", Instant, nullable=False),
    Column("lease_owner", String),
    Column("lease_expires_at", Instant),
    Column("lease_token", String),
    Index(None, "status", "next_attempt_at"),
    comment="Notifications written in the transaction of the change that caused them.",
)

checkpoints = Table(
    "closedloop_checkpoints",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("made_at", Instant, nullable=False),
    Column("previous", String(64), nullable=False),
    Column("heads", JSON, nullable=False),
    Column("signature", String(64), nullable=False),
    comment="Signed audit heads (HMAC-SHA256 under a key the database does not hold).",
)

case_anchors = Table(
    "closedloop_case_anchors",
    metadata,
    Column("case_id", String, ForeignKey(cases.c.id), primary_key=True),
    Column("number", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    comment="Each checkpointed case's latest checkpoint and the sequence number it signed.",
)

version_table = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    # Alembic's own shape and constraint name, so Alembic takes over this table as is.
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)
"""Alembic's version table, kept out of :data:`metadata` (Alembic compares it apart)."""
