"""Anchored audit trails: a trail cut back and its case rolled back is caught by a
checkpoint; an edited queryable column is caught by ``verify`` on its own.

The attacker here can write the database: they delete a case's last events and put the
case row back as those events replay to, so every hash still links and the replay
matches. Without a checkpoint that verifies; with one it does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, update

from closedloop import Engine, ValidationError, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.adapters.sqlalchemy.rows import case_values
from closedloop.adapters.sqlalchemy.schema import case_anchors, case_events, cases, checkpoints
from closedloop.engine import audit
from closedloop.errors import CheckpointRefused, StoreError
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER
from tests.conftest import new_schema, postgres_url

KEY = b"a host key of thirty-two bytes!!"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SQLStore:
    if request.param == "sqlite":
        return SQLStore(f"sqlite:///{tmp_path / 'anchored.db'}")
    return SQLStore(postgres_url(), schema=new_schema())


def engine_on(store: SQLStore | InMemoryStore, key: bytes | None = KEY) -> Engine:
    return Engine(workflows.standard(), store=store, clock=ManualClock(), checkpoint_key=key)


def accepted(engine: Engine) -> str:
    """A case at version 4: reported, classified, dispatched, accepted."""
    case = engine.report(CITIZEN, description="Water main leaking", location={"area": "310101"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    return engine.trigger(case.id, "accept", by=WATER).id


def cut_back(store: SQLStore, case_id: str, keep: int) -> None:
    """Delete the trail's events after ``keep`` and roll the case row back to match."""
    with store.transaction(read_only=True) as tx:
        events = tx.get_events(case_id)[:keep]
    rolled = audit.replay(events)
    with store.engine.begin() as conn:
        conn.execute(
            delete(case_events).where(case_events.c.case_id == case_id, case_events.c.seq > keep)
        )
        values = {k: v for k, v in case_values(rolled).items() if k != "id"}
        conn.execute(update(cases).where(cases.c.id == case_id).values(values))


def test_a_cut_back_trail_verifies_without_a_checkpoint(store: SQLStore) -> None:
    engine = engine_on(store)
    case_id = accepted(engine)
    cut_back(store, case_id, keep=2)
    assert engine.verify(case_id).ok  # the chain proves order, not completeness
    store.close()


def test_a_checkpoint_catches_a_trail_cut_back_before_its_head(store: SQLStore) -> None:
    engine = engine_on(store)
    case_id = accepted(engine)
    made = engine.checkpoint()
    assert made is not None
    assert [(h.case_id, h.seq) for h in made.heads] == [(case_id, 4)]
    assert engine.verify(case_id).ok
    cut_back(store, case_id, keep=2)
    report = engine.verify(case_id)
    assert not report.ok
    assert report.problems == (
        "the trail has 2 events but checkpoint 1 signed event 4 (events were removed from its end)",
    )
    store.close()


def test_a_checkpoint_catches_a_rewritten_head(store: SQLStore) -> None:
    engine = engine_on(store)
    case_id = accepted(engine)
    engine.checkpoint()
    # Rewrite event 4 with a valid hash: the chain links, but it is not the signed event.
    with store.transaction(read_only=True) as tx:
        events = tx.get_events(case_id)
    fourth = events[3]
    forged = audit.seal(
        **{**fourth.model_dump(exclude={"hash"}), "actor": "someone-else"},
    )
    with store.engine.begin() as conn:
        conn.execute(
            update(case_events)
            .where(case_events.c.case_id == case_id, case_events.c.seq == 4)
            .values(actor=forged.actor, hash=forged.hash)
        )
    assert engine.verify(case_id).problems == ("event 4 differs from the one checkpoint 1 signed",)
    store.close()


def rewrite_fourth(store: SQLStore, case_id: str) -> None:
    """Rewrite event 4 with a recomputed hash: the chain links, the replay matches."""
    with store.transaction(read_only=True) as tx:
        fourth = tx.get_events(case_id)[3]
    forged = audit.seal(**{**fourth.model_dump(exclude={"hash"}), "actor": "someone-else"})
    with store.engine.begin() as conn:
        conn.execute(
            update(case_events)
            .where(case_events.c.case_id == case_id, case_events.c.seq == 4)
            .values(actor=forged.actor, hash=forged.hash)
        )


def test_a_deleted_anchor_row_does_not_hide_a_rewritten_head(store: SQLStore) -> None:
    # The anchor row is an unsigned index: the signed checkpoint itself names the case.
    engine = engine_on(store)
    case_id, other = accepted(engine), accepted(engine)
    engine.checkpoint()
    rewrite_fourth(store, case_id)
    with store.engine.begin() as conn:
        conn.execute(delete(case_anchors).where(case_anchors.c.case_id == case_id))
    assert engine.verify(case_id).problems == (
        "event 4 differs from the one checkpoint 1 signed",
        "checkpoint 1 signed this case's head but its anchor row is missing",
    )
    assert engine_on(store, key=None).verify(case_id).problems == (
        "event 4 differs from the one checkpoint 1 signed",
        "checkpoint 1 signed this case's head but its anchor row is missing",
    )
    # The next checkpoint refuses to sign the forged head, and writes nothing.
    engine.trigger(other, "request_info", by=WATER, question="Which floor?")
    with pytest.raises(CheckpointRefused) as refused:
        engine.checkpoint()
    assert refused.value.problems == (
        f"case {case_id!r}: event 4 differs from the one checkpoint 1 signed",
    )
    assert [c.number for c in engine.export_checkpoints()] == [1]
    assert engine.verify(other).ok
    store.close()


