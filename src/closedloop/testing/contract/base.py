"""The fixtures every contract class shares, and builders of the values a store keeps.

The builders make small, valid values directly (no workflow or engine involved), so a
failure points at the store, not at the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from closedloop.engine import audit
from closedloop.engine.model import AuditEvent, Case, Deadline, Location, ReporterContact, Warning
from closedloop.engine.ports import CaseStore, CaseTransaction, OutboxMessage

StoreFactory = Callable[[], CaseStore]

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
"""The instant the suite's values start from (a Monday morning, UTC)."""

LEASE = timedelta(minutes=5)


class StoreFixtures:
    """Provides ``stores`` (open another store object over the test's database) and ``store``.

    Subclasses supply ``make_store`` in one of two forms:

    * a **fixture** returning a zero-argument function; each call opens a store object
      over the same fresh database (the suite uses a second one as a "restarted"
      process or a second connection);
    * a **method** ``make_store(self)`` returning a store over a fresh database; the
      suite then calls :meth:`reopen_store` for a second store object.
    """

    def make_store(self) -> CaseStore:
        """Override: a store over a fresh, empty database (or make it a fixture)."""
        raise NotImplementedError(
            "subclass the contract and define make_store, as a method or a fixture"
        )

    def reopen_store(self, store: CaseStore) -> CaseStore:
        """Another store object over ``store``'s database; the same object by default."""
        return store

    # Registered under the name ``make_store``: a subclass's own ``make_store`` fixture
    # is registered after it (pytest reads a class's names in sorted order) and wins; a
    # plain ``make_store`` method leaves this one in place, and it calls the method.
    @pytest.fixture(name="make_store")
    def _make_store_from_method(self) -> Iterator[StoreFactory]:
        made: list[CaseStore] = []

        def factory() -> CaseStore:
            made.append(self.reopen_store(made[0]) if made else self.make_store())
            return made[-1]

        yield factory
        for opened in {id(s): s for s in made}.values():
            close = getattr(opened, "close", None)
            if close is not None:
                close()

    @pytest.fixture
    def stores(self, make_store: StoreFactory) -> StoreFactory:
        """Opens store objects over this test's database; the first call makes it."""
        return make_store

    @pytest.fixture
    def store(self, stores: StoreFactory) -> CaseStore:
        """The store under test, over a fresh database."""
        return stores()


# -- builders ----------------------------------------------------------------------------


def deadline(
    due_at: datetime, *, warning: Warning = "none", paused_at: datetime | None = None
) -> Deadline:
    """A running clock due at ``due_at``, started a day earlier."""
    return Deadline(
        clock="handling",
        calendar="natural",
        started_at=due_at - timedelta(days=1),
        limit="1 day",
        due_at=due_at,
        warn_at=due_at - timedelta(hours=6),
        warning=warning,
        paused_at=paused_at,
    )


def new_case(case_id: str, *, at: datetime = T0, **fields: Any) -> tuple[Case, AuditEvent]:
    """A case at version 1 and the event that opened it; ``fields`` override defaults."""
    values: dict[str, Any] = {
        "id": case_id,
        "workflow": "contract",
        "state": "reported",
        "version": 1,
        "reported_at": at,
        "updated_at": at,
        "reporter_id": "citizen-1",
        "channel": "hotline",
        "description": f"report {case_id}",
        "location": Location(area="310101"),
    }
    case = Case.model_validate({**values, **fields})
    return case, _event(None, case, at, "report", audit.GENESIS)


def revise(
    case: Case, head: AuditEvent, *, at: datetime | None = None, **fields: Any
) -> tuple[Case, AuditEvent]:
    """The next version of ``case`` with ``fields`` changed, and its event after ``head``."""
    when = at or head.at + timedelta(minutes=1)
    new = Case.model_validate(
        {**case.model_dump(), **fields, "version": case.version + 1, "updated_at": when}
    )
    return new, _event(case, new, when, "revise", head.hash)


def _event(before: Case | None, after: Case, at: datetime, trigger: str, prev: str) -> AuditEvent:
    return audit.seal(
        case_id=after.id,
        seq=after.version,
        at=at,
        actor="contract",
        role=None,
        trigger=trigger,
        from_state=None if before is None else before.state,
        to_state=after.state,
        payload={"note": f"v{after.version}", "list": [1, "二"]},
        reason=None,
        changes=audit.changes(before, after),
        prev_hash=prev,
    )


def add(store: CaseStore, case_id: str, **fields: Any) -> tuple[Case, AuditEvent]:
    """Commit a new case (with contact data) and return it with its first event."""
    case, event = new_case(case_id, **fields)
    with store.transaction() as tx:
        tx.add_case(case, ReporterContact(name="Li Lei", phone="13800000000"), event)
        tx.commit()
    return case, event


def timed(store: CaseStore, case_id: str, at: datetime | None) -> tuple[Case, AuditEvent]:
    """Commit a new case whose earliest timer falls due at ``at``; return it and its event."""
    case, event = new_case(case_id)
    with store.transaction() as tx:
        tx.add_case(case, None, event, next_timer_at=at)
        tx.commit()
    return case, event


def message(message_id: str, case_id: str | None, *, at: datetime = T0) -> OutboxMessage:
    """A pending message due at ``at``."""
    return OutboxMessage(
        id=message_id,
        case_id=case_id,
        event="case.assigned",
        channel="webhook",
        recipient="unit:water",
        payload={"case": case_id, "text": "请处理", "at": at.isoformat()},
        next_attempt_at=at,
        created_at=at,
    )


def post(store: CaseStore, *messages: OutboxMessage) -> None:
    """Commit ``messages`` to the outbox in a transaction of their own."""
    with store.transaction() as tx:
        tx.add_outbox(messages)
        tx.commit()


def commit(store: CaseStore, *actions: Callable[[CaseTransaction], Any]) -> None:
    """Run ``actions`` in one transaction and commit it (an error may come from either:
    the port lets a store check at the write or at commit)."""
    with store.transaction() as tx:
        for action in actions:
            action(tx)
        tx.commit()


def read(store: CaseStore, action: Callable[[CaseTransaction], Any]) -> Any:
    """Run ``action`` in a transaction that is left without committing."""
    with store.transaction() as tx:
        return action(tx)


def version_of(store: CaseStore, case_id: str) -> int | None:
    """The stored version of the case, or ``None`` when there is no such case."""
    case = read(store, lambda tx: tx.get_case(case_id))
    return None if case is None else case.version
