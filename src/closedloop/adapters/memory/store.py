"""The in-memory store itself: its queries, the store-level claims and the outbox.

Its rows live in a :class:`~closedloop.adapters.memory.records.MemoryRecords`, which
its transactions share; the store opens them and answers the rest.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from closedloop.adapters.memory.checkpoints import CheckpointBook, MemoryCheckpoints
from closedloop.adapters.memory.records import MemoryRecords
from closedloop.adapters.memory.transaction import InMemoryTransaction
from closedloop.adapters.store_base import check_claim
from closedloop.engine.case_query import (
    CaseFilter,
    CasePage,
    Facet,
    Order,
    bad_cursor,
    check_facet,
    check_order,
    check_page,
    decode_cursor,
    encode_cursor,
    urgency_key,
    warning_level_of,
)
from closedloop.engine.clock import utc
from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import (
    CaseQueries,
    EventKey,
    OutboxMessage,
    OutboxStatus,
    TimerClaim,
)
from closedloop.errors import MessageNotFound


class InMemoryStore(CaseQueries, MemoryCheckpoints):
    """A CaseStore held in this process's memory; gone when the process ends."""

    def __init__(self) -> None:
        self._records = MemoryRecords()
        self._book = CheckpointBook()

    def transaction(self, *, read_only: bool = False) -> InMemoryTransaction:
        """Open a unit of work; it rolls back unless committed.

        Args:
            read_only: The transaction only reads; a write in it raises ``StoreError``,
                as in the SQL store.
        """
        return InMemoryTransaction(self._records, read_only=read_only)

    def case_ids(self) -> list[str]:
        """Every case id, in the order the cases were added."""
        return self._records.case_ids()

    def close(self) -> None:
        """Nothing to release; present so every store can be closed alike."""

    # -- queries ---------------------------------------------------------------------

    def find_cases(
        self,
        *,
        state: str | Sequence[str] | None = None,
        lead_unit: str | None = None,
        category: str | None = None,
        area: str | None = None,
        warning_level: str | None = None,
        overdue_at: datetime | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> CasePage:
        """Cases matching every given criterion, oldest first, one page at a time.

        Raises:
            ValidationError: ``limit`` is not between 1 and 1000, or ``after`` is not
                a cursor this store returned.
            NaiveDatetime: ``overdue_at`` has no time zone.
        """
        where = CaseFilter.of(state, lead_unit, category, area, warning_level, overdue_at)
        return self.select_cases(where, after=after, limit=limit)

    def count_cases(
        self,
        *,
        state: str | Sequence[str] | None = None,
        lead_unit: str | None = None,
        category: str | None = None,
        area: str | None = None,
        warning_level: str | None = None,
        overdue_at: datetime | None = None,
    ) -> int:
        """How many cases match every given criterion (see :meth:`find_cases`)."""
        where = CaseFilter.of(state, lead_unit, category, area, warning_level, overdue_at)
        return self.count_selected(where)

    def select_cases(
        self,
        where: CaseFilter,
        *,
        order: Order = "oldest",
        after: str | None = None,
        limit: int = 50,
    ) -> CasePage:
        """Cases ``where`` selects, in ``order``, one keyset page at a time (a scan).

        Raises:
            ValidationError: ``limit`` is out of range or ``after`` is not a cursor.
        """
        check_page(limit)
        order = check_order(order)
        newest = order == "newest"
        found = sorted(
            ((_sort_key(order, case, position), case) for position, case in self._matching(where)),
            key=lambda found: found[0],
            reverse=newest,
        )
        if after is not None:
            start = _after_key(decode_cursor(after, order))
            found = [(key, case) for key, case in found if (key < start if newest else key > start)]
        page = found[:limit]
        more = len(found) > limit
        cursor = encode_cursor(order, page[-1][0]) if more else None
        return CasePage(tuple(case for _, case in page), cursor)

    def count_selected(self, where: CaseFilter) -> int:
        """How many cases ``where`` selects."""
        return sum(1 for _ in self._matching(where))

    def facet_counts(self, where: CaseFilter, by: Facet) -> dict[str | None, int]:
        """How many cases ``where`` selects, per value of ``by``."""
        by = check_facet(by)
        counts: Counter[str | None] = Counter()
        for _, case in self._matching(where):
            value = warning_level_of(case) if by == "warning_level" else getattr(case, by)
            counts[value] += 1
        return dict(counts)

    def contacts_of(self, case_ids: Sequence[str]) -> dict[str, ReporterContact]:
        """The stored contact data of these cases (those without any left out)."""
        found = {case_id: self._records.read_contact(case_id) for case_id in case_ids}
        return {case_id: contact for case_id, contact in found.items() if contact is not None}

    def events_between(
        self,
        start: datetime,
        before: datetime,
        *,
        after: EventKey | None = None,
        limit: int,
        workflow: str | None = None,
    ) -> list[AuditEvent]:
        """Up to ``limit`` events at or after ``start`` and before ``before`` (of the
        cases of ``workflow``, when given), in order of (at, case id, seq), past
        ``after`` (see ``EventsByTime``): a scan."""
        start, before = utc(start, "start"), utc(before, "before")
        ours: set[str] | None = None
        if workflow is not None:
            ours = {case.id for case in self._records.case_rows() if case.workflow == workflow}
        found = sorted(
            (key, event)
            for key, event in self._records.event_rows()
            if start <= key[0] < before
            and (after is None or key > after)
            and (ours is None or event.case_id in ours)
        )
        return [event for _, event in found[:limit]]

    def _matching(self, where: CaseFilter) -> Iterator[tuple[int, Case]]:
        for position, case in enumerate(self._records.case_rows()):
            if where.matches(case):
                yield position, case

    # -- timers ----------------------------------------------------------------------

    def claim_due(
        self,
        now: datetime,
        *,
        owner: str,
        lease: timedelta,
        limit: int,
        workflow: str | None = None,
    ) -> list[TimerClaim]:
        """Lease up to ``limit`` cases (of ``workflow``, or of any) whose earliest timer
        is due at ``now`` and whose lease is free or expired, earliest first."""
        now = check_claim(now, lease, limit)
        return self._records.claim_due(
            now, limit, owner=owner, expires_at=now + lease, token=_token(), workflow=workflow
        )

    def next_due_at(self, workflow: str | None = None) -> datetime | None:
        """The earliest ``next_timer_at`` of any case (of ``workflow``, when given)."""
        return self._records.next_due_at(workflow)

    # -- outbox ----------------------------------------------------------------------

    def claim_outbox(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` pending messages due at ``now``; each attempt is counted."""
        now = check_claim(now, lease, limit)
        held = {"lease_owner": owner, "lease_expires_at": now + lease, "lease_token": _token()}
        return self._records.claim_outbox(now, limit, held)

    def finish_outbox(
        self,
        message: OutboxMessage,
        *,
        status: OutboxStatus,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Record an attempt's outcome unless the lease on ``message`` was lost."""
        retry_at = None if next_attempt_at is None else utc(next_attempt_at, "next_attempt_at")
        return self._records.finish_outbox(message, status, error, retry_at)

    def dead_letters(self, *, limit: int = 100) -> list[OutboxMessage]:
        """Messages finished as ``dead`` or ``disabled``, oldest first."""
        return self._records.dead_letters()[:limit]

    def requeue(self, message_id: str, *, now: datetime) -> None:
        """Make a dead or disabled message pending again, due at ``now``, with its
        attempts reset.

        Raises:
            MessageNotFound: no dead or disabled message has that id.
        """
        now = utc(now, "now")
        if not self._records.requeue(message_id, now):
            raise MessageNotFound(message_id)


def _token() -> str:
    return uuid.uuid4().hex


SortKey = tuple[int, str, int]


def _sort_key(order: Order, case: Case, position: int) -> SortKey:
    # Instants as ISO text in UTC sort in time order; "~" sorts after any of them.
    if order == "urgent":
        rank, due = urgency_key(case)
        return (rank, "~" if due is None else due.isoformat(), position)
    if order == "updated":
        return (0, case.updated_at.isoformat(), position)
    return (0, case.reported_at.isoformat(), position)


def _after_key(key: list[object]) -> SortKey:
    if (
        len(key) != 3
        or not isinstance(key[0], int)
        or not isinstance(key[1], str)
        or not isinstance(key[2], int)
    ):
        raise bad_cursor()
    return (key[0], key[1], key[2])
