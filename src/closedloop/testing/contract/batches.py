"""Contract: batches: many cases read at once, writes held back and sent together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from closedloop.engine.ports import CaseBatches, CaseStore, CaseTransaction, TimerClaim
from closedloop.errors import ConcurrentModification, LeaseLost, StoreError
from closedloop.testing.contract.base import (
    LEASE,
    T0,
    StoreFixtures,
    commit,
    message,
    revise,
    timed,
    version_of,
)


def _batches(tx: CaseTransaction) -> CaseBatches:
    assert isinstance(tx, CaseBatches), "the store's transactions are not CaseBatches"
    return tx


def _batched(store: CaseStore, *writes: Callable[[CaseTransaction], object]) -> None:
    """Make ``writes`` in one batched_writes block of a transaction, and commit it."""
    with store.transaction() as tx:
        with _batches(tx).batched_writes():
            for write in writes:
                write(tx)
        tx.commit()


def _seqs(store: CaseStore, case_id: str) -> list[int]:
    with store.transaction(read_only=True) as tx:
        return [event.seq for event in tx.get_events(case_id)]


def _claims(store: CaseStore, count: int) -> dict[str, TimerClaim]:
    claimed = store.claim_due(T0, owner="w1", lease=LEASE, limit=count)
    return {claim.case_id: claim for claim in claimed}


class CaseBatchContract(StoreFixtures):
    """The optional :class:`~closedloop.engine.ports.CaseBatches` port: a batch's cases
    read with one call, each as ``get_case`` reads it, and writes made in a
    ``batched_writes`` block kept, checked and undone exactly as if each went alone."""

    def test_cases_read_at_once_are_those_read_one_by_one(self, store: CaseStore) -> None:
        for k in range(3):
            timed(store, f"c{k}", T0)
        with store.transaction() as tx:
            found = _batches(tx).get_cases(["c2", "nope", "c0", "c2"])
            assert sorted(found) == ["c0", "c2"]
            assert found == {"c0": tx.get_case("c0"), "c2": tx.get_case("c2")}
            assert _batches(tx).get_cases([]) == {}

    def test_batched_writes_are_kept_and_end_their_claims(self, store: CaseStore) -> None:
        firsts = [timed(store, f"c{k}", T0) for k in range(3)]
        claims = _claims(store, 3)
        with store.transaction() as tx:
            with _batches(tx).batched_writes():
                for case, event in firsts:
                    later, moved = revise(case, event)
                    tx.update_case(later, 1, moved, next_timer_at=None, claim=claims[case.id])
                    again, last = revise(later, moved)  # a second change of the same case
                    tx.update_case(again, 2, last, next_timer_at=T0 + LEASE)
                    tx.add_outbox([message(f"m-{case.id}", case.id)])
                    assert tx.get_case(case.id) == again  # a read sees what was held back
            tx.commit()
        for case, _ in firsts:
            assert version_of(store, case.id) == 3
            assert _seqs(store, case.id) == [1, 2, 3]
        assert store.next_due_at() == T0 + LEASE
        sent = store.claim_outbox(T0, owner="w", lease=LEASE, limit=10)
        assert sorted(m.id for m in sent) == ["m-c0", "m-c1", "m-c2"]
        assert len(_claims(store, 3)) == 0  # not due before T0 + LEASE
        later_claims = store.claim_due(T0 + LEASE, owner="w2", lease=LEASE, limit=3)
        assert len(later_claims) == 3  # no lease left

    def test_a_stale_write_in_a_batch_fails_it_and_writes_nothing(self, store: CaseStore) -> None:
        firsts = [timed(store, f"c{k}", T0) for k in range(2)]
        (case, event), (other, other_event) = firsts
        moved_on, moved_event = revise(other, other_event, description="changed meanwhile")
        with store.transaction() as tx:  # another writer moves c1 on
            tx.update_case(moved_on, 1, moved_event)
            tx.commit()
        later, moved = revise(case, event)
        stale, stale_event = revise(other, other_event)
        with pytest.raises(ConcurrentModification) as raised:
            _batched(
                store,
                lambda tx: tx.update_case(later, 1, moved),
                lambda tx: tx.update_case(stale, 1, stale_event),
            )
        assert (raised.value.case_id, raised.value.expected) == ("c1", 1)
        assert version_of(store, "c0") == 1
        assert _seqs(store, "c0") == [1]

    def test_a_stale_write_fails_on_its_own_check_whatever_the_others_set(
        self, store: CaseStore
    ) -> None:
        firsts = [timed(store, f"c{k}", T0) for k in range(2)]
        (case, event), (other, other_event) = firsts
        moved_on, moved_event = revise(other, other_event, description="changed meanwhile")
        commit(store, lambda tx: tx.update_case(moved_on, 1, moved_event))
        later, moved = revise(case, event, description="mine")
        stale, stale_event = revise(other, other_event, description="stale")

        def read_one_then_batch() -> None:
            with store.transaction() as tx:
                _batches(tx).get_cases(["c0"])  # read: its write may set fewer columns
                with _batches(tx).batched_writes():
                    tx.update_case(later, 1, moved)
                    tx.update_case(stale, 1, stale_event)
                tx.commit()

        with pytest.raises(ConcurrentModification) as raised:
            read_one_then_batch()
        assert (raised.value.case_id, raised.value.expected) == ("c1", 1)
        assert (version_of(store, "c0"), _seqs(store, "c0")) == (1, [1])
        assert (version_of(store, "c1"), _seqs(store, "c1")) == (2, [1, 2])

    def test_a_transaction_whose_batch_failed_cannot_commit(self, store: CaseStore) -> None:
        (case, event), (other, other_event) = [timed(store, f"c{k}", T0) for k in range(2)]
        claims = _claims(store, 2)
        store.claim_due(T0 + LEASE, owner="w2", lease=LEASE, limit=2)  # both taken over
        later, moved = revise(case, event)
        stale, stale_event = revise(other, other_event)

        def batch(tx: CaseTransaction) -> None:
            with _batches(tx).batched_writes():
                tx.update_case(later, 1, moved)  # no claim: it would match
                tx.update_case(stale, 1, stale_event, claim=claims["c1"])

        with store.transaction() as tx:
            with pytest.raises(LeaseLost):
                batch(tx)
            with pytest.raises(StoreError, match="cannot commit"):
                tx.commit()
        for case_id in ("c0", "c1"):
            assert (version_of(store, case_id), _seqs(store, case_id)) == (1, [1])
        again, again_event = revise(other, other_event, description="the next command")
        commit(store, lambda tx: tx.update_case(again, 1, again_event))
        assert _seqs(store, "c1") == [1, 2]

    def test_a_lost_lease_in_a_batch_fails_it_and_writes_nothing(self, store: CaseStore) -> None:
        case, event = timed(store, "c0", T0)
        (stale,) = _claims(store, 1).values()
        store.claim_due(T0 + LEASE, owner="w2", lease=LEASE, limit=1)  # taken over
        later, moved = revise(case, event)
        with pytest.raises(LeaseLost):
            _batched(store, lambda tx: tx.update_case(later, 1, moved, claim=stale))
        assert version_of(store, "c0") == 1
        still = T0 + LEASE + timedelta(seconds=1)  # w2's lease holds: nothing ended it
        assert store.claim_due(still, owner="w3", lease=LEASE, limit=1) == []
