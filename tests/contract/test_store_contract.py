"""Every store closedloop ships, through the published CaseStore contract suite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import queries
from closedloop.engine import audit, personal
from closedloop.engine.model import AuditEvent, ReporterContact, Seal
from closedloop.engine.ports import CaseStore, IdempotencyRecord, OutboxMessage
from closedloop.errors import StoreError
from closedloop.testing.contract import (
    CaseBatchContract,
    CaseQueryContract,
    CaseStoreContract,
    CheckpointContract,
    EventsByTimeContract,
    EventStreamContract,
    RecentCasesContract,
)
from closedloop.testing.contract import base as contract
from tests.conftest import Backend, StoreFactory


class TestEveryStore(CaseStoreContract, CaseQueryContract, CheckpointContract, CaseBatchContract):
    """Memory, a SQLite file and PostgreSQL (the conftest's parametrised factory)."""

    @pytest.fixture
    def make_store(self, store_factory: StoreFactory) -> StoreFactory:
        return store_factory

    @pytest.fixture(autouse=True)
    def short_spans(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A SQL store's text search reads spans of a few cases, not thousands: the
        contract's few cases then cross every switch of its plan (a span that fills
        the page, a next span sized by the matches seen, the text index for the rest)."""
        monkeypatch.setattr(queries, "FIRST_SPAN", 1)
        monkeypatch.setattr(queries, "SMALLEST_SPAN", 2)


class TestMethodForm(CaseStoreContract):
    """The suite also takes ``make_store`` as a plain method, as a third party may write."""

    def make_store(self) -> CaseStore:
        return InMemoryStore()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def sql_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens SQL stores over one fresh database: a SQLite file, then PostgreSQL."""
    backend = Backend(request.param, tmp_path)
    first = backend.fresh()
    yield lambda: backend.reopen(first)
    backend.close()


class TestSQLRecentCases(RecentCasesContract):
    """The SQL store hands out the rows it holds and checks them as they are written."""

    @pytest.fixture
    def make_store(self, sql_factory: StoreFactory) -> StoreFactory:
        return sql_factory


class TestSQLEventStream(EventStreamContract):
    """The SQL store streams every audit trail in one read, on SQLite and PostgreSQL."""

    @pytest.fixture
    def make_store(self, sql_factory: StoreFactory) -> StoreFactory:
        return sql_factory


class TestSQLEventsByTime(EventsByTimeContract):
    """The SQL store reads a window's events by time, on SQLite and PostgreSQL."""

    @pytest.fixture
    def make_store(self, sql_factory: StoreFactory) -> StoreFactory:
        return sql_factory


class TestMemoryEventsByTime(EventsByTimeContract):
    """The in-memory store reads a window's events by time."""

    def make_store(self) -> CaseStore:
        return InMemoryStore()


class TestPersonalErasure:
    """Every shipped store keeps an event's seals and erases a case's personal data:
    events rewritten in place (hashes kept), outbox payloads replaced whatever their
    status, contact data and idempotency records deleted, all in the transaction."""

    def sealed_case(self, store: CaseStore) -> tuple[AuditEvent, OutboxMessage]:
        case, event = contract.new_case("c1", description="Secret words")
        event = sealed_event(event)
        with store.transaction() as tx:
            tx.add_case(case, ReporterContact(phone="13912345678"), event)
            tx.put_idempotency(
                IdempotencyRecord(key="k1", fingerprint="f" * 64, case_id="c1", version=1)
            )
            tx.add_outbox([contract.message("m1", "c1")])
            tx.commit()
        [dead] = store.claim_outbox(contract.T0, owner="w", lease=timedelta(minutes=1), limit=1)
        store.finish_outbox(dead, status="dead", error="Secret words refused")
        return event, dead

    def test_seals_read_back_as_written_and_events_without_them_have_none(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory()
        event, _ = self.sealed_case(store)
        contract.add(store, "c2")
        with store.transaction(read_only=True) as tx:
            assert tx.get_events("c1") == [event]
            assert [e.sealed for e in tx.get_events("c2")] == [{}]
        assert audit.verify_chain("c1", [event], None).problems == (
            "no stored case to compare with",
        )

    def test_an_erasure_rewrites_events_and_messages_and_deletes_the_rest(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory()
        event, dead = self.sealed_case(store)
        erased = personal.redacted(event, ["description"])
        scrubbed = dead.model_copy(
            update={"payload": {"text": "[purged]"}, "last_error": "[purged]"}
        )
        with store.transaction() as tx:
            assert [m.id for m in tx.outbox_of("c1")] == ["m1"]
            tx.erase_personal("c1", events=[erased], outbox=[scrubbed], contact=True)
            assert tx.get_contact("c1") is None
            tx.commit()
        store = store_factory()  # what a restarted process reads
        with store.transaction(read_only=True) as tx:
            [stored] = tx.get_events("c1")
            assert stored == erased
            assert stored.hash == event.hash
            assert stored.changes["description"] == "[purged]"
            assert tx.get_contact("c1") is None
            assert tx.get_idempotency("k1") is None
            [message] = tx.outbox_of("c1")
        assert (message.payload, message.last_error, message.status) == (
            {"text": "[purged]"},
            "[purged]",
            "dead",
        )
        assert audit.verify_chain("c1", [stored], None).problems == (
            "no stored case to compare with",
        )

    def test_an_erasure_rolled_back_erases_nothing_and_a_reader_may_not_erase(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory()
        event, _ = self.sealed_case(store)
        with store.transaction() as tx:
            tx.erase_personal(
                "c1", events=[personal.redacted(event, ["description"])], outbox=[], contact=True
            )
        with store.transaction(read_only=True) as tx:
            assert tx.get_events("c1") == [event]
            assert tx.get_contact("c1") == ReporterContact(phone="13912345678")
            with pytest.raises(StoreError):
                tx.erase_personal("c1", events=[], outbox=[], contact=True)


def sealed_event(event: AuditEvent) -> AuditEvent:
    """``event`` with its description sealed (as a workflow with retention writes it)."""
    salt = "00" * 16
    seal = Seal(
        kind="description", digest=audit.digest(salt, event.changes["description"]), salt=salt
    )
    draft = event.model_copy(update={"sealed": {"changes/description": seal}})
    return draft.model_copy(update={"hash": audit.event_hash(draft)})
