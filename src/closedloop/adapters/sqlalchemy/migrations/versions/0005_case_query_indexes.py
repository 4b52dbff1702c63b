"""Indexes for the case queries: urgency, reporter, channel, report time, co-units, text.

The engine's read side (``Engine.find``, ``inbox``, ``facets``) filters on these and
orders by urgency. SQLite gains an FTS5 table (trigram tokenizer) over each case's
description and address and a table of co-units, both kept by triggers and filled
here from the cases already stored; PostgreSQL gains GIN indexes (``pg_trgm`` for the
text, ``jsonb`` containment for co-units) and bytewise indexes for code prefixes.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-06
"""

# ruff: noqa: E501  (frozen SQL statements, kept one per line)
from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLE = "closedloop_cases"
URGENCY = (
    "(CASE warning_level WHEN 'red' THEN 0 WHEN 'yellow' THEN 1 WHEN 'none' THEN 2 ELSE 3 END)"
)
TEXT = (
    "(coalesce(body ->> 'description', '') || ' ' || "
    "coalesce(body -> 'location' ->> 'address', ''))"
)

# Frozen copies of the statements at this revision.
SQLITE_DDL = (
    "CREATE VIRTUAL TABLE closedloop_case_text USING fts5(text, tokenize='trigram')",
    "CREATE TABLE closedloop_case_co_units (unit TEXT NOT NULL, row_id INTEGER NOT NULL, PRIMARY KEY (unit, row_id)) WITHOUT ROWID",
    "CREATE INDEX ix_closedloop_case_co_units_row_id ON closedloop_case_co_units (row_id)",
    "CREATE TABLE closedloop_case_followers (reporter TEXT NOT NULL, row_id INTEGER NOT NULL, PRIMARY KEY (reporter, row_id)) WITHOUT ROWID",
    "CREATE INDEX ix_closedloop_case_followers_row_id ON closedloop_case_followers (row_id)",
    "CREATE TRIGGER closedloop_cases_indexed AFTER INSERT ON closedloop_cases BEGIN INSERT INTO closedloop_case_text (rowid, text) VALUES (new.row_id, coalesce(json_extract(new.body, '$.description'), '') || char(10) || coalesce(json_extract(new.body, '$.location.address'), '')); INSERT INTO closedloop_case_co_units (unit, row_id) SELECT DISTINCT value, new.row_id FROM json_each(new.body, '$.co_units'); INSERT INTO closedloop_case_followers (reporter, row_id) SELECT DISTINCT json_extract(value, '$.reporter'), new.row_id FROM json_each(new.body, '$.attributes.duplicates') WHERE json_extract(value, '$.reporter') IS NOT NULL; END",
    "CREATE TRIGGER closedloop_cases_text_changed AFTER UPDATE OF body ON closedloop_cases WHEN coalesce(json_extract(old.body, '$.description'), '') || char(10) || coalesce(json_extract(old.body, '$.location.address'), '') IS NOT coalesce(json_extract(new.body, '$.description'), '') || char(10) || coalesce(json_extract(new.body, '$.location.address'), '') BEGIN DELETE FROM closedloop_case_text WHERE rowid = old.row_id; INSERT INTO closedloop_case_text (rowid, text) VALUES (new.row_id, coalesce(json_extract(new.body, '$.description'), '') || char(10) || coalesce(json_extract(new.body, '$.location.address'), '')); END",
    "CREATE TRIGGER closedloop_cases_co_units_changed AFTER UPDATE OF body ON closedloop_cases WHEN json_extract(old.body, '$.co_units') IS NOT json_extract(new.body, '$.co_units') BEGIN DELETE FROM closedloop_case_co_units WHERE row_id = old.row_id; INSERT INTO closedloop_case_co_units (unit, row_id) SELECT DISTINCT value, new.row_id FROM json_each(new.body, '$.co_units'); END",
    "CREATE TRIGGER closedloop_cases_unindexed AFTER DELETE ON closedloop_cases BEGIN DELETE FROM closedloop_case_text WHERE rowid = old.row_id; DELETE FROM closedloop_case_co_units WHERE row_id = old.row_id; DELETE FROM closedloop_case_followers WHERE row_id = old.row_id; END",
    "CREATE TRIGGER closedloop_cases_followers_changed AFTER UPDATE OF body ON closedloop_cases WHEN json_extract(old.body, '$.attributes.duplicates') IS NOT json_extract(new.body, '$.attributes.duplicates') BEGIN DELETE FROM closedloop_case_followers WHERE row_id = old.row_id; INSERT INTO closedloop_case_followers (reporter, row_id) SELECT DISTINCT json_extract(value, '$.reporter'), new.row_id FROM json_each(new.body, '$.attributes.duplicates') WHERE json_extract(value, '$.reporter') IS NOT NULL; END",
)
SQLITE_FILL = (
    "INSERT INTO closedloop_case_text (rowid, text) SELECT row_id, coalesce(json_extract(closedloop_cases.body, '$.description'), '') || char(10) || coalesce(json_extract(closedloop_cases.body, '$.location.address'), '') FROM closedloop_cases",
    "INSERT INTO closedloop_case_co_units (unit, row_id) SELECT DISTINCT j.value, c.row_id FROM closedloop_cases AS c, json_each(c.body, '$.co_units') AS j",
    "INSERT INTO closedloop_case_followers (reporter, row_id) SELECT DISTINCT json_extract(j.value, '$.reporter'), c.row_id FROM closedloop_cases AS c, json_each(c.body, '$.attributes.duplicates') AS j WHERE json_extract(j.value, '$.reporter') IS NOT NULL",
)
SQLITE_DROP = (
    "DROP TRIGGER closedloop_cases_followers_changed",
    "DROP TRIGGER closedloop_cases_unindexed",
    "DROP TRIGGER closedloop_cases_co_units_changed",
    "DROP TRIGGER closedloop_cases_text_changed",
    "DROP TRIGGER closedloop_cases_indexed",
    "DROP TABLE closedloop_case_followers",
    "DROP TABLE closedloop_case_co_units",
    "DROP TABLE closedloop_case_text",
)

