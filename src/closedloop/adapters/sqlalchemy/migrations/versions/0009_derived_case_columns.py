"""Keep what the case queries read as columns of the case row, not parsed from its body.

Each case row gains ``search_text`` (the description, a newline, the address),
``co_units`` and ``followers`` (JSON arrays: the co-unit codes, the reporters of the
duplicates merged into the case), ``supervised`` and ``merged_into``, filled here from
the stored bodies. The store writes them from the case with the row from now on.

The indexes over the body make way for indexes on the columns: on both dialects partial
indexes on ``supervised`` (over the supervised rows) and ``merged_into`` (over the
merged ones), so writing any other row costs them nothing; on PostgreSQL GIN indexes on
the ``jsonb`` columns ``co_units`` and ``followers`` and a trigram index on
``search_text``. SQLite's triggers that keep the search, co-unit and follower tables
fire on those columns and read them. No index or trigger parses a body any more.

Downgrading restores the indexes and triggers over the body and drops the columns.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

# ruff: noqa: E501  (frozen SQL statements, kept one per line)
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CASES = "closedloop_cases"
LIST = sa.JSON().with_variant(JSONB(), "postgresql")
COLUMNS = (
    ("search_text", sa.Text()),
    ("co_units", LIST),
    ("followers", LIST),
    ("supervised", sa.Boolean()),
    ("merged_into", sa.String()),
)
PARTIAL = {  # ix_closedloop_cases_<name> on both dialects, only over the rows it finds
    "supervised": {"sqlite": "supervised = 1", "postgresql": "supervised = true"},
    "merged_into": {"sqlite": "merged_into IS NOT NULL", "postgresql": "merged_into IS NOT NULL"},
}
BATCH = 500

# Frozen copies of the statements at revisions 0005 (old) and 0009 (new).
SQLITE_OLD_TRIGGERS = (
    "CREATE TRIGGER closedloop_cases_indexed AFTER INSERT ON closedloop_cases BEGIN INSERT INTO closedloop_case_text (rowid, text) VALUES (new.row_id, coalesce(json_extract(new.body, '$.description'), '') || char(10) || coalesce(json_extract(new.body, '$.location.address'), '')); INSERT INTO closedloop_case_co_units (unit, row_id) SELECT DISTINCT value, new.row_id FROM json_each(new.body, '$.co_units'); INSERT INTO closedloop_case_followers (reporter, row_id) SELECT DISTINCT json_extract(value, '$.reporter'), new.row_id FROM json_each(new.body, '$.attributes.duplicates') WHERE json_extract(value, '$.reporter') IS NOT NULL; END",
    "CREATE TRIGGER closedloop_cases_text_changed AFTER UPDATE OF body ON closedloop_cases WHEN coalesce(json_extract(old.body, '$.description'), '') || char(10) || coalesce(json_extract(old.body, '$.location.address'), '') IS NOT coalesce(json_extract(new.body, '$.description'), '') || char(10) || coalesce(json_extract(new.body, '$.location.address'), '') BEGIN DELETE FROM closedloop_case_text WHERE rowid = old.row_id; INSERT INTO closedloop_case_text (rowid, text) VALUES (new.row_id, coalesce(json_extract(new.body, '$.description'), '') || char(10) || coalesce(json_extract(new.body, '$.location.address'), '')); END",
    "CREATE TRIGGER closedloop_cases_co_units_changed AFTER UPDATE OF body ON closedloop_cases WHEN json_extract(old.body, '$.co_units') IS NOT json_extract(new.body, '$.co_units') BEGIN DELETE FROM closedloop_case_co_units WHERE row_id = old.row_id; INSERT INTO closedloop_case_co_units (unit, row_id) SELECT DISTINCT value, new.row_id FROM json_each(new.body, '$.co_units'); END",
    "CREATE TRIGGER closedloop_cases_followers_changed AFTER UPDATE OF body ON closedloop_cases WHEN json_extract(old.body, '$.attributes.duplicates') IS NOT json_extract(new.body, '$.attributes.duplicates') BEGIN DELETE FROM closedloop_case_followers WHERE row_id = old.row_id; INSERT INTO closedloop_case_followers (reporter, row_id) SELECT DISTINCT json_extract(value, '$.reporter'), new.row_id FROM json_each(new.body, '$.attributes.duplicates') WHERE json_extract(value, '$.reporter') IS NOT NULL; END",
)
SQLITE_NEW_TRIGGERS = (
    "CREATE TRIGGER closedloop_cases_indexed AFTER INSERT ON closedloop_cases BEGIN INSERT INTO closedloop_case_text (rowid, text) VALUES (new.row_id, new.search_text); INSERT INTO closedloop_case_co_units (unit, row_id) SELECT DISTINCT value, new.row_id FROM json_each(new.co_units); INSERT INTO closedloop_case_followers (reporter, row_id) SELECT DISTINCT value, new.row_id FROM json_each(new.followers); END",
    "CREATE TRIGGER closedloop_cases_search_text_changed AFTER UPDATE OF search_text ON closedloop_cases WHEN old.search_text IS NOT new.search_text BEGIN DELETE FROM closedloop_case_text WHERE rowid = old.row_id; INSERT INTO closedloop_case_text (rowid, text) VALUES (new.row_id, new.search_text); END",
    "CREATE TRIGGER closedloop_cases_co_units_changed AFTER UPDATE OF co_units ON closedloop_cases WHEN old.co_units IS NOT new.co_units BEGIN DELETE FROM closedloop_case_co_units WHERE row_id = old.row_id; INSERT INTO closedloop_case_co_units (unit, row_id) SELECT DISTINCT value, new.row_id FROM json_each(new.co_units); END",
    "CREATE TRIGGER closedloop_cases_followers_changed AFTER UPDATE OF followers ON closedloop_cases WHEN old.followers IS NOT new.followers BEGIN DELETE FROM closedloop_case_followers WHERE row_id = old.row_id; INSERT INTO closedloop_case_followers (reporter, row_id) SELECT DISTINCT value, new.row_id FROM json_each(new.followers); END",
)
TRIGGERS = (
    "indexed",
    "text_changed",
    "search_text_changed",
    "co_units_changed",
    "followers_changed",
)
SQLITE_OLD_INDEXES = {
    "ix_closedloop_cases_supervised": "json_extract(body, '$.supervised')",
    "ix_closedloop_cases_merged_into": "json_extract(body, '$.attributes.merged_into')",
}
POSTGRES_TEXT = "(coalesce(body ->> 'description', '') || ' ' || coalesce(body -> 'location' ->> 'address', ''))"
POSTGRES_OLD_INDEXES = {
    "ix_closedloop_cases_supervised_pg": "((body ->> 'supervised'))",
    "ix_closedloop_cases_merged_into_pg": "(((body -> 'attributes') ->> 'merged_into'))",
    "ix_closedloop_cases_followers": "USING gin ((((body)::jsonb -> 'attributes') -> 'duplicates'))",
    "ix_closedloop_cases_co_units": "USING gin (((body)::jsonb -> 'co_units'))",
    "ix_closedloop_cases_search_text": f"USING gin ({POSTGRES_TEXT} gin_trgm_ops)",
}
POSTGRES_NEW_INDEXES = {
    "ix_closedloop_cases_co_units": "USING gin (co_units)",
    "ix_closedloop_cases_followers": "USING gin (followers)",
    "ix_closedloop_cases_search_text": "USING gin (search_text gin_trgm_ops)",
}


def derived(body: dict[str, Any]) -> dict[str, Any]:
    """The new columns of a case stored as ``body``, as the store now writes them."""
    attributes = body.get("attributes") or {}
    location = body.get("location") or {}
    reporters = (d.get("reporter") for d in attributes.get("duplicates") or ())
    return {
        "search_text": f"{body.get('description') or ''}\n{location.get('address') or ''}",
        "co_units": list(body.get("co_units") or ()),
        "followers": list(dict.fromkeys(r for r in reporters if r is not None)),
        "supervised": bool(body.get("supervised", False)),
        "merged_into": attributes.get("merged_into"),
    }


def upgrade(schema: str | None = None) -> None:
    """Add the columns, fill them from the bodies, move indexes and triggers onto them."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, kind in COLUMNS:
        op.add_column(CASES, sa.Column(name, kind, nullable=True), schema=schema)
    _fill(schema)
    if postgres:
        _drop_indexes(POSTGRES_OLD_INDEXES, schema)
        _create_indexes(POSTGRES_NEW_INDEXES, schema)
    else:
        _replace_triggers(SQLITE_NEW_TRIGGERS)
        _drop_indexes(SQLITE_OLD_INDEXES, schema)
    for name, where in PARTIAL.items():
        op.create_index(
            f"ix_{CASES}_{name}",
            CASES,
            [name],
            schema=schema,
            sqlite_where=sa.text(where["sqlite"]),
            postgresql_where=sa.text(where["postgresql"]),
        )


