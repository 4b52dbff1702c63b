"""Contract: the streamed read of every audit trail (the ``EventStream`` port).

Not part of the CaseStore port: a store that offers ``stream_events`` subclasses
:class:`EventStreamContract` too, and one that offers ``events_between`` (the
``EventsByTime`` port) :class:`EventsByTimeContract`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from closedloop.engine.model import AuditEvent, Case
from closedloop.engine.ports import EventRecord, EventsByTime, EventStream
from closedloop.testing.contract.base import (
    T0,
    StoreFactory,
    StoreFixtures,
    add,
    commit,
    revise,
)

Fields = tuple[str, Any, str, str, Any, Any]
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def _fields(event: AuditEvent | EventRecord) -> Fields:
    return (
        event.case_id,
        event.at,
        event.trigger,
        event.to_state,
        dict(event.payload),
        dict(event.changes),
    )


def _by_case(stream: Sequence[Sequence[EventRecord]]) -> dict[str, list[Fields]]:
    return {events[0].case_id: [_fields(e) for e in events] for events in stream}


def _update(store: Any, case: Case, event: AuditEvent) -> None:
    commit(store, lambda tx: tx.update_case(case, case.version - 1, event))


class EventStreamContract(StoreFixtures):
    """Every case once, with all its events oldest first, from one consistent read."""

    @pytest.fixture
    def trails(self, store: Any) -> dict[str, list[AuditEvent]]:
        """Three cases: one event, three events, two events; the expected trails."""
        trails: dict[str, list[AuditEvent]] = {}
        for case_id, changes in (("a", 0), ("b", 2), ("c", 1)):
            case, event = add(store, case_id)
            trails[case_id] = [event]
            for step in range(changes):
                case, event = revise(case, event, state=f"step{step}")
                _update(store, case, event)
                trails[case_id].append(event)
        return trails

    def test_the_store_is_an_event_stream(self, store: Any) -> None:
        assert isinstance(store, EventStream)

    def test_an_empty_store_streams_nothing(self, store: Any) -> None:
        assert list(store.stream_events()) == []

    def test_every_case_comes_once_with_its_events_oldest_first(
        self, store: Any, trails: dict[str, list[AuditEvent]]
    ) -> None:
        stream = list(store.stream_events())
        assert sorted(events[0].case_id for events in stream) == ["a", "b", "c"]
        assert all(len({e.case_id for e in events}) == 1 for events in stream)
        expected = {case_id: [_fields(e) for e in trail] for case_id, trail in trails.items()}
        assert _by_case(stream) == expected

    def test_the_events_are_those_the_port_reads(
        self, stores: StoreFactory, trails: dict[str, list[AuditEvent]]
    ) -> None:
        other: Any = stores()  # another store object over the same database
        with other.transaction(read_only=True) as tx:
            by_port = {case_id: [_fields(e) for e in tx.get_events(case_id)] for case_id in trails}
        assert _by_case(list(other.stream_events())) == by_port

    def test_writes_during_the_stream_are_not_seen_and_not_held_up(
        self, store: Any, stores: StoreFactory, trails: dict[str, list[AuditEvent]]
    ) -> None:
        stream = store.stream_events()
        first = next(stream)
        writer = stores()
        add(writer, "d")  # committed while the stream is open
        rest = list(stream)
        assert sorted(events[0].case_id for events in (first, *rest)) == ["a", "b", "c"]
        assert len(writer.case_ids()) == 4


class EventsByTimeContract(StoreFixtures):
    """The events of a window of time, in time order, a page at a time (the
    ``EventsByTime`` port)."""

    @pytest.fixture
    def timeline(self, store: Any) -> list[AuditEvent]:
        """Three cases reported at T0, T0 + 1 and T0 + 2 minutes, each changed once
        and the first twice, a minute apart; every event in time order."""
        events: list[AuditEvent] = []
        for n, case_id in enumerate(("b", "a", "c")):
            case, event = add(store, case_id, at=T0 + n * MINUTE)
            events.append(event)
            for step in range(2 if case_id == "b" else 1):
                case, event = revise(case, event, at=T0 + (3 + n + step) * MINUTE, state=f"s{step}")
                _update(store, case, event)
                events.append(event)
        return sorted(events, key=lambda e: (e.at, e.case_id, e.seq))

    def test_the_store_reads_events_by_time(self, store: Any) -> None:
        assert isinstance(store, EventsByTime)

    def test_a_window_holds_its_events_in_time_order(
        self, store: Any, timeline: list[AuditEvent]
    ) -> None:
        found = store.events_between(T0 + MINUTE, T0 + 4 * MINUTE, limit=100)
        expected = [e for e in timeline if T0 + MINUTE <= e.at < T0 + 4 * MINUTE]
        assert [(e.case_id, e.seq) for e in found] == [(e.case_id, e.seq) for e in expected]
        assert [_fields(e) for e in found] == [_fields(e) for e in expected]
        assert store.events_between(T0 + 10 * MINUTE, T0 + 20 * MINUTE, limit=100) == []

    def test_a_window_holds_the_events_of_one_workflow_when_asked(
        self, store: Any, timeline: list[AuditEvent]
    ) -> None:
        # One store may hold several workflows' cases; an engine reads its own events.
        _, other = add(store, "z", at=T0 + 2 * MINUTE, workflow="permits")
        everything = store.events_between(T0, T0 + HOUR, limit=100)
        expected = sorted([*timeline, other], key=lambda e: (e.at, e.case_id, e.seq))
        assert [(e.case_id, e.seq) for e in everything] == [(e.case_id, e.seq) for e in expected]
        ours = store.events_between(T0, T0 + HOUR, limit=100, workflow="contract")
        assert [(e.case_id, e.seq) for e in ours] == [(e.case_id, e.seq) for e in timeline]
        theirs = store.events_between(T0, T0 + HOUR, limit=100, workflow="permits")
        assert [(e.case_id, e.seq) for e in theirs] == [("z", 1)]
        after = (timeline[0].at, timeline[0].case_id, timeline[0].seq)
        rest = store.events_between(T0, T0 + HOUR, after=after, limit=100, workflow="contract")
        assert [(e.case_id, e.seq) for e in rest] == [(e.case_id, e.seq) for e in timeline[1:]]

    def test_pages_past_a_key_cover_the_window_once(
        self, store: Any, timeline: list[AuditEvent]
    ) -> None:
        # b's second change and a's change share an instant: the case id orders them.
        keys: list[tuple[str, int]] = []
        after = None
        while True:
            page = store.events_between(T0, T0 + HOUR, after=after, limit=2)
            keys += [(e.case_id, e.seq) for e in page]
            if len(page) < 2:
                break
            after = (page[-1].at, page[-1].case_id, page[-1].seq)
        assert keys == [(e.case_id, e.seq) for e in timeline]