PLAIN = {
    "ix_closedloop_cases_reporter_id": "reporter_id",
    "ix_closedloop_cases_channel": "channel",
    "ix_closedloop_cases_reported_at_row_id": "reported_at, row_id",
    "ix_closedloop_cases_urgency": f"{URGENCY}, due_at, row_id",
    "ix_closedloop_cases_lead_unit_urgency": f"lead_unit, {URGENCY}, due_at, row_id",
}
SQLITE_ONLY = {
    "ix_closedloop_cases_supervised": "json_extract(body, '$.supervised')",
    "ix_closedloop_cases_merged_into": "json_extract(body, '$.attributes.merged_into')",
}
POSTGRES_ONLY = {
    "ix_closedloop_cases_supervised_pg": "(body ->> 'supervised')",
    "ix_closedloop_cases_merged_into_pg": "((body -> 'attributes') ->> 'merged_into')",
    "ix_closedloop_cases_followers": "USING gin ((((body)::jsonb -> 'attributes') -> 'duplicates'))",
    "ix_closedloop_cases_area_c": '(area COLLATE "C")',
    "ix_closedloop_cases_category_c": '(category COLLATE "C")',
    "ix_closedloop_cases_co_units": "USING gin (((body)::jsonb -> 'co_units'))",
    "ix_closedloop_cases_search_text": f"USING gin ({TEXT} gin_trgm_ops)",
}


def _indexes(postgres: bool) -> dict[str, str]:
    return {**PLAIN, **(POSTGRES_ONLY if postgres else SQLITE_ONLY)}


def upgrade(schema: str | None = None) -> None:
    """Add the query indexes (and on SQLite the search and co-unit tables, filled)."""
    postgres = op.get_bind().dialect.name == "postgresql"
    table = f'"{schema}".{TABLE}' if schema else TABLE
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, columns in _indexes(postgres).items():
        shape = columns if columns.startswith("USING") else f"({columns})"
        op.execute(f"CREATE INDEX {name} ON {table} {shape}")
    if not postgres:
        for statement in (*SQLITE_DDL, *SQLITE_FILL):
            op.execute(statement)


def downgrade(schema: str | None = None) -> None:
    """Drop them again."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if not postgres:
        for statement in SQLITE_DROP:
            op.execute(statement)
    for name in _indexes(postgres):
        op.execute(f'DROP INDEX "{schema}".{name}' if schema else f"DROP INDEX {name}")
