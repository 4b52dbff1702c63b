"""A SQL store keeps the cases its committed commands wrote, as the cases their rows'
texts build: the next command on a case reads it without building it again, and a row
changed in any other way, or a write rolled back, is never mistaken for one."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Text, cast, select, update

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore, rows
from closedloop.adapters.sqlalchemy.schema import cases
from closedloop.engine import audit, model
from closedloop.engine.ports import CaseTransaction
from closedloop.errors import ConcurrentModification, StoreError
from closedloop.testing import ManualClock
from closedloop.testing.contract.base import T0, message, new_case, revise
from tests.cast import CITIZEN, DISPATCHER
from tests.conftest import Backend


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    backend = Backend(request.param, tmp_path)
    yield backend.fresh()  # type: ignore[misc]
    backend.close()


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The cases the store builds from stored bodies, as it builds them."""
    made: list[Any] = []

    def counted(data: Any) -> model.Case:
        made.append(data)
        return model.from_stored(data)

    monkeypatch.setattr(rows, "from_stored", counted)
    return made


def _kept_versions(case_id: str) -> list[int]:
    return sorted(v for (_, v), case in rows.built_cases.kept().items() if case.id == case_id)


def test_a_command_reads_the_case_the_one_before_wrote_without_building_it(
    store: SQLStore, built: list[Any]
) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock(T0))
    case = engine.report(CITIZEN, description="Pipe burst on Renmin Road")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    assert built == []  # neither command built the case its predecessor wrote
    with store.transaction(read_only=True) as tx:
        read = tx.get_case(case.id)
    assert read is not None
    assert built == []
    assert (read.version, read.category, read.lead_unit) == (3, "01.02", "water")
    # The body the next command compares with is known, not computed again.
    assert audit.known_body(read) == model.to_stored(read, exclude=model.BODY_EXCLUDE)
    assert engine.verify(case.id).ok


def test_a_row_changed_by_hand_is_built_from_the_row(store: SQLStore, built: list[Any]) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock(T0))
    case = engine.report(CITIZEN, description="Pipe burst on Renmin Road")
    repaired = {**model.to_stored(case, exclude=model.BODY_EXCLUDE), "description": "fixed"}
    with store.engine.begin() as connection:  # the same version, another text
        connection.execute(update(cases).where(cases.c.id == case.id).values(body=repaired))
    with store.transaction(read_only=True) as tx:
        read = tx.get_case(case.id)
    assert read is not None
    assert read.description == "fixed"
    assert len(built) == 1


def test_a_write_rolled_back_is_never_kept(store: SQLStore) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock(T0))
    case = engine.report(CITIZEN, description="Pipe burst on Renmin Road")
    assert _kept_versions(case.id) == [1]
    with store.transaction() as tx:
        stored = tx.get_case(case.id)
        assert stored is not None
        head = tx.get_events(case.id)[-1]
        new, event = revise(stored, head, description="never committed")
        tx.update_case(new, 1, event)
    # Left without committing: rolled back, and the case it wrote is not kept.
    assert _kept_versions(case.id) == [1]
    with store.transaction(read_only=True) as tx:
        again = tx.get_case(case.id)
    assert again is not None
    assert again.description == "Pipe burst on Renmin Road"


def test_an_update_refused_as_stale_is_never_kept(store: SQLStore) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock(T0))
    case = engine.report(CITIZEN, description="Pipe burst on Renmin Road")
    with store.transaction() as tx:
        stored = tx.get_case(case.id)
        assert stored is not None
        new, event = revise(stored, tx.get_events(case.id)[-1], description="stale")
        with pytest.raises(ConcurrentModification):
            tx.update_case(new, 7, event)  # the case is at version 1
        tx.commit()  # what else it wrote is kept; the refused update wrote nothing
    assert _kept_versions(case.id) == [1]


