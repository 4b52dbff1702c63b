"""The statements of a case transaction, built once.

SQLAlchemy caches a statement's compiled form by its structure; building each one
once also spares the per-call cost of constructing and hashing it, which on the hot
path of a command is a good part of the store's overhead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Insert,
    Integer,
    Select,
    Text,
    Update,
    bindparam,
    cast,
    delete,
    insert,
    select,
    text,
    tuple_,
    update,
)

from closedloop.adapters.sqlalchemy.schema import (
    CASE_TEXT,
    case_events,
    cases,
    idempotency_keys,
    outbox,
    reporter_contacts,
)

CONTACT_COLUMNS = [c for c in reporter_contacts.c if c.name != "case_id"]


def _latest_hash(case_id: Any) -> Any:
    """The hash of the latest event of ``case_id``: one step down the (case_id, seq) key."""
    return (
        select(case_events.c.hash)
        .where(case_events.c.case_id == case_id)
        .order_by(case_events.c.seq.desc())
        .limit(1)
    )


HEAD = _latest_hash(bindparam("case_id"))
"""The hash of the case's latest event, for a case not read in this transaction."""

STORED_BODY = cast(cases.c.body, Text).label("body")
"""The case's body as the text its row holds (PostgreSQL's ``json`` keeps the text it
was given; SQLite's column holds text), to be decoded only when no case built from that
text is kept (see ``rows.BuiltCases``)."""

CASE = (
    select(
        STORED_BODY,
        cases.c.version,
        _latest_hash(cases.c.id).correlate(cases).scalar_subquery().label("head"),
        reporter_contacts.c.case_id,
        *CONTACT_COLUMNS,
    )
    .outerjoin(reporter_contacts, reporter_contacts.c.case_id == cases.c.id)
    .where(cases.c.id == bindparam("case_id"))
)
"""The case with its contact data and chain head: a command that reads one needs all."""
CASES = (
    select(
        cases.c.id,
        STORED_BODY,
        cases.c.version,
        _latest_hash(cases.c.id).correlate(cases).scalar_subquery().label("head"),
        reporter_contacts.c.case_id,
        *CONTACT_COLUMNS,
    )
    .outerjoin(reporter_contacts, reporter_contacts.c.case_id == cases.c.id)
    .where(cases.c.id.in_(bindparam("case_ids", expanding=True)))
)
"""Several cases, each as :data:`CASE` reads one (with its id): a tick's batch."""
VERSION = select(cases.c.version).where(cases.c.id == bindparam("case_id"))
VERSIONS = select(cases.c.id, cases.c.version).where(
    cases.c.id.in_(bindparam("case_ids", expanding=True))
)
CONTACT = select(reporter_contacts).where(reporter_contacts.c.case_id == bindparam("case_id"))
EVENTS = (
    select(case_events)
    .where(case_events.c.case_id == bindparam("case_id"))
    .order_by(case_events.c.seq)
)


def events_between(*, after: bool, workflow: bool = False) -> Select[Any]:
    """The events at or after ``start`` and before ``before`` in time order (at, case
    id, seq), ``limit`` of them; with ``after``, past the key ``after_at``,
    ``after_case``, ``after_seq``: a range of the index on (at, case_id, seq). With
    ``workflow``, only the events of cases of the workflow ``workflow`` (each event's
    case looked up by its key, as a filter on that range)."""
    at = case_events.c.at
    query = select(case_events).where(
        at >= bindparam("start", type_=at.type), at < bindparam("before", type_=at.type)
    )
    if workflow:
        query = query.join(cases, cases.c.id == case_events.c.case_id).where(
            (cases.c.workflow + "") == bindparam("workflow", type_=cases.c.workflow.type)
        )
    key = tuple_(at, case_events.c.case_id, case_events.c.seq)
    if after:
        query = query.where(
            key
            > tuple_(
                bindparam("after_at", type_=at.type),
                bindparam("after_case", type_=case_events.c.case_id.type),
                bindparam("after_seq", type_=case_events.c.seq.type),
            )
        )
    return query.order_by(*key.clauses).limit(bindparam("limit", type_=Integer()))


