"""Keep how many cases there are per (lead unit, state, warning level) as cases change.

``closedloop_case_tally`` holds a row per combination that occurs, with its count,
filled here from the stored cases; ``Engine.facets`` reads it instead of scanning the
cases when its criteria allow. Triggers on ``closedloop_cases`` keep it: on SQLite they
change the tally's rows in place; on PostgreSQL they append +1/-1 rows to
``closedloop_case_tally_changes`` (inserts and deletes once per statement, from the
statement's transition table; updates once per case moved), which readers fold into
the tally. The triggers come first, so on PostgreSQL writers wait from then until the
migration commits and no case written meanwhile is missed by the count.

Downgrading drops the triggers, their functions and both tables.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

# ruff: noqa: E501  (frozen SQL statements, kept one per line)
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CASES = "closedloop_cases"
TALLY = "closedloop_case_tally"
CHANGES = "closedloop_case_tally_changes"
KEYS = ("lead_unit", "state", "warning_level")
TRIGGERS = ("added", "moved", "removed")

# Frozen copies of the statements at revision 0010; on PostgreSQL ``{q}`` is the
# quoted schema and a dot, or nothing.
SQLITE_TRIGGERS = (
    "CREATE TRIGGER closedloop_cases_tally_added AFTER INSERT ON closedloop_cases BEGIN INSERT INTO closedloop_case_tally (lead_unit, state, warning_level, n) SELECT new.lead_unit, new.state, new.warning_level, 0 WHERE NOT EXISTS (SELECT 1 FROM closedloop_case_tally WHERE state = new.state AND lead_unit IS new.lead_unit AND warning_level IS new.warning_level); UPDATE closedloop_case_tally SET n = n + 1 WHERE state = new.state AND lead_unit IS new.lead_unit AND warning_level IS new.warning_level; END",
    "CREATE TRIGGER closedloop_cases_tally_moved AFTER UPDATE OF lead_unit, state, warning_level ON closedloop_cases WHEN old.lead_unit IS NOT new.lead_unit OR old.state IS NOT new.state OR old.warning_level IS NOT new.warning_level BEGIN UPDATE closedloop_case_tally SET n = n - 1 WHERE state = old.state AND lead_unit IS old.lead_unit AND warning_level IS old.warning_level; INSERT INTO closedloop_case_tally (lead_unit, state, warning_level, n) SELECT new.lead_unit, new.state, new.warning_level, 0 WHERE NOT EXISTS (SELECT 1 FROM closedloop_case_tally WHERE state = new.state AND lead_unit IS new.lead_unit AND warning_level IS new.warning_level); UPDATE closedloop_case_tally SET n = n + 1 WHERE state = new.state AND lead_unit IS new.lead_unit AND warning_level IS new.warning_level; END",
    "CREATE TRIGGER closedloop_cases_tally_removed AFTER DELETE ON closedloop_cases BEGIN UPDATE closedloop_case_tally SET n = n - 1 WHERE state = old.state AND lead_unit IS old.lead_unit AND warning_level IS old.warning_level; END",
)
POSTGRES_DDL = (
    "CREATE FUNCTION {q}closedloop_cases_tally_added() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {q}closedloop_case_tally_changes (lead_unit, state, warning_level, n) SELECT lead_unit, state, warning_level, count(*) FROM added GROUP BY lead_unit, state, warning_level; RETURN NULL; END $$",
    "CREATE FUNCTION {q}closedloop_cases_tally_removed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {q}closedloop_case_tally_changes (lead_unit, state, warning_level, n) SELECT lead_unit, state, warning_level, -count(*) FROM removed GROUP BY lead_unit, state, warning_level; RETURN NULL; END $$",
    "CREATE FUNCTION {q}closedloop_cases_tally_moved() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {q}closedloop_case_tally_changes (lead_unit, state, warning_level, n) VALUES (OLD.lead_unit, OLD.state, OLD.warning_level, -1), (NEW.lead_unit, NEW.state, NEW.warning_level, 1); RETURN NULL; END $$",
    "CREATE TRIGGER closedloop_cases_tally_added AFTER INSERT ON {q}closedloop_cases REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION {q}closedloop_cases_tally_added()",
    "CREATE TRIGGER closedloop_cases_tally_removed AFTER DELETE ON {q}closedloop_cases REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION {q}closedloop_cases_tally_removed()",
    "CREATE TRIGGER closedloop_cases_tally_moved AFTER UPDATE OF lead_unit, state, warning_level ON {q}closedloop_cases FOR EACH ROW WHEN (OLD.lead_unit IS DISTINCT FROM NEW.lead_unit OR OLD.state IS DISTINCT FROM NEW.state OR OLD.warning_level IS DISTINCT FROM NEW.warning_level) EXECUTE FUNCTION {q}closedloop_cases_tally_moved()",
)


def upgrade(schema: str | None = None) -> None:
    """Create the tally tables and the triggers, then count the stored cases."""
    comments = {
        TALLY: "How many cases there are per (lead unit, state, warning level), kept by "
        "triggers; on PostgreSQL with the pending changes beside it.",
        CHANGES: "PostgreSQL: changes to the case tally not yet folded into it, appended by "
        "triggers (empty on SQLite).",
    }
    for name, comment in comments.items():
        op.create_table(
            name,
            sa.Column("lead_unit", sa.String(), nullable=True),
            sa.Column("state", sa.String(), nullable=False),
            sa.Column("warning_level", sa.String(), nullable=True),
            sa.Column("n", sa.Integer(), nullable=False),
            comment=comment,
            schema=schema,
        )
    op.create_index(
        f"ix_{TALLY}_state_lead_unit_warning_level",
        TALLY,
        ["state", "lead_unit", "warning_level"],
        schema=schema,
    )
    if op.get_bind().dialect.name == "postgresql":
        q = f'"{schema}".' if schema else ""
        for statement in POSTGRES_DDL:
            op.execute(statement.format(q=q))
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    table = f'"{schema}".' if schema else ""
    columns = ", ".join(KEYS)
    op.execute(
        f"INSERT INTO {table}{TALLY} ({columns}, n) SELECT {columns}, count(*) "
        f"FROM {table}{CASES} GROUP BY {columns}"
    )


def downgrade(schema: str | None = None) -> None:
    """Drop the triggers (and their functions) and the tally tables."""
    if op.get_bind().dialect.name == "postgresql":
        q = f'"{schema}".' if schema else ""
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER closedloop_cases_tally_{name} ON {q}{CASES}")
            op.execute(f"DROP FUNCTION {q}closedloop_cases_tally_{name}()")
    else:
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER closedloop_cases_tally_{name}")
    op.drop_index(f"ix_{TALLY}_state_lead_unit_warning_level", table_name=TALLY, schema=schema)
    op.drop_table(CHANGES, schema=schema)
    op.drop_table(TALLY, schema=schema)
