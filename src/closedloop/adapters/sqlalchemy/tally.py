"""Case counts kept as cases change: what ``facets`` reads instead of scanning the cases.

Triggers on ``closedloop_cases`` (``SQLITE_TALLY_TRIGGERS`` and ``postgres_tally_ddl``
in :mod:`closedloop.adapters.sqlalchemy.schema`) keep how many cases there are per
(lead unit, state, warning level): a few thousand rows at most, whatever the number of
cases. A count whose criteria are only among these three columns (and
whose viewer sees every case) reads them; any other count scans the cases.

SQLite has one writer at a time, so its triggers change the tally's rows in place.
On PostgreSQL they append +1/-1 rows to ``closedloop_case_tally_changes`` instead, so
concurrent commands never wait on a shared row; a count sums the tally and the pending
changes, and a reader that finds :data:`FOLD_AT` changes or more folds them into the
tally afterwards (:func:`fold`, then :func:`vacuum`), one reader at a time.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import REGCLASS

from closedloop.adapters.sqlalchemy.schema import (
    TALLY_KEYS,
    case_tally,
    case_tally_changes,
    cases,
)
from closedloop.engine.case_query import CaseFilter, Facet

FOLD_AT = 1000
"""PostgreSQL: how many pending change rows make a reader fold them into the tally."""

SHRINK_ABOVE = 1 << 20
"""PostgreSQL: the size in bytes of the changes table above which a vacuum after a
fold gives its empty pages back (see :func:`vacuum`)."""

_FOLD_LOCK = 0x636C7461 << 8  # "clta": one folder at a time (beside provisioning's key)
_PENDING = select(func.count()).select_from(
    select(case_tally_changes.c.n).limit(FOLD_AT).subquery()
)


def answers(where: CaseFilter) -> bool:
    """Whether the tally may count what ``where`` selects: only states, lead unit and
    warning level are given (no turn, no sight, no other criterion), besides the
    workflow (see :func:`counts`)."""
    kept = replace(where, states=None, lead_unit=None, warning_level=None, workflow=None)
    return kept == CaseFilter()


_WORKFLOWS = (
    select(func.min(cases.c.workflow)).scalar_subquery(),
    select(func.max(cases.c.workflow)).scalar_subquery(),
)
"""The least and the greatest workflow name of the stored cases (the two ends of their
index): the same name when the store holds one workflow's cases."""


def counts(
    connection: Connection, where: CaseFilter, by: Facet
) -> tuple[dict[str | None, int], bool] | None:
    """How many cases ``where`` selects per value of ``by``, from the tally (see
    :func:`answers`), values without cases left out as a ``GROUP BY`` leaves them; and
    whether :data:`FOLD_AT` or more changes are pending (PostgreSQL; SQLite: never).

    The tally counts the cases of every workflow together: ``None`` when ``where``
    names a workflow and the store holds cases of another one too (the caller counts
    the cases then). The same statement reads the stored workflows' least and greatest
    name, and on PostgreSQL counts the pending changes (up to :data:`FOLD_AT`).
    """
    rows = case_tally
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        parts = [select(*(t.c[k] for k in (*TALLY_KEYS, "n"))) for t in (rows, case_tally_changes)]
        rows = union_all(*parts).subquery("tallied")  # type: ignore[assignment]
    found: list[ColumnElement[bool]] = []
    if where.states is not None:
        found.append(rows.c.state.in_(where.states))
    if where.lead_unit is not None:
        found.append(rows.c.lead_unit == where.lead_unit)
    if where.warning_level is not None:
        found.append(rows.c.warning_level == where.warning_level)
    value, total = rows.c[by], func.sum(rows.c.n)
    query = select(value, cast(total, Integer)).where(*found).group_by(value).having(total > 0)
    if where.workflow is not None:
        query = query.add_columns(*_WORKFLOWS)
    if postgres:
        query = query.add_columns(_PENDING.scalar_subquery())
    result = connection.execute(query).all()
    mixed = where.workflow is not None and result and result[0][2:4] != (where.workflow,) * 2
    if mixed:
        return None  # another workflow's cases are counted in the tally too
    tallied = {row[0]: int(row[1]) for row in result}
    if not postgres:
        return tallied, False
    due = result[0][-1] >= FOLD_AT if result else fold_due(connection)
    return tallied, due


def fold_due(connection: Connection) -> bool:
    """PostgreSQL: whether :data:`FOLD_AT` or more changes are pending (SQLite: never)."""
    if connection.dialect.name != "postgresql":
        return False
    return (connection.execute(_PENDING).scalar() or 0) >= FOLD_AT


def fold(connection: Connection) -> bool:
    """PostgreSQL: move the pending changes into the tally; ``False`` if another
    transaction is folding (this one then leaves them).

    One statement deletes the changes it sees and the tally's rows and inserts their
    sums per combination. Changes other transactions append meanwhile are not among
    the rows it sees (nor locked by anyone), so writers never wait for a fold.
    """
    if not connection.execute(select(func.pg_try_advisory_xact_lock(_FOLD_LOCK))).scalar():
        return False
    keys = [case_tally.c[k] for k in TALLY_KEYS]
    moved = delete(case_tally_changes).returning(*case_tally_changes.c).cte("moved")
    kept = delete(case_tally).returning(*case_tally.c).cte("kept")
    both = union_all(select(*moved.c), select(*kept.c)).subquery("both")
    summed = (
        select(*(both.c[k] for k in TALLY_KEYS), func.sum(both.c.n))
        .group_by(*(both.c[k] for k in TALLY_KEYS))
        .having(func.sum(both.c.n) != 0)
    )
    statement = insert(case_tally).from_select([*keys, case_tally.c.n], summed)
    connection.execute(statement.add_cte(moved).add_cte(kept))
    return True


def vacuum(engine: Engine, schema: str | None) -> None:
    """PostgreSQL: clear the rows a fold deleted, so reads stop scanning them before
    autovacuum comes round.

    A read scans every page of the changes, empty or not. While folds keep up the table
    stays a few pages long: the vacuum is skipped when another holds the table, and
    leaves the file's length alone (giving pages back takes a lock that makes writers
    wait for a moment). When a bulk write left it longer than :data:`SHRINK_ABOVE`
    bytes (a million cases updated by hand append two million changes), the vacuum
    gives the empty pages back, or every count would go on reading them; it then waits
    for an autovacuum of the table, which yields to it within ``deadlock_timeout``.
    """
    table = f'"{schema}".{case_tally_changes.name}' if schema else case_tally_changes.name
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        size = connection.execute(
            select(func.pg_relation_size(cast(literal(table), REGCLASS)))
        ).scalar()
        if (size or 0) > SHRINK_ABOVE:  # waits for an autovacuum of the table to yield
            connection.exec_driver_sql(f"VACUUM {table}")
        else:
            connection.exec_driver_sql(f"VACUUM (SKIP_LOCKED, TRUNCATE false) {table}")
