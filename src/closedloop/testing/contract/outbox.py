"""Contract: the transactional outbox: claims, attempts, stale finishes, dead letters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from closedloop.engine.ports import CaseStore
from closedloop.errors import ConcurrentModification, MessageNotFound
from closedloop.testing.contract.base import (
    LEASE,
    T0,
    StoreFixtures,
    add,
    commit,
    message,
    new_case,
    post,
)


class OutboxContract(StoreFixtures):
    """Notifications exist if and only if their transaction committed, and retry safely."""

    def test_messages_exist_only_if_their_transaction_commits(self, store: CaseStore) -> None:
        case, event = new_case("c1")
        with store.transaction() as tx:
            tx.add_case(case, None, event)
            tx.add_outbox([message("m1", "c1")])
        assert store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10) == []
        with store.transaction() as tx:
            tx.add_case(case, None, event)
            tx.add_outbox([message("m1", "c1")])
            tx.commit()
        (claimed,) = store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10)
        leased = {"attempts", "lease_owner", "lease_expires_at", "lease_token"}
        assert claimed.model_dump(exclude=leased) == message("m1", "c1").model_dump(exclude=leased)

    def test_a_claim_counts_the_attempt_and_holds_a_lease(self, store: CaseStore) -> None:
        post(store, message("m1", None), message("m2", None, at=T0 + timedelta(hours=1)))
        (claimed,) = store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10)
        assert (claimed.id, claimed.attempts, claimed.lease_owner) == ("m1", 1, "w1")
        assert store.claim_outbox(T0, owner="w2", lease=LEASE, limit=10) == []
        (again,) = store.claim_outbox(T0 + LEASE, owner="w2", lease=LEASE, limit=1)
        assert (again.id, again.attempts) == ("m1", 2)

    def test_a_delivered_message_is_not_claimed_again(self, store: CaseStore) -> None:
        post(store, message("m1", None))
        (claimed,) = store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10)
        assert store.finish_outbox(claimed, status="delivered") is True
        assert store.claim_outbox(T0 + 10 * LEASE, owner="w1", lease=LEASE, limit=10) == []

    def test_a_finish_with_a_stale_token_changes_nothing(self, store: CaseStore) -> None:
        post(store, message("m1", None))
        (stale,) = store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10)
        (current,) = store.claim_outbox(T0 + LEASE, owner="w2", lease=LEASE, limit=10)
        assert store.finish_outbox(stale, status="delivered") is False
        assert store.finish_outbox(current, status="delivered") is True
        assert store.finish_outbox(current, status="dead", error="late") is False
        assert store.dead_letters() == []

    def test_a_failed_attempt_is_retried_when_due(self, store: CaseStore) -> None:
        post(store, message("m1", None))
        (first,) = store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10)
        retry_at = T0 + timedelta(minutes=1)
        assert store.finish_outbox(first, status="pending", error="503", next_attempt_at=retry_at)
        early = retry_at - timedelta(seconds=1)
        assert store.claim_outbox(early, owner="w1", lease=LEASE, limit=10) == []
        (second,) = store.claim_outbox(retry_at, owner="w1", lease=LEASE, limit=10)
        assert (second.attempts, second.last_error) == (2, "503")

    def test_dead_letters_can_be_requeued(self, store: CaseStore) -> None:
        post(store, message("m1", None), message("m2", None))
        for claimed in store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10):
            store.finish_outbox(claimed, status="dead", error="gone")
        dead = store.dead_letters()
        assert [(m.id, m.status, m.last_error) for m in dead] == [
            ("m1", "dead", "gone"),
            ("m2", "dead", "gone"),
        ]
        assert [m.id for m in store.dead_letters(limit=1)] == ["m1"]
        later = T0 + timedelta(days=1)
        store.requeue("m1", now=later)
        assert [m.id for m in store.dead_letters()] == ["m2"]
        (again,) = store.claim_outbox(later, owner="w1", lease=LEASE, limit=10)
        assert (again.id, again.attempts) == ("m1", 1)

    def test_disabled_messages_are_listed_with_dead_letters_and_can_be_requeued(
        self, store: CaseStore
    ) -> None:
        post(store, message("m1", None), message("m2", None), message("m3", None))
        m1, m2, m3 = store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10)
        store.finish_outbox(m1, status="disabled", error="410")
        store.finish_outbox(m2, status="dead", error="500")
        store.finish_outbox(m3, status="delivered")
        assert [(m.id, m.status, m.last_error) for m in store.dead_letters()] == [
            ("m1", "disabled", "410"),
            ("m2", "dead", "500"),
        ]
        later = T0 + timedelta(days=1)
        store.requeue("m1", now=later)
        assert [m.id for m in store.dead_letters()] == ["m2"]
        (again,) = store.claim_outbox(later, owner="w1", lease=LEASE, limit=10)
        assert (again.id, again.attempts) == ("m1", 1)
        with pytest.raises(MessageNotFound):
            store.requeue("m3", now=later)  # delivered: nothing to requeue

    def test_requeueing_what_is_not_a_dead_letter_is_not_found(self, store: CaseStore) -> None:
        post(store, message("m1", None))
        with pytest.raises(MessageNotFound):
            store.requeue("m1", now=T0)
        with pytest.raises(LookupError):
            store.requeue("nope", now=T0)

    def test_a_duplicate_message_id_fails_the_transaction(self, store: CaseStore) -> None:
        add(store, "c1")
        post(store, message("m1", "c1"))
        with pytest.raises(ConcurrentModification):
            commit(store, lambda tx: tx.add_outbox([message("m2", "c1"), message("m1", "c1")]))
        (only,) = store.claim_outbox(T0, owner="w1", lease=LEASE, limit=10)
        assert only.id == "m1"