EVENTS_BETWEEN = events_between(after=False)
EVENTS_BETWEEN_AFTER = events_between(after=True)
EVENTS_OF_WORKFLOW_BETWEEN = events_between(after=False, workflow=True)
EVENTS_OF_WORKFLOW_BETWEEN_AFTER = events_between(after=True, workflow=True)
IDEMPOTENCY = select(idempotency_keys).where(idempotency_keys.c.key == bindparam("key"))
OUTBOX_OF = (
    select(outbox).where(outbox.c.case_id == bindparam("case_id")).order_by(outbox.c.created_at)
)
ERASE_EVENT = (
    update(case_events)
    .where(case_events.c.case_id == bindparam("e_case"), case_events.c.seq == bindparam("e_seq"))
    .values(
        payload=bindparam("payload"),
        reason=bindparam("reason"),
        changes=bindparam("changes"),
        sealed=bindparam("sealed"),
    )
)
ERASE_OUTBOX = (
    update(outbox)
    .where(outbox.c.id == bindparam("m_id"))
    .values(payload=bindparam("payload"), last_error=bindparam("last_error"))
)
DROP_CONTACT = delete(reporter_contacts).where(reporter_contacts.c.case_id == bindparam("case_id"))
MERGE_SEARCH_TEXT = text(f"INSERT INTO {CASE_TEXT} ({CASE_TEXT}) VALUES ('optimize')")
"""SQLite: merge the search index's segments, dropping the text of changed rows."""
DROP_IDEMPOTENCY = delete(idempotency_keys).where(
    idempotency_keys.c.case_id == bindparam("case_id")
)

ADD_CASE = insert(cases)
ADD_CONTACT = insert(reporter_contacts)
ADD_EVENT = insert(case_events)
ADD_IDEMPOTENCY = insert(idempotency_keys)
ADD_OUTBOX = insert(outbox)
UPDATE_CASE = update(cases).where(
    cases.c.id == bindparam("case_id"), cases.c.version == bindparam("expected")
)

RECENT_CASE = UPDATE_CASE.where(STORED_BODY.element == bindparam("held_body", type_=Text()))
"""The guarded UPDATE of a case read from memory (``RecentRows``): its version and the
text its row held then, so that a row changed outside closedloop without a new version
(an edit by hand, a damaged body) is not written over unseen."""

CLAIMED_CASE = update(cases).where(
    cases.c.id == bindparam("case_id"),
    cases.c.version == bindparam("expected"),
    cases.c.tick_token == bindparam("token"),
)
"""The guarded UPDATE of a case a ticker claimed: the version and the lease's token."""
CLAIMED_RECENT_CASE = CLAIMED_CASE.where(
    STORED_BODY.element == bindparam("held_body", type_=Text())
)
"""The guarded UPDATE of a claimed case read from memory: the lease's token too."""
LEASE_STATE = select(cases.c.version, cases.c.tick_token).where(cases.c.id == bindparam("case_id"))

NO_LEASE = {"tick_owner": None, "tick_expires_at": None, "tick_token": None}
"""The lease columns of a case no ticker holds."""


EVENT_PARAM = "event_"
"""The prefix of an event column's parameter in a statement that also writes the event."""
CONTACT_PARAM = "contact_"
"""The prefix of a contact column's parameter in :data:`ADD_WITH_EVENT`."""
OUTBOX_PARAM = "outbox{}_"
"""The prefix of the parameter of a column of the ``n``-th outbox message (from 0) in a
statement that also writes the case (``OUTBOX_PARAM.format(n)``)."""


