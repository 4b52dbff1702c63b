"""Contract: recent cases: a case handed out from memory is checked when it is written."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from closedloop.engine.ports import CaseStore, CaseTransaction, RecentCases
from closedloop.errors import ConcurrentModification, StoreError
from closedloop.testing.contract.base import (
    StoreFactory,
    StoreFixtures,
    add,
    commit,
    read,
    revise,
    version_of,
)


def _recent(tx: CaseTransaction) -> RecentCases:
    assert isinstance(tx, RecentCases), "the store's transactions are not RecentCases"
    return tx


def commit_after(tx: CaseTransaction, write: Callable[[], object]) -> None:
    """Make ``write`` in ``tx`` and commit it."""
    write()
    tx.commit()


class RecentCasesContract(StoreFixtures):
    """The optional :class:`~closedloop.engine.ports.RecentCases` port: ``recent_case``
    gives the case ``get_case`` would, or one from memory (and says so) that the store
    checks as it is written (the update fails) or, when not written, at commit.

    The suite changes a case through a second store object over the same database
    (``make_store`` as a fixture opening one per call, or ``reopen_store``), as another
    process would: each store object must hold its own memory, or the checks a stale
    case needs are never exercised."""

    def _two(self, stores: StoreFactory) -> tuple[CaseStore, CaseStore]:
        store, other = stores(), stores()
        if other is store:
            pytest.fail(
                "RecentCasesContract needs a second store object over the same database, "
                "as another process would open: make make_store a fixture returning a "
                "function that opens one per call, or define reopen_store"
            )
        return store, other

    def test_a_case_is_handed_out_as_get_case_gives_it(self, store: CaseStore) -> None:
        case, event = add(store, "c1")
        new, new_event = revise(case, event, state="classified")
        commit(store, lambda tx: tx.update_case(new, 1, new_event))
        for _ in range(2):  # once as committed, once as read
            recent, _from_memory = read(store, lambda tx: _recent(tx).recent_case("c1"))
            assert recent == read(store, lambda tx: tx.get_case("c1"))
            assert recent is not None
            assert recent.version == 2
        assert read(store, lambda tx: _recent(tx).recent_case("nope"))[0] is None
        # Written in this transaction: handed out as written, as get_case would.
        later, later_event = revise(new, new_event, state="assigned")
        with store.transaction() as tx:
            tx.update_case(later, 2, later_event)
            recent, _from_memory = _recent(tx).recent_case("c1")
            assert recent == tx.get_case("c1")
            assert recent is not None
            assert recent.version == 3

    def test_a_transaction_that_has_ended_hands_out_nothing(self, store: CaseStore) -> None:
        add(store, "c1")
        assert read(store, lambda tx: tx.get_case("c1")) is not None  # seen here
        with store.transaction() as tx:
            tx.commit()
        try:  # refused, as get_case may refuse it, or at least not from memory
            _case, from_memory = _recent(tx).recent_case("c1")
        except StoreError:
            return
        assert not from_memory, "an ended transaction handed out a case from memory"

    def test_an_update_of_a_case_changed_elsewhere_fails_and_writes_nothing(
        self, stores: StoreFactory
    ) -> None:
        store, other = self._two(stores)
        case, event = add(store, "c1")
        assert read(store, lambda tx: tx.get_case("c1")) is not None  # seen here
        moved, moved_event = revise(case, event, state="classified")
        commit(other, lambda tx: tx.update_case(moved, 1, moved_event))
        with store.transaction() as tx:
            held, from_memory = _recent(tx).recent_case("c1")
            assert held is not None
            if not from_memory:  # the engine retries only a command that read from memory
                assert held.version == 2, "a case not from memory must be the stored one"
            elif held.version == 1:  # from memory, out of date: its update must fail
                stale, stale_event = revise(held, event, state="cancelled")
                with pytest.raises(ConcurrentModification):  # at the update or at commit
                    commit_after(tx, lambda: tx.update_case(stale, 1, stale_event))
        assert version_of(store, "c1") == 2
        assert [e.trigger for e in read(store, lambda tx: tx.get_events("c1"))] == [
            "report",
            "revise",
        ]

    def test_a_case_handed_out_from_memory_and_not_written_is_checked_at_commit(
        self, stores: StoreFactory
    ) -> None:
        store, other = self._two(stores)
        case, event = add(store, "c1")
        second, second_event = add(store, "c2")
        moved, moved_event = revise(case, event, state="classified")
        with store.transaction() as tx:
            held, from_memory = _recent(tx).recent_case("c1")
            assert held is not None
            assert held.version == 1
            commit(other, lambda tx2: tx2.update_case(moved, 1, moved_event))
            later, later_event = revise(second, second_event, state="classified")
            if from_memory:  # handed out from memory, now out of date: the commit fails
                with pytest.raises(ConcurrentModification):
                    commit_after(tx, lambda: tx.update_case(later, 1, later_event))
                assert version_of(store, "c2") == 1
