"""Where the events come from: any CaseStore, read one case at a time.

Memory stays bounded: a store is read in small batches of cases, each batch in one
short transaction, and a case's events are let go once folded. A store that offers
the :class:`~closedloop.engine.ports.EventStream` port (the SQL store: one streamed
query over its audit table) is read through it instead; every other store through the
``CaseStore`` port alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeGuard

from closedloop.engine.ports import CaseStore, EventStream
from closedloop.errors import ValidationError
from closedloop.metrics.facts import EventLike

Source = CaseStore | Iterable[Sequence[EventLike]]
"""What the metrics read: a store, or each case's events (oldest first), case by case."""


def is_store(source: object) -> TypeGuard[CaseStore]:
    """Whether ``source`` looks like a CaseStore (it can list cases and open transactions)."""
    return callable(getattr(source, "case_ids", None)) and callable(
        getattr(source, "transaction", None)
    )


def streams(source: Source) -> Iterable[Sequence[EventLike]]:
    """Each case's events from ``source``, one case at a time.

    Raises:
        ValidationError: ``source`` is neither a CaseStore nor an iterable.
    """
    if is_store(source):
        return read_events(source)
    if isinstance(source, str | bytes) or not isinstance(source, Iterable):
        raise ValidationError(
            [
                (
                    "source",
                    "must be a CaseStore or an iterable of each case's events, "
                    f"not {type(source).__name__}",
                )
            ],
            subject="metrics source",
        )
    return source


def read_events(
    store: CaseStore, *, batch: int = 200, bulk: bool = True
) -> Iterator[Sequence[EventLike]]:
    """Each stored case's audit events, oldest first, one case at a time.

    Through the port the events are :class:`~closedloop.AuditEvent` values; a store's
    :class:`~closedloop.engine.ports.EventStream` (the SQL store's streamed read) may
    hand on database rows with the attributes of :class:`~closedloop.metrics.EventLike`
    (no hashes, no actor), which is all the metrics read. Cases come in the store's
    order (by case id on the SQL read).

    Args:
        store: Any CaseStore.
        batch: How many cases each read transaction of the port takes; it is closed
            before the cases are handed on, so no transaction stays open while the
            caller works.
        bulk: Read a store that is an :class:`~closedloop.engine.ports.EventStream`
            through that stream instead of queries per case: the same events (on the
            SQL store about twice as fast, from one query that holds one read-only
            transaction, a snapshot with no write lock, until the iteration ends).

    Raises:
        ValidationError: ``batch`` is below 1.
        StoreError: the store failed.
    """
    if batch < 1:
        raise ValidationError([("batch", f"must be at least 1, not {batch!r}")], subject="read")
    if bulk and isinstance(store, EventStream):
        yield from store.stream_events()
        return
    ids = store.case_ids()
    for first in range(0, len(ids), batch):
        with store.transaction(read_only=True) as tx:
            chunk = [tx.get_events(case_id) for case_id in ids[first : first + batch]]
        yield from chunk