def outbox_params(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The outbox rows ``messages`` as the parameters of a statement that writes them
    with their case (see :class:`WithEvent`)."""
    params: dict[str, Any] = {}
    for n, values in enumerate(messages):
        params.update(prefixed(OUTBOX_PARAM.format(n), values))
    return params


def _outbox_after(written: Any, keys: tuple[str, ...]) -> list[Any]:
    """The INSERTs of the outbox messages whose values are the ``outbox<n>_`` keys, each
    run once for each row ``written`` returns (as CTEs: run, though nothing reads them)."""
    found: list[Any] = []
    n = 0
    while True:
        prefix = OUTBOX_PARAM.format(n)
        columns = [name.removeprefix(prefix) for name in keys if name.startswith(prefix)]
        if not columns:
            return found
        row = select(
            *(bindparam(prefix + name, type_=outbox.c[name].type) for name in columns)
        ).select_from(written)
        found.append(insert(outbox).from_select(columns, row).cte(f"queued{n}"))
        n += 1


def _event_after(written: Any, keys: tuple[str, ...]) -> Insert:
    """The INSERT of the event whose values are the ``event_`` keys, one row for each row
    ``written`` returns: the event is written only when the case was."""
    columns = [name.removeprefix(EVENT_PARAM) for name in keys if name.startswith(EVENT_PARAM)]
    row = select(
        *(bindparam(EVENT_PARAM + name, type_=case_events.c[name].type) for name in columns)
    ).select_from(written)
    return insert(case_events).from_select(columns, row)


class WithEvent:
    """PostgreSQL: a guarded UPDATE of a case and the INSERT of its event, one statement.

    ``WITH moved AS (UPDATE ... WHERE <guard> RETURNING id) INSERT INTO
    closedloop_case_events (...) SELECT ... FROM moved``: the event is inserted only when
    the guard matched the case's row, so the statement's row count (1 or 0) says whether
    it did, and the database hears one statement where it would hear two. The UPDATE
    sets the columns its parameters name; the event's values come as ``event_<column>``,
    and those of the notifications the change queues, when there are any, as
    ``outbox<n>_<column>``: each is inserted, as the event is, only when the guard
    matched. Built once per set of parameter names (see :func:`~closedloop.adapters.sqlalchemy.
    engines.prepared`).
    """

    def __init__(self, guard: Update) -> None:
        self.guard = guard

    def compose(self, keys: tuple[str, ...]) -> Insert:
        """The statement for parameters named ``keys``."""
        sets = {name: bindparam(name, type_=cases.c[name].type) for name in keys if name in cases.c}
        moved = self.guard.values(sets).returning(cases.c.id).cte("moved")
        statement = _event_after(moved, keys)
        for queued in _outbox_after(moved, keys):
            statement = statement.add_cte(queued)
        return statement


class AddedWithEvent:
    """PostgreSQL: the INSERT of a new case, of its contact data and of its first event,
    one statement (``WITH added AS (INSERT ... RETURNING id) ...``).

    The case's values come under their column names, the contact's (when the case has
    contact data) as ``contact_<column>`` (its ``case_id`` is the new case's), the
    event's as ``event_<column>``, and those of the notifications it queues, if any, as
    ``outbox<n>_<column>``.
    """

    def compose(self, keys: tuple[str, ...]) -> Insert:
        """The statement for parameters named ``keys``."""
        values = {
            name: bindparam(name, type_=cases.c[name].type) for name in keys if name in cases.c
        }
        added = insert(cases).values(values).returning(cases.c.id).cte("added")
        statement = _event_after(added, keys)
        for queued in _outbox_after(added, keys):
            statement = statement.add_cte(queued)
        contact = [
            name.removeprefix(CONTACT_PARAM)
            for name in keys
            if name.startswith(CONTACT_PARAM) and name != CONTACT_PARAM + "case_id"
        ]
        if not contact:
            return statement
        row = select(
            added.c.id,
            *(
                bindparam(CONTACT_PARAM + name, type_=reporter_contacts.c[name].type)
                for name in contact
            ),
        )
        stored = insert(reporter_contacts).from_select(["case_id", *contact], row)
        return statement.add_cte(stored.cte("contact"))  # run, though nothing reads it


def prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """A row's values as the parameters of a statement that writes it with others."""
    return {prefix + name: value for name, value in values.items()}


UPDATE_WITH_EVENT = WithEvent(UPDATE_CASE)
RECENT_WITH_EVENT = WithEvent(RECENT_CASE)
CLAIMED_WITH_EVENT = WithEvent(CLAIMED_CASE)
ADD_WITH_EVENT = AddedWithEvent()
