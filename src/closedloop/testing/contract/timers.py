"""Contract: due points: scheduling, claims with leases, takeover and completion."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from closedloop.engine.ports import CaseStore
from closedloop.errors import LeaseLost, NaiveDatetime, ValidationError
from closedloop.testing.contract.base import (
    LEASE,
    T0,
    StoreFixtures,
    add,
    commit,
    due_point,
    read,
    schedule,
)

HOUR = timedelta(hours=1)


class DuePointContract(StoreFixtures):
    """Durable timers: each fires once, under a lease that a crashed holder loses."""

    def test_replacing_due_points_keeps_exactly_the_new_ones(self, store: CaseStore) -> None:
        add(store, "c1")
        a, b, c = (due_point("c1", n, T0 + k * HOUR) for k, n in enumerate("abc", 1))
        schedule(store, "c1", b, a)
        assert read(store, lambda tx: tx.get_due_points("c1")) == [a, b]
        schedule(store, "c1", b, c)
        assert read(store, lambda tx: tx.get_due_points("c1")) == [b, c]
        assert store.next_due_at() == b.due_at
        schedule(store, "c1")
        assert read(store, lambda tx: tx.get_due_points("c1")) == []
        assert store.next_due_at() is None

    def test_due_points_are_only_scheduled_on_commit(self, store: CaseStore) -> None:
        add(store, "c1")
        with store.transaction() as tx:
            tx.replace_due_points("c1", [due_point("c1", "a", T0)])
            assert [p.id for p in tx.get_due_points("c1")] == ["c1/a"]
        assert read(store, lambda tx: tx.get_due_points("c1")) == []
        assert store.claim_due(T0, owner="w1", lease=LEASE, limit=10) == []

    def test_a_claim_takes_what_is_due_earliest_first_up_to_the_limit(
        self, store: CaseStore
    ) -> None:
        add(store, "c1")
        points = [due_point("c1", f"p{k}", T0 + k * HOUR) for k in range(4)]
        schedule(store, "c1", *reversed(points))
        claimed = store.claim_due(T0 + 2 * HOUR, owner="w1", lease=LEASE, limit=2)
        assert [p.id for p in claimed] == ["c1/p0", "c1/p1"]
        assert {p.lease_owner for p in claimed} == {"w1"}
        assert all(p.lease_token and p.lease_expires_at == T0 + 2 * HOUR + LEASE for p in claimed)
        rest = store.claim_due(T0 + 2 * HOUR, owner="w2", lease=LEASE, limit=10)
        assert [p.id for p in rest] == ["c1/p2"]  # p3 is not due yet

    def test_a_held_lease_is_not_claimed_again_until_it_expires(self, store: CaseStore) -> None:
        add(store, "c1")
        schedule(store, "c1", due_point("c1", "a", T0))
        (first,) = store.claim_due(T0, owner="w1", lease=LEASE, limit=10)
        early = T0 + LEASE - timedelta(seconds=1)
        assert store.claim_due(early, owner="w2", lease=LEASE, limit=10) == []
        (taken,) = store.claim_due(T0 + LEASE, owner="w2", lease=LEASE, limit=10)
        assert (taken.id, taken.lease_owner) == (first.id, "w2")
        assert taken.lease_token != first.lease_token

    def test_completing_with_the_current_token_fires_the_point_once(self, store: CaseStore) -> None:
        add(store, "c1")
        point = due_point("c1", "a", T0)
        schedule(store, "c1", point)
        (claimed,) = store.claim_due(T0, owner="w1", lease=LEASE, limit=10)
        with store.transaction() as tx:
            tx.complete_due(claimed)
            assert tx.get_due_points("c1") == []
            tx.commit()
        later = T0 + 10 * LEASE
        assert store.claim_due(later, owner="w2", lease=LEASE, limit=10) == []
        schedule(store, "c1", point)  # rescheduling a fired point does not revive it
        assert read(store, lambda tx: tx.get_due_points("c1")) == []
        assert store.claim_due(later, owner="w2", lease=LEASE, limit=10) == []

    def test_a_stale_holder_completing_loses_its_lease(self, store: CaseStore) -> None:
        add(store, "c1")
        schedule(store, "c1", due_point("c1", "a", T0))
        (stale,) = store.claim_due(T0, owner="w1", lease=LEASE, limit=10)
        (current,) = store.claim_due(T0 + LEASE, owner="w2", lease=LEASE, limit=10)
        with pytest.raises(LeaseLost) as raised:
            commit(store, lambda tx: tx.complete_due(stale))
        assert raised.value.item_id == "c1/a"
        commit(store, lambda tx: tx.complete_due(current))
        with pytest.raises(LeaseLost):  # a second acknowledgement finds it done
            commit(store, lambda tx: tx.complete_due(current))

    def test_a_completion_is_undone_with_its_transaction(self, store: CaseStore) -> None:
        add(store, "c1")
        schedule(store, "c1", due_point("c1", "a", T0))
        (claimed,) = store.claim_due(T0, owner="w1", lease=LEASE, limit=10)
        with store.transaction() as tx:
            tx.complete_due(claimed)
        (again,) = store.claim_due(T0 + LEASE, owner="w2", lease=LEASE, limit=10)
        assert again.id == claimed.id

    def test_rescheduling_keeps_the_lease_of_a_held_point(self, store: CaseStore) -> None:
        add(store, "c1")
        point = due_point("c1", "a", T0)
        schedule(store, "c1", point)
        (claimed,) = store.claim_due(T0, owner="w1", lease=LEASE, limit=10)
        schedule(store, "c1", point, due_point("c1", "b", T0 + HOUR))
        (held,) = [p for p in read(store, lambda tx: tx.get_due_points("c1")) if p.id == point.id]
        assert held.lease_token == claimed.lease_token
        with store.transaction() as tx:
            tx.complete_due(claimed)
            tx.commit()

    def test_dropping_a_held_point_makes_its_completion_lose(self, store: CaseStore) -> None:
        add(store, "c1")
        schedule(store, "c1", due_point("c1", "a", T0))
        (claimed,) = store.claim_due(T0, owner="w1", lease=LEASE, limit=10)
        schedule(store, "c1", due_point("c1", "b", T0 + HOUR))
        with pytest.raises(LeaseLost):
            commit(store, lambda tx: tx.complete_due(claimed))

    def test_claim_arguments_are_checked(self, store: CaseStore) -> None:
        with pytest.raises(NaiveDatetime):
            store.claim_due(datetime(2026, 1, 5, 9), owner="w1", lease=LEASE, limit=1)
        with pytest.raises(ValidationError):
            store.claim_due(T0, owner="w1", lease=timedelta(0), limit=1)
        with pytest.raises(ValidationError):
            store.claim_due(T0, owner="w1", lease=LEASE, limit=0)

    def test_a_naive_due_instant_is_rejected(self, store: CaseStore) -> None:
        add(store, "c1")
        naive = due_point("c1", "a", T0).model_copy(update={"due_at": datetime(2026, 1, 5)})
        with pytest.raises(NaiveDatetime):
            commit(store, lambda tx: tx.replace_due_points("c1", [naive]))