def downgrade(schema: str | None = None) -> None:
    """Put the indexes and triggers over the body back and drop the columns."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in PARTIAL:
        op.drop_index(f"ix_{CASES}_{name}", table_name=CASES, schema=schema)
    if postgres:
        _drop_indexes(POSTGRES_NEW_INDEXES, schema)
        _create_indexes(POSTGRES_OLD_INDEXES, schema)
    else:
        _replace_triggers(SQLITE_OLD_TRIGGERS)
        _create_indexes(SQLITE_OLD_INDEXES, schema)
    for name, _kind in reversed(COLUMNS):
        op.drop_column(CASES, name, schema=schema)


def _fill(schema: str | None) -> None:
    """Write the new columns of every stored case, a batch of rows at a time."""
    cases = sa.table(
        CASES,
        sa.column("row_id"),
        sa.column("body", sa.JSON()),
        *(sa.column(name, kind) for name, kind in COLUMNS),
        schema=schema,
    )
    write = (
        sa.update(cases)
        .where(cases.c.row_id == sa.bindparam("r"))
        .values({name: sa.bindparam(name, type_=kind) for name, kind in COLUMNS})
    )
    connection = op.get_bind()
    last = None
    while True:
        batch = sa.select(cases.c.row_id, cases.c.body).order_by(cases.c.row_id).limit(BATCH)
        if last is not None:
            batch = batch.where(cases.c.row_id > last)
        found = connection.execute(batch).all()
        if not found:
            return
        connection.execute(write, [{"r": row_id, **derived(body)} for row_id, body in found])
        last = found[-1][0]


def _replace_triggers(triggers: tuple[str, ...]) -> None:
    # The trigger on deletes stays: it reads only the row id.
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS closedloop_cases_{name}")
    for statement in triggers:
        op.execute(statement)


def _create_indexes(indexes: dict[str, str], schema: str | None) -> None:
    table = f'"{schema}".{CASES}' if schema else CASES
    for name, columns in indexes.items():
        shape = columns if columns.startswith("USING") else f"({columns})"
        op.execute(f"CREATE INDEX {name} ON {table} {shape}")


def _drop_indexes(indexes: dict[str, str], schema: str | None) -> None:
    for name in indexes:
        op.execute(f'DROP INDEX "{schema}".{name}' if schema else f"DROP INDEX {name}")
