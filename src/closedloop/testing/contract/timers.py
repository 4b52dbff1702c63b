"""Contract: timers: each case's earliest timer instant, claims with leases, takeover."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from closedloop.engine.ports import CaseStore, TimerClaim
from closedloop.errors import ConcurrentModification, LeaseLost, NaiveDatetime, ValidationError
from closedloop.testing.contract.base import LEASE, T0, StoreFixtures, commit, revise, timed

HOUR = timedelta(hours=1)


def _claim(store: CaseStore, now: datetime, owner: str = "w1") -> list[TimerClaim]:
    return store.claim_due(now, owner=owner, lease=LEASE, limit=10)


class DuePointContract(StoreFixtures):
    """Durable timers: a case's earliest timer instant is kept with the case, and a
    ticker's claim on the case is a lease that a crashed holder loses."""

    def test_the_earliest_instant_is_written_with_the_case(self, store: CaseStore) -> None:
        case, event = timed(store, "c1", T0 + HOUR)
        timed(store, "c2", None)
        assert store.next_due_at() == T0 + HOUR
        later, moved = revise(case, event)
        commit(store, lambda tx: tx.update_case(later, 1, moved, next_timer_at=T0 + 2 * HOUR))
        assert store.next_due_at() == T0 + 2 * HOUR
        final, closed = revise(later, moved)
        commit(store, lambda tx: tx.update_case(final, 2, closed))  # no timer left
        assert store.next_due_at() is None
        assert _claim(store, T0 + 10 * HOUR) == []

    def test_the_instant_is_only_written_on_commit(self, store: CaseStore) -> None:
        case, event = timed(store, "c1", None)
        with store.transaction() as tx:
            later, next_event = revise(case, event)
            tx.update_case(later, 1, next_event, next_timer_at=T0)
        assert store.next_due_at() is None
        assert _claim(store, T0) == []

    def test_a_claim_takes_the_due_cases_earliest_first_up_to_the_limit(
        self, store: CaseStore
    ) -> None:
        for k in reversed(range(4)):
            timed(store, f"c{k}", T0 + k * HOUR)
        claimed = store.claim_due(T0 + 2 * HOUR, owner="w1", lease=LEASE, limit=2)
        assert [(c.case_id, c.next_timer_at) for c in claimed] == [("c0", T0), ("c1", T0 + HOUR)]
        assert {c.owner for c in claimed} == {"w1"}
        assert all(c.token and c.expires_at == T0 + 2 * HOUR + LEASE for c in claimed)
        rest = _claim(store, T0 + 2 * HOUR, owner="w2")
        assert [c.case_id for c in rest] == ["c2"]  # c3 is not due yet
        assert store.next_due_at() == T0  # a leased case keeps its instant

    def test_a_held_lease_is_not_claimed_again_until_it_expires(self, store: CaseStore) -> None:
        timed(store, "c1", T0)
        (first,) = _claim(store, T0)
        assert _claim(store, T0 + LEASE - timedelta(seconds=1), owner="w2") == []
        (taken,) = _claim(store, T0 + LEASE, owner="w2")
        assert (taken.case_id, taken.owner) == ("c1", "w2")
        assert taken.token != first.token

    def test_a_write_under_the_claim_ends_the_lease(self, store: CaseStore) -> None:
        case, event = timed(store, "c1", T0)
        (claim,) = _claim(store, T0)
        later, next_event = revise(case, event)
        commit(
            store,
            lambda tx: tx.update_case(later, 1, next_event, next_timer_at=T0, claim=claim),
        )
        (again,) = _claim(store, T0, owner="w2")  # no lease left: claimable at once
        assert again.token != claim.token
        last, last_event = revise(later, next_event)
        with pytest.raises(LeaseLost) as raised:  # the ended claim holds nothing
            commit(store, lambda tx: tx.update_case(last, 2, last_event, claim=claim))
        assert raised.value.item_id == "c1"

    def test_a_stale_holder_loses_its_lease(self, store: CaseStore) -> None:
        case, event = timed(store, "c1", T0)
        (stale,) = _claim(store, T0)
        (current,) = _claim(store, T0 + LEASE, owner="w2")
        later, next_event = revise(case, event)
        with pytest.raises(LeaseLost):
            commit(store, lambda tx: tx.update_case(later, 1, next_event, claim=stale))
        with pytest.raises(LeaseLost):
            commit(store, lambda tx: tx.release_claim(stale, version=1, next_timer_at=None))
        commit(store, lambda tx: tx.update_case(later, 1, next_event, claim=current))

    def test_a_write_under_the_claim_is_undone_with_its_transaction(self, store: CaseStore) -> None:
        case, event = timed(store, "c1", T0)
        (claim,) = _claim(store, T0)
        with store.transaction() as tx:
            later, next_event = revise(case, event)
            tx.update_case(later, 1, next_event, claim=claim)
        assert _claim(store, T0, owner="w2") == []  # still leased
        (again,) = _claim(store, T0 + LEASE, owner="w2")
        assert again.next_timer_at == T0

    def test_a_write_without_the_claim_keeps_the_lease(self, store: CaseStore) -> None:
        case, event = timed(store, "c1", T0)
        (claim,) = _claim(store, T0)
        soon = T0 + LEASE / 2
        later, next_event = revise(case, event)  # a command, moving the timer on
        commit(store, lambda tx: tx.update_case(later, 1, next_event, next_timer_at=soon))
        assert _claim(store, soon, owner="w2") == []  # still leased
        with pytest.raises(ConcurrentModification):  # released as of the version it read
            commit(store, lambda tx: tx.release_claim(claim, version=1, next_timer_at=T0))
        commit(store, lambda tx: tx.release_claim(claim, version=2, next_timer_at=soon))
        assert store.next_due_at() == soon
        (again,) = _claim(store, soon, owner="w2")
        assert again.next_timer_at == soon

    def test_releasing_sets_the_instant_and_ends_the_lease(self, store: CaseStore) -> None:
        timed(store, "c1", T0)
        (claim,) = _claim(store, T0)
        commit(store, lambda tx: tx.release_claim(claim, version=1, next_timer_at=T0 + HOUR))
        assert store.next_due_at() == T0 + HOUR
        assert _claim(store, T0 + HOUR - timedelta(seconds=1)) == []
        (again,) = _claim(store, T0 + HOUR, owner="w2")
        assert again.case_id == "c1"

    def test_holding_a_claim_again_keeps_the_case_leased(self, store: CaseStore) -> None:
        case, event = timed(store, "c1", T0)
        (claim,) = _claim(store, T0)
        later, next_event = revise(case, event)
        commit(
            store,
            lambda tx: tx.update_case(later, 1, next_event, next_timer_at=T0, claim=claim),
            lambda tx: tx.hold_claim(claim, version=2),
        )
        assert _claim(store, T0, owner="w2") == []
        (again,) = _claim(store, claim.expires_at, owner="w2")
        assert again.owner == "w2"

    def test_claim_arguments_are_checked(self, store: CaseStore) -> None:
        with pytest.raises(NaiveDatetime):
            store.claim_due(datetime(2026, 1, 5, 9), owner="w1", lease=LEASE, limit=1)
        with pytest.raises(ValidationError):
            store.claim_due(T0, owner="w1", lease=timedelta(0), limit=1)
        with pytest.raises(ValidationError):
            store.claim_due(T0, owner="w1", lease=LEASE, limit=0)

    def test_a_naive_timer_instant_is_rejected(self, store: CaseStore) -> None:
        with pytest.raises(NaiveDatetime):
            timed(store, "c1", datetime(2026, 1, 5))
