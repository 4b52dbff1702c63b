"""The case queries host applications need, as SQL over the indexed case columns.

Pages are keyset pages: the cursor is the last row's key, so a page costs the same
at the millionth case as at the first, and rows added meanwhile do not shift pages.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, func, or_, select

from closedloop.adapters.sqlalchemy import rows
from closedloop.adapters.sqlalchemy.schema import cases
from closedloop.engine.case_query import CaseFilter, CasePage, bad_cursor, check_page


def conditions(where: CaseFilter) -> list[ColumnElement[bool]]:
    """The SQL conditions selecting what ``where`` selects."""
    found: list[ColumnElement[bool]] = []
    if where.states is not None:
        found.append(cases.c.state.in_(where.states))
    for column, wanted in (
        (cases.c.lead_unit, where.lead_unit),
        (cases.c.category, where.category),
        (cases.c.area, where.area),
        (cases.c.warning_level, where.warning_level),
    ):
        if wanted is not None:
            found.append(column == wanted)
    if where.overdue_at is not None:
        # As closedloop.engine.case_query.is_overdue: a paused clock counts as it stood.
        found.append(cases.c.due_at <= where.overdue_at)
        found.append(or_(cases.c.paused_at.is_(None), cases.c.due_at <= cases.c.paused_at))
    return found


def find_cases(
    connection: Connection, where: CaseFilter, *, after: str | None, limit: int
) -> CasePage:
    """One page of matching cases, oldest first (see ``SQLStore.find_cases``)."""
    check_page(limit)
    query = select(cases.c.row_id, cases.c.body, cases.c.version).where(*conditions(where))
    if after is not None:
        query = query.where(cases.c.row_id > _row_id(after))
    found = connection.execute(query.order_by(cases.c.row_id).limit(limit + 1)).all()
    page = found[:limit]
    more = len(found) > limit
    return CasePage(
        tuple(rows.case_from_row(row.body, row.version) for row in page),
        str(page[-1].row_id) if more else None,
    )


def count_cases(connection: Connection, where: CaseFilter) -> int:
    """How many cases match ``where``."""
    counted = connection.execute(
        select(func.count()).select_from(cases).where(*conditions(where))
    ).scalar()
    return int(counted or 0)


def _row_id(cursor: str) -> int:
    if not (cursor.isascii() and cursor.isdigit()):
        raise bad_cursor()
    return int(cursor)
