"""The checks every shipped store makes alike before a write (their common base)."""

from __future__ import annotations

import pytest

from closedloop.engine.model import AuditEvent, Case
from closedloop.engine.ports import CaseStore, IdempotencyRecord, TimerClaim
from closedloop.errors import NaiveDatetime, StoreError
from closedloop.testing.contract.base import LEASE, T0, add, message, read, revise

RECORD = IdempotencyRecord(key="k", fingerprint="f", case_id="c1", version=1)


def test_a_read_only_transaction_refuses_the_write_itself(store: CaseStore) -> None:
    add(store, "c1")
    with store.transaction(read_only=True) as tx, pytest.raises(StoreError, match="read-only"):
        tx.put_idempotency(RECORD)
    assert read(store, lambda tx: tx.get_idempotency("k")) is None


def test_an_ended_transaction_refuses_writes_and_a_second_commit(store: CaseStore) -> None:
    add(store, "c1")
    with store.transaction() as tx:
        tx.commit()
        with pytest.raises(StoreError, match="ended"):
            tx.put_idempotency(RECORD)
        with pytest.raises(StoreError, match="ended"):
            tx.commit()
    assert read(store, lambda tx: tx.get_idempotency("k")) is None


def test_naive_message_instants_and_foreign_claims_are_refused(store: CaseStore) -> None:
    case, event = add(store, "c1")
    naive = message("m1", "c1").model_copy(update={"created_at": T0.replace(tzinfo=None)})
    foreign = TimerClaim(
        case_id="c2", next_timer_at=T0, owner="w", expires_at=T0 + LEASE, token="t"
    )
    with store.transaction() as tx:
        with pytest.raises(NaiveDatetime):
            tx.add_outbox([naive])
        with pytest.raises(StoreError, match="cannot write case 'c1'"):
            tx.update_case(*_next(case, event), claim=foreign)


def _next(case: Case, event: AuditEvent) -> tuple[Case, int, AuditEvent]:
    new, new_event = revise(case, event)
    return new, case.version, new_event