def test_an_anchor_row_moved_to_an_earlier_checkpoint_is_reported(store: SQLStore) -> None:
    engine = engine_on(store)
    case_id = accepted(engine)
    engine.checkpoint()
    engine.trigger(case_id, "request_info", by=WATER, question="Which floor?")
    engine.checkpoint()
    with store.engine.begin() as conn:
        conn.execute(update(case_anchors).values(number=1, seq=4))
    assert engine.verify(case_id).problems == (
        "the case's anchor row names checkpoint 1 but checkpoint 2 signed its latest head",
    )
    store.close()


def test_a_wrong_key_is_told_apart_from_a_changed_trail(store: SQLStore) -> None:
    engine = engine_on(store)
    case_id = accepted(engine)
    engine.checkpoint()
    published = engine.export_checkpoints()
    other = engine_on(store, key=b"another key of thirty-two bytes!")
    assert other.verify(case_id).problems == (
        "checkpoint 1's signature does not verify under the key given: the key is not "
        "the one that signed it (a wrong or rotated key), or the checkpoint was altered",
    )
    assert other.verify_checkpoints(published) == (
        "checkpoint 1: the published copy's signature does not verify under the key "
        "given (a wrong or rotated key, or the copy was altered)",
    )
    assert engine.verify(case_id).ok
    store.close()


def test_an_edited_or_deleted_checkpoint_is_reported(store: SQLStore) -> None:
    engine = engine_on(store)
    case_id = accepted(engine)
    published = engine.export_checkpoints()
    assert published == []
    engine.checkpoint()
    published = engine.export_checkpoints()
    assert engine.verify_checkpoints(published) == ()
    with store.engine.begin() as conn:
        conn.execute(update(checkpoints).values(heads=[]))
    assert engine.verify(case_id).problems == (
        "checkpoint 1's signature does not verify under the key given: the key is not "
        "the one that signed it (a wrong or rotated key), or the checkpoint was altered",
    )
    assert engine.verify_checkpoints(published) == (
        "checkpoint 1: the stored copy differs from the published one",
    )
    with store.engine.begin() as conn:
        conn.execute(delete(checkpoints))
    assert engine.verify(case_id).problems == (
        "checkpoint 1, which signed this case's head, is missing",
    )
    assert engine.verify_checkpoints(published) == ("checkpoint 1: missing from the store",)
    store.close()


def test_only_changed_cases_enter_the_next_checkpoint(store: SQLStore) -> None:
    engine = engine_on(store)
    first, second = accepted(engine), accepted(engine)
    one = engine.checkpoint()
    assert one is not None
    assert engine.checkpoint() is None  # nothing changed since
    engine.trigger(second, "request_info", by=WATER, question="Which floor?")
    two = engine.checkpoint()
    assert two is not None
    assert [(h.case_id, h.seq) for h in two.heads] == [(second, 5)]
    assert two.previous == one.signature
    assert {first, second} == {h.case_id for h in one.heads}
    assert engine.verify(first).ok
    assert engine.verify(second).ok
    store.close()


def test_an_edited_lead_unit_column_is_reported(store: SQLStore) -> None:
    engine = engine_on(store, key=None)
    case_id = accepted(engine)
    with store.engine.begin() as conn:
        conn.execute(update(cases).where(cases.c.id == case_id).values(lead_unit="street_s1"))
    report = engine.verify(case_id)
    assert report.problems == (
        "the stored column lead_unit is 'street_s1' but the case says 'water'",
    )
    store.close()


def test_edited_search_and_supervision_columns_are_reported(store: SQLStore) -> None:
    # What the queries read beside the body is written from the case: an edit that
    # would hide a case from a search, or mark it supervised, is found like any other.
    engine = engine_on(store, key=None)
    case_id = accepted(engine)
    with store.engine.begin() as conn:
        edited = {"search_text": "nothing here", "supervised": True, "co_units": ["roads"]}
        conn.execute(update(cases).where(cases.c.id == case_id).values(**edited))
    assert engine.verify(case_id).problems == (
        "the stored column search_text is 'nothing here' but the case says 'Water main leaking\\n'",
        "the stored column co_units is ['roads'] but the case says []",
        "the stored column supervised is True but the case says False",
    )
    store.close()


def test_checkpoints_on_the_memory_store() -> None:
    engine = engine_on(InMemoryStore())
    case_id = accepted(engine)
    made = engine.checkpoint()
    assert made is not None
    assert engine.verify(case_id).ok
    assert engine.verify_checkpoints([made]) == ()


def test_a_checkpoint_needs_a_key_and_a_store_that_keeps_checkpoints() -> None:
    with pytest.raises(ValidationError) as raised:
        engine_on(InMemoryStore(), key=b"short")
    assert raised.value.fields == ("checkpoint_key",)
    with pytest.raises(ValidationError) as raised:
        engine_on(InMemoryStore(), key=None).checkpoint()
    assert raised.value.fields == ("checkpoint_key",)

    class PlainStore(InMemoryStore):
        """A third-party store without the checkpoint members."""

        unanchored_heads = None  # type: ignore[assignment]

    with pytest.raises(StoreError, match="PlainStore keeps no checkpoints"):
        engine_on(PlainStore()).checkpoint()