def test_a_case_changed_by_its_writer_after_writing_reads_back_as_written(
    store: SQLStore,
) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock(T0))
    case = engine.report(CITIZEN, description="Pipe burst on Renmin Road")
    case.attributes["changed_after_reporting"] = True
    with store.transaction() as tx:
        stored = tx.get_case(case.id)
        assert stored is not None
        new, event = revise(stored, tx.get_events(case.id)[-1], attributes={"note": "v2"})
        tx.update_case(new, 1, event)
        new.attributes["changed_after_writing"] = True
        tx.commit()
    with store.transaction(read_only=True) as tx:
        again = tx.get_case(case.id)
    assert again is not None
    assert again.attributes == {"note": "v2"}


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")  # the list, on purpose
@pytest.mark.parametrize(
    "unlike",
    [
        {"co_units": ["roads", "parks"]},  # reads back as a tuple
        {"reported_at": datetime(2026, 1, 5, 17, tzinfo=timezone(timedelta(hours=8)))},
        {"supervised": 1},  # reads back as True
        {"counters": {"reopened": True}},  # reads back as 1
    ],
)
def test_a_written_case_that_would_read_back_otherwise_is_read_from_its_row(
    store: SQLStore, unlike: dict[str, Any]
) -> None:
    # A host writing through a transaction may pass values the engine would have
    # normalised: the case read next is the one its row builds, kept or not.
    case_id = f"odd-{uuid.uuid4().hex[:8]}"
    case, event = new_case(case_id)
    odd = case.model_copy(update=unlike)
    with store.transaction() as tx:
        tx.add_case(odd, None, event)
        tx.commit()
    with store.transaction(read_only=True) as tx:
        read = tx.get_case(case_id)
    with store.engine.connect() as connection:
        text = connection.execute(
            select(cast(cases.c.body, Text)).where(cases.c.id == case_id)
        ).scalar_one()
    from_row = rows.case_from_row(text, 1)
    assert read is not None
    assert read.model_dump_json() == from_row.model_dump_json()
    name = next(iter(unlike))
    assert repr(getattr(read, name)) == repr(getattr(from_row, name))


def _texts(count: int) -> list[str]:
    """The stored body texts of ``count`` new cases."""
    return [rows.case_written(new_case(f"lru-{n}")[0])["body"] for n in range(count)]


def test_a_full_cache_drops_the_case_used_least_recently(built: list[Any]) -> None:
    kept = rows.BuiltCases()
    texts = _texts(kept.KEEP + 1)
    for text in texts[:-1]:
        kept.case(text, 1)
    kept.case(texts[0], 1)  # the oldest, used again: now the most recent
    kept.case(texts[-1], 1)  # one more than the bound
    assert len(kept.kept()) == kept.KEEP
    assert (texts[0], 1) in kept.kept()
    assert (texts[1], 1) not in kept.kept()  # used least recently
    del built[:]
    assert [kept.case(text, 1).id for text in (texts[0], texts[2], texts[-1])] == [
        "lru-0",
        "lru-2",
        f"lru-{kept.KEEP}",
    ]
    assert built == []  # each came from the cache
    kept.case(texts[1], 1)
    assert len(built) == 1
    assert len(kept.kept()) == kept.KEEP


def test_readers_in_threads_share_a_full_cache_within_its_bound() -> None:
    kept = rows.BuiltCases()
    kept.KEEP = 16
    texts = _texts(40)
    failures: list[BaseException] = []

    def read(offset: int) -> None:
        try:
            for n in range(400):
                text = texts[(offset + n * 7) % len(texts)]
                assert kept.case(text, 1).id == f"lru-{texts.index(text)}"
                assert len(kept.kept()) <= kept.KEEP
        except BaseException as failure:  # reported by the test
            failures.append(failure)

    threads = [threading.Thread(target=read, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(kept.kept()) == kept.KEEP


def test_a_stale_first_write_is_refused_by_commit_at_the_latest_and_writes_nothing(
    store: SQLStore,
) -> None:
    # On PostgreSQL a transaction's first write waits to go with what follows it (its
    # notifications, in one statement): a stale one is refused when it is sent, at the
    # next statement or at the commit, and nothing of it or after it is written.
    engine = Engine(workflows.standard(), store=store, clock=ManualClock(T0))
    case = engine.report(CITIZEN, description="Pipe burst on Renmin Road")
    other = engine.report(CITIZEN, description="Lamp out")
    with store.transaction(read_only=True) as tx:
        stored, head = tx.get_case(case.id), tx.get_events(case.id)[-1]
    assert stored is not None
    new, event = revise(stored, head, description="stale")

    def stale_write(tx: CaseTransaction) -> None:
        tx.update_case(new, 7, event)  # the case is at version 1
        tx.add_outbox([message("m-stale", case.id)])
        tx.commit()

    with store.transaction() as tx, pytest.raises(ConcurrentModification):
        stale_write(tx)
    if store.engine.dialect.name == "postgresql":
        with store.transaction() as tx:
            tx.update_case(new, 7, event)
            tx.add_outbox([message("m-stale", case.id)])
            with pytest.raises(ConcurrentModification):
                tx.get_case(other.id)  # sends the write first
            # Its write taken as made, and refused: nothing after it may be kept.
            with pytest.raises(StoreError, match="cannot commit"):
                tx.commit()
    with store.transaction(read_only=True) as tx:
        assert tx.get_case(case.id) == stored
        assert [e.seq for e in tx.get_events(case.id)] == [1]
        assert tx.outbox_of(case.id) == []
    assert _kept_versions(case.id) == [1]
