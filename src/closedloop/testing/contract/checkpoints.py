"""Contract: signed checkpoints of audit heads (the ``CheckpointStore`` port).

Not part of the CaseStore port: a store that keeps checkpoints subclasses
:class:`CheckpointContract` too. The suite stores checkpoints as given; signing them
is the engine's business, so the signatures here are placeholders.
"""

from __future__ import annotations

from typing import Any

import pytest

from closedloop.engine.audit import GENESIS
from closedloop.engine.ports import CaseHead, Checkpoint, CheckpointStore
from closedloop.errors import CheckpointTaken
from closedloop.testing.contract.base import T0, StoreFactory, StoreFixtures, add, commit, revise


def _checkpoint(number: int, *heads: CaseHead) -> Checkpoint:
    return Checkpoint(
        number=number,
        made_at=T0,
        previous=GENESIS if number == 1 else f"{number - 1:064x}",
        heads=heads,
        signature=f"{number:064x}",
    )


class CheckpointContract(StoreFixtures):
    """Unsigned heads, stored checkpoints and each case's anchor."""

    def test_the_store_is_a_checkpoint_store(self, store: Any) -> None:
        assert isinstance(store, CheckpointStore)

    def test_an_empty_store_has_no_heads_and_no_checkpoints(self, store: Any) -> None:
        assert store.unanchored_heads(limit=10) == []
        assert store.last_checkpoint() is None
        assert store.checkpoints() == []
        assert store.anchor("a") is None

    def test_every_case_never_checkpointed_has_its_head_listed_oldest_first(
        self, store: Any
    ) -> None:
        heads = []
        for case_id in ("b", "a", "c"):
            _, event = add(store, case_id)
            heads.append(CaseHead(case_id=case_id, seq=1, hash=event.hash))
        assert store.unanchored_heads(limit=10) == heads
        assert store.unanchored_heads(limit=2) == heads[:2]

    def test_a_checkpoint_anchors_its_cases_until_they_change(self, stores: StoreFactory) -> None:
        store: Any = stores()
        case, first = add(store, "a")
        _, other = add(store, "b")
        stored = _checkpoint(1, CaseHead(case_id="a", seq=1, hash=first.hash))
        store.add_checkpoint(stored)
        reopened: Any = stores()  # another store object over the same database
        assert reopened.last_checkpoint() == stored
        assert reopened.anchor("a") == 1
        assert reopened.anchor("b") is None
        assert reopened.unanchored_heads(limit=10) == [
            CaseHead(case_id="b", seq=1, hash=other.hash)
        ]
        case, second = revise(case, first, state="next")
        commit(store, lambda tx: tx.update_case(case, 1, second))
        assert [h.case_id for h in reopened.unanchored_heads(limit=10)] == ["a", "b"]
        assert reopened.unanchored_heads(limit=1) == [
            CaseHead(case_id="a", seq=2, hash=second.hash)
        ]

    def test_a_later_checkpoint_moves_the_anchor(self, store: Any) -> None:
        case, first = add(store, "a")
        store.add_checkpoint(_checkpoint(1, CaseHead(case_id="a", seq=1, hash=first.hash)))
        case, second = revise(case, first, state="next")
        commit(store, lambda tx: tx.update_case(case, 1, second))
        store.add_checkpoint(_checkpoint(2, CaseHead(case_id="a", seq=2, hash=second.hash)))
        assert store.anchor("a") == 2
        assert store.unanchored_heads(limit=10) == []
        assert [c.number for c in store.checkpoints()] == [1, 2]
        assert [c.number for c in store.checkpoints(after=1)] == [2]
        assert [c.number for c in store.checkpoints(limit=1)] == [1]

    def test_a_taken_number_is_refused_and_writes_nothing(self, store: Any) -> None:
        _, first = add(store, "a")
        _, other = add(store, "b")
        kept = _checkpoint(1, CaseHead(case_id="a", seq=1, hash=first.hash))
        store.add_checkpoint(kept)
        with pytest.raises(CheckpointTaken) as taken:
            store.add_checkpoint(_checkpoint(1, CaseHead(case_id="b", seq=1, hash=other.hash)))
        assert taken.value.number == 1
        assert store.checkpoints() == [kept]
        assert store.anchor("b") is None

    def test_signed_anchors_come_from_the_checkpoints_own_heads(self, store: Any) -> None:
        _, first = add(store, "a")
        _, other = add(store, "b")
        add(store, "c")
        store.add_checkpoint(_checkpoint(1, CaseHead(case_id="a", seq=1, hash=first.hash)))
        store.add_checkpoint(
            _checkpoint(
                2,
                CaseHead(case_id="b", seq=1, hash=other.hash),
                CaseHead(case_id="a", seq=1, hash=first.hash),
            )
        )
        store.add_checkpoint(_checkpoint(3, CaseHead(case_id="b", seq=1, hash=other.hash)))
        assert store.signed_anchors(["a", "b", "c", "nobody"]) == {"a": 2, "b": 3}
        assert store.signed_anchors([]) == {}
