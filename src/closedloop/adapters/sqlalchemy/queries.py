"""The case queries host applications need, as SQL over indexed case columns.

Pages are keyset pages: the cursor holds the last row's sort key, so a page costs the
same at the millionth case as at the first, and rows added meanwhile do not shift pages.
Each criterion reads an index: plain columns (among them the supervision flag and the
master of a duplicate, written from the case with its row), the urgent order's
expression index, and per dialect the co-units, the followers and the text search
(SQLite: tables kept by triggers from the row's columns, FTS5 with the trigram
tokenizer; PostgreSQL: GIN indexes on the columns, ``pg_trgm``). No query parses a
case's body.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    Engine,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    column,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from closedloop.adapters.sqlalchemy import leases, rows, tally
from closedloop.adapters.sqlalchemy.prepared import Prepared
from closedloop.adapters.sqlalchemy.schema import (
    CASE_CO_UNITS,
    CASE_FOLLOWERS,
    CASE_TEXT,
    cases,
    reporter_contacts,
    urgency_rank,
)
from closedloop.engine.case_query import (
    CaseFilter,
    CasePage,
    Facet,
    Order,
    Party,
    Show,
    Turn,
    bad_cursor,
    check_facet,
    check_order,
    check_page,
    decode_cursor,
    encode_cursor,
)
from closedloop.engine.clock import utc
from closedloop.engine.model import ReporterContact

_text_rows = table(CASE_TEXT, column("rowid"), column(CASE_TEXT), column("text"))
_co_unit_rows = table(CASE_CO_UNITS, column("unit"), column("row_id"))
_follower_rows = table(CASE_FOLLOWERS, column("reporter"), column("row_id"))


def conditions(where: CaseFilter, dialect: str) -> list[ColumnElement[bool]]:
    """The SQL conditions selecting what ``where`` selects."""
    found: list[ColumnElement[bool]] = []
    if where.states is not None:
        found.append(_among(cases.c.state, where.states))
    if where.workflow is not None:  # a filter on the walk of the query's own index
        found.append(_of_workflow(where.workflow, dialect))
    for field, wanted in (
        (cases.c.lead_unit, where.lead_unit),
        (cases.c.reporter_id, where.reporter),
        (cases.c.channel, where.channel),
        (cases.c.warning_level, where.warning_level),
    ):
        if wanted is not None:
            found.append(field == wanted)
    for coded, scope in ((cases.c.category, where.category), (cases.c.area, where.area)):
        if scope is not None:
            found.append(_under(coded, scope, dialect))
    if where.co_unit is not None:
        found.append(_co_units((where.co_unit,), dialect))
    if where.reported_from is not None:
        found.append(cases.c.reported_at >= where.reported_from)
    if where.reported_before is not None:
        found.append(cases.c.reported_at < where.reported_before)
    if where.updated_from is not None:
        found.append(cases.c.updated_at >= where.updated_from)
    if where.updated_before is not None:
        found.append(cases.c.updated_at < where.updated_before)
    if where.supervised is not None:
        found.append(cases.c.supervised == where.supervised)
    if where.merged_into is not None:
        found.append(cases.c.merged_into == where.merged_into)
    if where.text is not None:
        found.append(_text(where.text, dialect))
    if where.overdue_at is not None:
        # As closedloop.engine.case_query.is_overdue: a paused clock counts as it stood.
        found.append(cases.c.due_at <= where.overdue_at)
        found.append(or_(cases.c.paused_at.is_(None), cases.c.due_at <= cases.c.paused_at))
    if where.turns is not None:
        found.append(
            or_(
                false(),
                *(
                    and_(
                        _among(cases.c.state, turn.states),
                        *([] if turn.party is None else [_party(turn.party, dialect)]),
                    )
                    for turn in where.turns
                ),
            )
        )
    if where.sight is not None:
        found.append(_party(where.sight, dialect))
    return found


def select_cases(
    connection: Connection, where: CaseFilter, *, order: Order, after: str | None, limit: int
) -> CasePage:
    """One page of matching cases in ``order`` (see ``CaseQueries.select_cases``)."""
    return select_shown(connection, where, order=order, after=after, limit=limit, contacts=False)[0]


def select_shown(
    connection: Connection,
    where: CaseFilter,
    *,
    order: Order,
    after: str | None,
    limit: int,
    contacts: bool = True,
    show: Show | None = None,
) -> tuple[CasePage, dict[str, ReporterContact]]:
    """One page of matching cases in ``order``, with the stored contact data of those
    that have any (with ``contacts``), from one statement (a text search in report-time
    order: a bounded count of its matches first, then the text index's page of a rare
    text, or two per span of the time index it reads and one more when it asks the
    text index; see :func:`_search`). A store runs them in one read-only transaction:
    one snapshot.

    The statement is prepared once per filter, order, page size and kind of cursor (see
    :class:`_Pages`), and runs with the cursor's key as its parameters: a screen asked
    again, or for its next page, costs the database's work and the cases' reading.

    With ``show`` (see ``ShownCases.select_shown``), the page holds each case as
    ``show`` shows it with its contact data; a case kept from an earlier page goes to
    ``show`` as it is kept, which copies it once.
    """
    check_page(limit)
    order = check_order(order)
    shape, values = (None, {}) if after is None else _cursor(order, decode_cursor(after, order))
    found: Sequence[Any]
    keyed = _keyed_page(where, connection.dialect.name)
    if _searched_in_time(where, order):
        found = _search(connection, where, order, shape, values, limit + 1, contacts)
    else:
        statement = _pages.statement(
            connection.engine, where, order, shape, limit + 1, contacts and not keyed
        )
        found = statement.run(connection, values).all()
        if keyed:  # each turn's page in order: their union sorted here (see _keyed)
            found = _sorted(found, order)
            del found[limit + 1 :]
    page = found[:limit]
    cursor = None
    if len(found) > limit:
        last = page[-1]
        if order == "urgent":
            due = None if last.due_at is None else _read_instant(last.due_at).isoformat()
            cursor = encode_cursor(order, [last.rank, due, last.row_id])
        else:
            at = last.updated_at if order == "updated" else last.reported_at
            cursor = encode_cursor(order, [_read_instant(at).isoformat(), last.row_id])
    if keyed:
        return _held_page(connection, page, cursor, show)
    shown = tuple(rows.built_cases.cases([(row.body, row.version) for row in page]))
    held = {}
    if contacts:
        held = {
            row.id: ReporterContact(name=row.name, phone=row.phone, email=row.email)
            for row in page
            if row.contact_of is not None
        }
    if show is None:
        return CasePage(shown, cursor), held
    own = [show(case, held.get(case.id), True) for case in shown]  # the copies made above
    return CasePage(tuple(case for case in own if case is not None), cursor), {}


def _held_page(
    connection: Connection, page: Sequence[Any], cursor: str | None, show: Show | None
) -> tuple[CasePage, dict[str, ReporterContact]]:
    """The page of the row ids and versions of ``page`` (a :func:`_keyed` statement's
    rows), with their contact data: the cases built from those rows at those versions
    while kept (:meth:`rows.BuiltCases.by_row`), the other rows read, in one statement,
    and their cases built (and kept) from them. With ``show``, the cases as it shows
    them: a kept case goes to it uncopied (it makes the caller's copy)."""
    engine = connection.engine
    keys = list(map(_ROW_VERSION, page))
    hits = rows.built_cases.by_row(engine, keys, copied=show is None)
    missing = [row.row_id for row, hit in zip(page, hits, strict=True) if hit is None]
    read = {}
    if missing:
        held = reporter_contacts
        query = (
            select(cases.c.row_id, cases.c.id, cast(cases.c.body, Text).label("body"))
            .add_columns(cases.c.version, held.c.case_id.label("contact_of"))
            .add_columns(held.c.name, held.c.phone, held.c.email)
            .select_from(cases.outerjoin(held, held.c.case_id == cases.c.id))
            .where(cases.c.row_id.in_(missing))
        )
        read = {row.row_id: row for row in connection.execute(query)}
    shown: list[Any] = []
    known: dict[str, ReporterContact] = {}
    for row, hit in zip(page, hits, strict=True):
        if hit is None:
            stored = read[row.row_id]  # in the same snapshot as the page
            case = rows.built_cases.case(stored.body, stored.version, noted=False)
            contact = None
            if stored.contact_of is not None:
                contact = ReporterContact(name=stored.name, phone=stored.phone, email=stored.email)
            rows.built_cases.hold(engine, row.row_id, stored.body, stored.version, contact)
        else:
            case, contact = hit
        if show is not None:  # a kept case (hit) goes uncopied: show copies it
            seen = show(case, contact, hit is None)
            if seen is not None:
                shown.append(seen)
            continue
        shown.append(case)
        if contact is not None:
            known[case.id] = contact
    return CasePage(tuple(shown), cursor), known


FIRST_SPAN = 128
"""Cases of the report-time order a text search reads first, per row of its page (at
least :data:`SMALLEST_SPAN`): a text one case in a hundred holds fills its page there."""
SMALLEST_SPAN = 1_024
WALKED_SPANS = 4
"""The most cases of the report-time order a text search reads, in first spans: when
its matches are too rare to fill the page within them, the text index finds the rest
(at a tenth as dense as a hundredth, the text index's few matches cost less than the
walk)."""
FEW = 16
"""Matches per row of the page (:data:`SMALLEST_SPAN` // 8 at least) below which a
text is rare whatever the store's size (SQLite): the text index finds them all at once,
for less than the first span would cost (each match costs a row read and its place in a
sort, a span's case an index entry)."""


def _searched_in_time(where: CaseFilter, order: Order) -> bool:
    """Whether a page is a text search in report-time order (see :func:`_search`)."""
    if where.text is None or order == "urgent":
        return False
    return where.turns is None or len(where.turns) < 2 or not _apart(where.turns)


def _search(
    connection: Connection,
    where: CaseFilter,
    order: Order,
    shape: str | None,
    values: dict[str, Any],
    wanted: int,
    contacts: bool,
) -> list[Any]:
    """The first ``wanted`` rows of a text search in report-time order, after the cursor
    ``values`` (of ``shape``).

    The text index finds every match, and a page of them in time order costs sorting
    them all: 10,000 matches at a million cases. A text with fewer matches than
    :data:`FEW` per row of the page (on SQLite a count through the text index, stopping
    there, says so) is read that way all the same: sorting its few matches costs less than a
    first span. Any other text's search reads spans of the report-time order instead:
    the edge of a span is the case ``span`` places further along that index (one
    statement, which reads the index alone), and the span's matches are those of the
    page statement bounded by that edge (read along the same index, so they cost what
    the span holds, not what the text matches). When the span fills the page, that is
    the page; else the next span starts at its edge, sized by the matches seen so far.
    When the matches are too sparse to fill the page within :data:`WALKED_SPANS` first
    spans (or a span held none), the page statement itself, from the last edge on,
    finds the rest through the text index: its cost follows the matches, few by then.
    The pages are those one statement would give, row for row.
    """
    engine = connection.engine
    span = max(SMALLEST_SPAN, FIRST_SPAN * wanted)
    few = max(SMALLEST_SPAN // 8, FEW * wanted)
    if where.text is not None and _rare(connection, where.text, few):
        rest = _pages.statement(engine, where, order, shape, wanted, contacts)
        return list(rest.run(connection, values).all())
    walk = WALKED_SPANS * span  # cases the search may still read along the time index
    found: list[Any] = []
    while True:
        last = (
            _pages.edge(engine, order, shape).run(connection, {**values, "skip": span - 1}).first()
        )
        if last is None:  # fewer than ``span`` cases left: no bound
            break
        edge_at = _read_instant(last.reported_at)
        bound = {**values, "edge_at": edge_at, "edge_row": last.row_id}
        if connection.dialect.name == "sqlite":
            bound.update(span_low=last.low, span_high=last.high)
        bounded = _pages.statement(engine, where, order, shape, wanted, contacts, spanned=True)
        hits = bounded.run(connection, bound).all()
        found += hits
        if len(found) >= wanted:
            return found[:wanted]
        shape, values = "at", {"after_at": edge_at, "after_row": last.row_id}
        missing = wanted - len(found)
        walk -= span
        if not hits or missing * span // len(hits) > walk:
            break
        span = min(walk, max(2 * span, 2 * missing * span // len(hits)))
    rest = _pages.statement(engine, where, order, shape, wanted, contacts)
    return (found + list(rest.run(connection, values).all()))[:wanted]


def _rare(connection: Connection, needle: str, few: int) -> bool:
    """Whether the text index holds fewer than ``few`` matches of ``needle`` (whatever
    the other criteria and the cursor: they only leave fewer), counted through that
    index and stopping at ``few``. SQLite only: the FTS5 table counts its matches from
    the index alone, where ``pg_trgm`` must check each match against its row (a trigram
    is no proof of the text), and a dense text's count then costs more than its page. A
    needle too short for the trigram index is never counted (the count would read every
    case, as the search through it does)."""
    if len(needle) < 3 or connection.dialect.name != "sqlite":
        return False
    counted = _pages.few(connection.engine, needle, few).run(connection, {}).first()
    return counted is not None and counted[0] < few


class _Pages:
    """The page statements prepared for each engine, by what shapes them: the filter
    (its values are written into the statement as constants), the order, the kind of
    cursor (its key is the statement's parameters), the page size and whether contact
    data is joined. At most :attr:`KEEP` per engine; when full, the one asked for least
    recently goes, so the screens asked often keep theirs however many other filters
    pass through. Threads share them: a lock keeps the order and the bound exact (held
    for the lookups only, never while a statement is compiled).
    """

    KEEP = 256

    def __init__(self) -> None:
        self._kept: weakref.WeakKeyDictionary[Engine, OrderedDict[tuple[Any, ...], Prepared]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def statement(
        self,
        engine: Engine,
        where: CaseFilter,
        order: Order,
        shape: str | None,
        limit: int,
        contacts: bool,
        *,
        spanned: bool = False,
    ) -> Prepared:
        """The page statement; with ``spanned``, bounded by the edge of a span of the
        report-time order (parameters ``edge_at``, ``edge_row``; see :func:`_search`)."""
        key = (where, order, shape, limit, contacts, spanned)
        return self._kept_or(
            engine,
            key,
            lambda dialect: shown_query(
                where, order, shape, limit, dialect, contacts=contacts, spanned=spanned
            ),
        )

    def edge(self, engine: Engine, order: Order, shape: str | None) -> Prepared:
        """The report time and row id of the case ``skip`` places after the cursor (of
        ``shape``) in ``order``, the first one's when ``skip`` is 0: read from the
        index on (reported_at, row_id) alone."""
        return self._kept_or(
            engine, ("edge", order, shape), lambda dialect: _edge_query(order, shape, dialect)
        )

    def few(self, engine: Engine, needle: str, few: int) -> Prepared:
        """SQLite: how many matches of ``needle`` the FTS5 table holds, up to ``few``
        (the text written into the statement, as a filter's is)."""
        return self._kept_or(engine, ("few", needle, few), lambda _: _few_query(needle, few))

    def _kept_or(
        self,
        engine: Engine,
        key: tuple[Any, ...],
        build: Callable[[str], Select[Any] | CompoundSelect[tuple[object, ...]]],
    ) -> Prepared:
        with self._lock:
            kept = self._kept.get(engine)
            if kept is None:
                kept = self._kept.setdefault(engine, OrderedDict())
            found = kept.get(key)
            if found is not None:
                kept.move_to_end(key)  # asked for now: the last to go
                return found
        found = Prepared(build(engine.dialect.name), engine)
        with self._lock:
            kept[key] = found
            kept.move_to_end(key)
            while len(kept) > self.KEEP:
                kept.popitem(last=False)  # the one asked for least recently
        return found


_pages = _Pages()


def _few_query(needle: str, few: int) -> Select[int]:
    """SQLite: how many rows of the FTS5 table hold ``needle``, up to ``few``."""
    matches = select(_text_rows.c.rowid).where(_matching(needle)).limit(few)
    return select(func.count()).select_from(matches.subquery())


def _edge_query(order: Order, shape: str | None, dialect: str) -> Select[tuple[object, ...]]:
    query = select(cases.c.reported_at, cases.c.row_id)
    if shape is not None:
        query = query.where(_key_after(order))
    skip = bindparam("skip", type_=Integer())
    edge = _ordered(query, order).limit(1).offset(skip)
    if dialect != "sqlite":
        return edge
    # SQLite: the lowest and highest row id of the span too, which bound the matches the
    # FTS5 table gives (rows are mostly added in report-time order: a span's row ids lie
    # close together, and the text index skips its matches outside them).
    span = _ordered(query.with_only_columns(cases.c.row_id), order).limit(skip + 1).subquery()
    ids = select(func.min(span.c.row_id).label("low"), func.max(span.c.row_id).label("high"))
    edged, bounds = edge.subquery(), ids.subquery()
    return select(edged.c.reported_at, edged.c.row_id, bounds.c.low, bounds.c.high)


def shown_query(
    where: CaseFilter,
    order: Order,
    shape: str | None,
    limit: int,
    dialect: str,
    *,
    contacts: bool,
    spanned: bool = False,
) -> Select[tuple[object, ...]] | CompoundSelect[tuple[object, ...]]:
    """The statement of one page of ``limit`` rows on ``dialect``, its cases' contact
    data joined with ``contacts``; after a cursor of ``shape`` (see :func:`_cursor`),
    whose key it takes as parameters, or from the first case when ``shape`` is ``None``.

    A filter with several turns (an inbox: the unit's cases, the member's own reports
    awaiting confirmation) reads each turn's page from its own index in order, stopping
    at ``limit`` rows, and sorts the union of those pages: an OR of the turns would read
    every case of them and sort them all. On SQLite the statement reads the row id,
    version and sort keys of each case of the page, no body and no contact data (a sort
    copies every value it carries, and most of a page's cases are kept already, see
    :func:`_held_page`).
    """
    turns = where.turns
    if turns is not None and len(turns) > 1 and _apart(turns):
        each = [replace(where, turns=(turn,)) for turn in turns]
        if dialect == "sqlite":
            return _keyed(each, order, shape, limit)
        pages = (_page(one, order, shape, limit, dialect).subquery() for one in each)
        page = union_all(*(select(one) for one in pages)).subquery("page")
    elif contacts:
        page = _page(where, order, shape, limit, dialect, spanned=spanned).subquery("page")
    else:
        return _page(where, order, shape, limit, dialect, spanned=spanned)
    query = select(*page.c)
    if contacts:
        held = reporter_contacts
        query = query.add_columns(
            held.c.case_id.label("contact_of"), held.c.name, held.c.phone, held.c.email
        ).select_from(page.outerjoin(held, held.c.case_id == page.c.id))
    return query.order_by(*_keys(page, order)).limit(limit)


def _keyed(
    each: Sequence[CaseFilter], order: Order, shape: str | None, limit: int
) -> CompoundSelect[tuple[object, ...]]:
    """SQLite: the pages of ``each`` (one turn each) in ``order``, the row ids, versions
    and sort keys alone (see :func:`shown_query`), one after the other: the caller
    sorts their union (:data:`_sort_keys`). SQLite would merge them sorted only after
    sorting each page again (it does not know a subquery's rows come in order), which
    costs more than sorting a few rows' keys in Python."""
    pages = (_page(one, order, shape, limit, "sqlite", narrow=True).subquery() for one in each)
    return union_all(*(select(one) for one in pages))


def _sorted(found: Sequence[Any], order: Order) -> list[Any]:
    """The rows of a :func:`_keyed` statement (row id, version, then the order's
    columns) in ``order``, as SQLite sorts them: its instants are the stored text, in
    order as text, and a missing due instant (NULL) comes first. Only final cases (rank
    3) have none, all of them; should a rank hold both, the rows are sorted again with
    the missing instants first."""
    if order != "urgent":
        return sorted(found, key=_BY_INSTANT, reverse=order == "newest")
    try:
        return sorted(found, key=_BY_URGENCY)
    except TypeError:  # a missing due instant beside a due one in the same rank
        return sorted(found, key=lambda row: (row[2], row[3] is not None, row[3], row[0]))


_ROW_VERSION = itemgetter(0, 1)  # of a _keyed statement's row
_BY_URGENCY = itemgetter(2, 3, 0)  # rank, due instant, row id
_BY_INSTANT = itemgetter(2, 0)  # report time or last change, row id


_order_columns: dict[Order, tuple[ColumnElement[Any], ...]] = {
    "urgent": (urgency_rank.label("rank"), cases.c.due_at),
    "oldest": (cases.c.reported_at,),
    "newest": (cases.c.reported_at,),
    "updated": (cases.c.updated_at,),
}
"""The columns a page's order sorts on, before the row id."""


def _keys(page: Any, order: Order) -> list[ColumnElement[Any]]:
    """The sort keys of ``order`` on the columns of ``page`` (a page's subquery)."""
    if order == "urgent":
        return [page.c.rank, page.c.due_at, page.c.row_id]
    if order == "newest":
        return [page.c.reported_at.desc(), page.c.row_id.desc()]
    if order == "updated":
        return [page.c.updated_at, page.c.row_id]
    return [page.c.reported_at, page.c.row_id]


def _keyed_page(where: CaseFilter, dialect: str) -> bool:
    """Whether the page statement of ``where`` reads row ids and versions alone (see
    :func:`shown_query`)."""
    turns = where.turns
    return dialect == "sqlite" and turns is not None and len(turns) > 1 and _apart(turns)


def _apart(turns: Sequence[Turn]) -> bool:
    """Whether no case can be in two of ``turns`` (their states differ): then the
    union of their pages holds each case once."""
    states = [state for turn in turns for state in turn.states]
    return len(states) == len(set(states))


def page_query(
    where: CaseFilter, order: Order, after: str | None, limit: int, dialect: str
) -> Select[tuple[object, ...]]:
    """The statement of one page (``limit`` rows after ``after``) on ``dialect``."""
    if after is None:
        return _page(where, order, None, limit, dialect)
    shape, values = _cursor(order, decode_cursor(after, order))
    return _page(where, order, shape, limit, dialect).params(values)


def _page(
    where: CaseFilter,
    order: Order,
    shape: str | None,
    limit: int,
    dialect: str,
    *,
    spanned: bool = False,
    narrow: bool = False,
) -> Select[tuple[object, ...]]:
    # PostgreSQL: the body as its stored text, as SQLite gives it, to be decoded only
    # when no case built from that text is kept (see rows.BuiltCases).
    body = cast(cases.c.body, Text).label("body") if dialect == "postgresql" else cases.c.body
    if narrow:  # the row's version and the keys of the order alone (see _keyed)
        query = select(cases.c.row_id, cases.c.version, *_order_columns[order])
    else:
        query = select(cases.c.row_id, cases.c.id, body, cases.c.version, cases.c.reported_at)
        query = query.add_columns(urgency_rank.label("rank"), cases.c.due_at, cases.c.updated_at)
    if spanned and where.text is not None:
        # Along the span, not through every match of the text: the search tests each row
        # of the span against the matches (SQLite: ``row_id + 0`` is no index's key).
        query = query.where(
            *conditions(replace(where, text=None), dialect),
            _text(where.text, dialect, walked=True),
            *_span(order, shape),
        )
    else:
        query = query.where(*conditions(where, dialect))
        if shape is not None:
            query = query.where(_after(order, shape))
    return _ordered(query, order).limit(limit)


def count_selected(connection: Connection, where: CaseFilter) -> int:
    """How many cases match ``where``."""
    counted = connection.execute(count_query(where, connection.dialect.name)).scalar()
    return int(counted or 0)


def count_query(where: CaseFilter, dialect: str) -> Select[int]:
    """The statement counting the cases ``where`` selects on ``dialect``."""
    return select(func.count()).select_from(cases).where(*conditions(where, dialect))


def facet_counts(
    connection: Connection, where: CaseFilter, by: Facet
) -> tuple[dict[str | None, int], bool]:
    """How many cases match ``where``, per value of the column ``by``: from the tally
    the triggers keep when it can answer (:func:`tally.answers`), else a ``GROUP BY``;
    and whether the tally's pending changes are due for a fold (:func:`tally.fold`)."""
    by = check_facet(by)
    if tally.answers(where):
        counted = tally.counts(connection, where, by)
        if counted is not None:
            return counted
    column = cases.c[by]
    query = select(column, func.count()).where(*conditions(where, connection.dialect.name))
    return {value: int(n) for value, n in connection.execute(query.group_by(column)).all()}, False


def contacts_of(connection: Connection, case_ids: Sequence[str]) -> dict[str, ReporterContact]:
    """The stored contact data of these cases (those without any left out)."""
    if not case_ids:
        return {}
    query = select(reporter_contacts).where(reporter_contacts.c.case_id.in_(case_ids))
    found = connection.execute(query).mappings().all()
    return {row["case_id"]: rows.contact_from_row(row) for row in found}


def _ordered(query: Select[tuple[object, ...]], order: Order) -> Select[tuple[object, ...]]:
    if order == "urgent":
        # No NULLS LAST: only final cases (rank 3) have no due instant, all of them.
        return query.order_by(urgency_rank, cases.c.due_at, cases.c.row_id)
    if order == "newest":
        return query.order_by(cases.c.reported_at.desc(), cases.c.row_id.desc())
    if order == "updated":
        return query.order_by(cases.c.updated_at, cases.c.row_id)
    return query.order_by(cases.c.reported_at, cases.c.row_id)


def _cursor(order: Order, key: list[object]) -> tuple[str, dict[str, Any]]:
    """The kind of a cursor's key (``due``, ``undue`` in the urgent order, else
    ``at``) and its values, the parameters of :func:`_after`'s condition."""
    if order == "urgent":
        if len(key) != 3:
            raise bad_cursor()
        rank, due, row_id = _int(key[0]), _instant(key[1], nullable=True), _int(key[2])
        values = {"after_rank": rank, "after_row": row_id}
        if due is None:
            return "undue", values
        return "due", {**values, "after_due": due}
    if len(key) != 2:
        raise bad_cursor()
    stamp, row_id = _instant(key[0], nullable=False), _int(key[1])
    return "at", {"after_at": stamp, "after_row": row_id}


def _after(order: Order, shape: str) -> ColumnElement[bool]:
    """The rows after a cursor's key in ``order``, the key given as parameters."""
    row_id = bindparam("after_row", type_=cases.c.row_id.type)
    if order == "urgent":
        rank = bindparam("after_rank", type_=Integer())
        if shape == "undue":
            same = and_(cases.c.due_at.is_(None), cases.c.row_id > row_id)
        else:
            due = bindparam("after_due", type_=cases.c.due_at.type)
            same = or_(
                cases.c.due_at > due,
                cases.c.due_at.is_(None),
                and_(cases.c.due_at == due, cases.c.row_id > row_id),
            )
        return or_(urgency_rank > rank, and_(urgency_rank == rank, same))
    stamp = bindparam("after_at", type_=cases.c.reported_at.type)
    if order == "newest":
        return or_(
            cases.c.reported_at < stamp, and_(cases.c.reported_at == stamp, cases.c.row_id < row_id)
        )
    at = cases.c.updated_at if order == "updated" else cases.c.reported_at
    return or_(at > stamp, and_(at == stamp, cases.c.row_id > row_id))


def _span(order: Order, shape: str | None) -> list[ColumnElement[bool]]:
    """The rows after the cursor (of ``shape``) up to a span's edge in ``order``, both
    keys given as parameters (``after_*``, ``edge_*``), each as one comparison of
    (reported_at, row_id): a range of the index on those columns."""
    key = tuple_(cases.c.reported_at, cases.c.row_id)
    edge = _key("edge")
    found = [key >= edge if order == "newest" else key <= edge]
    if shape is not None:
        found.append(_key_after(order))
    return found


def _key_after(order: Order) -> ColumnElement[bool]:
    """The rows after the cursor's key in a report-time order, as one comparison."""
    key, after = tuple_(cases.c.reported_at, cases.c.row_id), _key("after")
    return key < after if order == "newest" else key > after


def _key(prefix: str) -> ColumnElement[Any]:
    return tuple_(
        bindparam(f"{prefix}_at", type_=cases.c.reported_at.type),
        bindparam(f"{prefix}_row", type_=cases.c.row_id.type),
    )


def _read_instant(value: datetime | str) -> datetime:
    """An instant as the driver read it (SQLite: the stored UTC text), aware in UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
    return utc(value, "a stored instant")


def _of_workflow(workflow: str, dialect: str) -> ColumnElement[bool]:
    """:func:`leases.of_workflow`; on SQLite as ``+workflow = :name``, which no index
    serves either and costs each row read less than a concatenation."""
    if dialect != "sqlite":
        return leases.of_workflow(workflow)
    name = UnaryExpression(cases.c.workflow, operator=custom_op("+"), type_=cases.c.workflow.type)
    return name == workflow


def _among(column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN (...)`` with a parameter of its own per value (not one list expanded
    at each run): a statement that can be prepared."""
    if not values:
        return false()  # no value: no row (SQL has no empty list)
    return column.in_([bindparam(None, value, type_=column.type) for value in values])


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_cursor()
    return value


def _instant(value: object, *, nullable: bool) -> datetime | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise bad_cursor()
    try:
        return utc(datetime.fromisoformat(value), "cursor")
    except ValueError:
        raise bad_cursor() from None


def _under(column: ColumnElement[str], scope: str, dialect: str) -> ColumnElement[bool]:
    """The code ``scope`` and every code under it: ``scope.`` <= code < ``scope/``."""
    if dialect == "postgresql":
        column = column.collate("C")
    return or_(column == scope, and_(column >= scope + ".", column < scope + "/"))


def _co_units(units: tuple[str, ...], dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return or_(
            false(),
            *(cases.c.co_units.op("@>")(_jsonb_list(unit)) for unit in units),
        )
    return cases.c.row_id.in_(
        select(_co_unit_rows.c.row_id).where(_among(_co_unit_rows.c.unit, units))
    )


def _party(party: Party, dialect: str) -> ColumnElement[bool]:
    found: list[ColumnElement[bool]] = []
    if party.reporter is not None:
        found.append(cases.c.reporter_id == party.reporter)
    if len(party.lead_units) == 1:  # an equality: the (lead_unit, urgency) index serves it
        found.append(cases.c.lead_unit == party.lead_units[0])
    elif party.lead_units:
        found.append(_among(cases.c.lead_unit, party.lead_units))
    if party.co_units:
        found.append(_co_units(party.co_units, dialect))
    if party.follower is not None:
        found.append(_follows(party.follower, dialect))
    return or_(false(), *found)


def _follows(reporter: str, dialect: str) -> ColumnElement[bool]:
    """Cases a report of ``reporter`` was merged into."""
    if dialect == "postgresql":
        return cases.c.followers.op("@>")(_jsonb_list(reporter))
    followed = select(_follower_rows.c.row_id).where(_follower_rows.c.reporter == reporter)
    return cases.c.row_id.in_(followed)


def _jsonb_list(item: str) -> ColumnElement[Any]:
    """PostgreSQL: ``[item]`` as ``jsonb`` (``column @> [item]``: the list holds it)."""
    return cast(literal(json.dumps([item])), JSONB)


def _text(needle: str, dialect: str, *, walked: bool = False) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return cases.c.search_text.ilike(_pattern(needle), escape="\\")
    fts = _text_rows
    match = _matching(needle)
    if not walked:
        return cases.c.row_id.in_(select(fts.c.rowid).where(match))
    low = bindparam("span_low", type_=cases.c.row_id.type)
    high = bindparam("span_high", type_=cases.c.row_id.type)
    spanned = select(fts.c.rowid).where(match, fts.c.rowid.between(low, high))
    return (cases.c.row_id + literal_column("0")).in_(spanned)


def _matching(needle: str) -> ColumnElement[bool]:
    """SQLite: the rows of the FTS5 table that hold ``needle``."""
    fts = _text_rows
    if len(needle) >= 3:
        phrase = '"' + needle.replace('"', '""') + '"'
        return fts.c[CASE_TEXT].op("MATCH")(phrase)
    # The trigram index cannot serve fewer than three characters: a scan of it.
    return fts.c.text.like(_pattern(needle), escape="\\")


def _pattern(needle: str) -> str:
    """A ``LIKE`` pattern of the rows holding ``needle`` (its wildcards escaped)."""
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
