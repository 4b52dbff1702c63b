"""Contract: cases, their audit events, contact data and idempotency records."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta, timezone

import pytest

from closedloop.engine import audit
from closedloop.engine.ports import CaseStore, IdempotencyRecord
from closedloop.errors import ClosedLoopError, ConcurrentModification, NaiveDatetime, StoreError
from closedloop.testing.contract.base import (
    T0,
    StoreFactory,
    StoreFixtures,
    add,
    commit,
    deadline,
    new_case,
    read,
    revise,
)


class CaseContract(StoreFixtures):
    """Adding, reading and updating cases under optimistic version checks."""

    def test_a_committed_case_reads_back_equal_from_another_store_object(
        self, stores: StoreFactory
    ) -> None:
        store = stores()
        case, event = add(store, "c1", deadline=deadline(T0 + timedelta(days=1)))
        again = stores()
        assert read(again, lambda tx: tx.get_case("c1")) == case
        assert read(again, lambda tx: tx.get_events("c1")) == [event]

    def test_an_unknown_case_reads_as_none(self, store: CaseStore) -> None:
        assert read(store, lambda tx: tx.get_case("nope")) is None
        assert read(store, lambda tx: tx.get_events("nope")) == []
        assert read(store, lambda tx: tx.get_contact("nope")) is None

    def test_adding_an_existing_id_is_a_concurrent_modification(self, store: CaseStore) -> None:
        add(store, "c1")
        case, event = new_case("c1", description="someone else's report")
        with pytest.raises(ConcurrentModification):
            commit(store, lambda tx: tx.add_case(case, None, event))
        assert read(store, lambda tx: tx.get_case("c1")).description == "report c1"

    def test_an_update_at_the_expected_version_commits(self, store: CaseStore) -> None:
        case, event = add(store, "c1")
        new, second = revise(case, event, state="classified", category="01.02")
        with store.transaction() as tx:
            tx.update_case(new, 1, second)
            tx.commit()
        assert read(store, lambda tx: tx.get_case("c1")) == new

    def test_a_value_changed_to_an_equal_one_of_another_type_is_written(
        self, stores: StoreFactory
    ) -> None:
        # 1 == 1.0 == True in Python, yet each reads back as itself and is a change to
        # record; the updates come at one instant, so nothing else in the case changes.
        store = stores()
        case, head = add(store, "c1", attributes={"n": 1, "deep": [{"n": 1}]})
        for value in (True, 1.0, 1):
            new, head = revise(
                case, head, at=head.at, attributes={"n": value, "deep": [{"n": value}]}
            )
            assert head.changes == {"attributes": {"n": value, "deep": [{"n": value}]}}
            with store.transaction() as tx:
                assert tx.get_case("c1") == case  # read first, as a command does
                tx.update_case(new, case.version, head)
                tx.commit()
            for reader in (store, stores()):
                stored = read(reader, lambda tx: tx.get_case("c1"))
                assert [type(stored.attributes["n"]), type(stored.attributes["deep"][0]["n"])] == [
                    type(value)
                ] * 2
            case = new
        events = read(store, lambda tx: tx.get_events("c1"))
        assert [type(e.changes["attributes"]["n"]) for e in events] == [int, bool, float, int]
        assert audit.verify_chain("c1", events, stored).ok

    def test_a_zero_changed_to_negative_zero_is_recorded_and_written(
        self, stores: StoreFactory
    ) -> None:
        # 0.0 == -0.0 in Python, yet their JSON differs (0.0, -0.0): a change from one
        # to the other is recorded in the event and written, as any other change.
        store = stores()
        case, head = add(store, "c1", attributes={"x": 0.0, "deep": [0.0]})
        for value in (-0.0, 0.0):
            new, head = revise(case, head, at=head.at, attributes={"x": value, "deep": [value]})
            assert head.changes == {"attributes": {"x": value, "deep": [value]}}
            with store.transaction() as tx:
                assert tx.get_case("c1") == case  # read first, as a command does
                tx.update_case(new, case.version, head)
                tx.commit()
            for reader in (store, stores()):
                stored = read(reader, lambda tx: tx.get_case("c1"))
                signs = [
                    math.copysign(1.0, v)
                    for v in (stored.attributes["x"], *stored.attributes["deep"])
                ]
                assert signs == [math.copysign(1.0, value)] * 2
            case = new
        events = read(store, lambda tx: tx.get_events("c1"))
        assert [str(e.changes["attributes"]["x"]) for e in events] == ["0.0", "-0.0", "0.0"]
        assert audit.verify_chain("c1", events, stored).ok

    def test_a_case_changed_by_its_writer_after_it_was_written_is_stored_as_written(
        self, stores: StoreFactory
    ) -> None:
        # What a transaction stores is the case as it was when written, as a database
        # row holds what was sent; the writer's object is its own to change afterwards.
        store = stores()
        case, first = new_case("c1", attributes={"n": 1})
        with store.transaction() as tx:
            tx.add_case(case, None, first)
            case.attributes["n"] = 2
            tx.commit()
        case.attributes["n"] = 1
        new, second = revise(case, first, attributes={"n": 3, "list": [1]})
        with store.transaction() as tx:
            assert tx.get_case("c1") == case
            tx.update_case(new, 1, second)
            new.attributes["n"] = 4
            new.attributes["list"].append(2)
            new.attributes["other"] = True
            tx.commit()
        for reader in (store, stores()):
            assert read(reader, lambda tx: tx.get_case("c1")).attributes == {"n": 3, "list": [1]}
            events = read(reader, lambda tx: tx.get_events("c1"))
            assert [e.changes["attributes"] for e in events] == [{"n": 1}, {"n": 3, "list": [1]}]
        _, third = revise(read(store, lambda tx: tx.get_case("c1")), second, state="x")
        assert set(third.changes) == {"state", "updated_at"}  # against the stored case

    def test_a_stale_expected_version_changes_nothing(self, store: CaseStore) -> None:
        case, event = add(store, "c1")
        new, second = revise(case, event, state="classified")
        with store.transaction() as tx:
            tx.update_case(new, 1, second)
            tx.commit()
        late, third = revise(case, event, state="rejected")
        with pytest.raises(ConcurrentModification) as raised:
            commit(store, lambda tx: tx.update_case(late, 1, third))
        assert (raised.value.case_id, raised.value.expected) == ("c1", 1)
        assert read(store, lambda tx: tx.get_case("c1")).state == "classified"
        assert len(read(store, lambda tx: tx.get_events("c1"))) == 2

    def test_updating_a_missing_case_is_a_concurrent_modification(self, store: CaseStore) -> None:
        case, event = new_case("ghost")
        new, second = revise(case, event)
        with pytest.raises(ConcurrentModification):
            commit(store, lambda tx: tx.update_case(new, 1, second))

    def test_racing_writers_at_one_version_have_exactly_one_winner(
        self, stores: StoreFactory
    ) -> None:
        store = stores()
        case, event = add(store, "c1")
        writers = [stores() for _ in range(4)]
        start = threading.Barrier(len(writers))
        outcomes: list[str] = []

        def write(writer: CaseStore, n: int) -> None:
            new, ev = revise(case, event, description=f"writer {n}")
            start.wait()
            try:
                with writer.transaction() as tx:
                    tx.update_case(new, 1, ev)
                    tx.commit()
                outcomes.append("won")
            except ConcurrentModification:
                outcomes.append("lost")

        threads = [threading.Thread(target=write, args=(w, n)) for n, w in enumerate(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
        assert len(read(store, lambda tx: tx.get_events("c1"))) == 2

    def test_nothing_is_kept_unless_committed(self, store: CaseStore) -> None:
        case, event = new_case("c1")
        with store.transaction() as tx:
            tx.add_case(case, None, event)
        with pytest.raises(RuntimeError):
            commit(store, lambda tx: tx.add_case(case, None, event), _fail)
        with store.transaction() as tx:
            tx.add_case(case, None, event)
            tx.rollback()
        assert read(store, lambda tx: tx.get_case("c1")) is None
        assert list(store.case_ids()) == []

    def test_a_transaction_reads_its_own_writes(self, store: CaseStore) -> None:
        case, event = new_case("c1")
        with store.transaction() as tx:
            tx.add_case(case, None, event)
            assert tx.get_case("c1") == case
            new, second = revise(case, event, state="classified")
            tx.update_case(new, 1, second)
            assert tx.get_case("c1") == new
            assert tx.get_events("c1") == [event, second]

    def test_an_event_changed_after_it_was_sealed_is_stored_as_it_is_when_written(
        self, stores: StoreFactory
    ) -> None:
        # A store writes the event it is given as it is then, as a database row holds
        # what was sent, whether or not its hash was computed before: the change is
        # stored, and the trail's check sees that the event no longer matches its hash.
        store = stores()
        case, first = new_case("c1", attributes={"n": 1})
        first.payload["list"][0] = True  # was 1: equal in Python, not in JSON
        first.changes["attributes"]["n"] = 2
        commit(store, lambda tx: tx.add_case(case, None, first))
        new, second = revise(case, first, state="classified")
        second.payload["note"] = object()
        with pytest.raises(ClosedLoopError):
            commit(store, lambda tx: tx.update_case(new, 1, second))
        for reader in (store, stores()):
            (stored,) = read(reader, lambda tx: tx.get_events("c1"))
            assert stored.payload == {"note": "v1", "list": [True, "二"]}
            assert type(stored.payload["list"][0]) is bool
            assert stored.changes["attributes"] == {"n": 2}
            report = audit.verify_chain("c1", [stored], read(reader, lambda tx: tx.get_case("c1")))
            assert "event 1: content does not match its hash (it was changed)" in report.problems

    def test_events_come_back_in_order_with_their_chain(self, store: CaseStore) -> None:
        case, head = add(store, "c1")
        events = [head]
        for n in range(5):
            new, head = revise(case, head, description=f"step {n}")
            with store.transaction() as tx:
                tx.update_case(new, case.version, head)
                tx.commit()
            case = new
            events.append(head)
        stored = read(store, lambda tx: tx.get_events("c1"))
        assert stored == events
        assert [e.prev_hash for e in stored[1:]] == [e.hash for e in stored[:-1]]

    def test_a_value_that_is_not_json_data_fails_and_writes_nothing(self, store: CaseStore) -> None:
        case, event = add(store, "c1")
        new, second = revise(case, event, state="classified")
        unstorable = second.model_copy(update={"payload": {"note": object()}})
        with pytest.raises(ClosedLoopError):
            commit(store, lambda tx: tx.update_case(new, 1, unstorable))
        assert read(store, lambda tx: tx.get_case("c1")) == case
        assert read(store, lambda tx: tx.get_events("c1")) == [event]
        fresh, first = new_case("c2")
        bad_first = first.model_copy(update={"payload": {"note": object()}})
        with pytest.raises(ClosedLoopError):
            commit(store, lambda tx: tx.add_case(fresh, None, bad_first))
        assert read(store, lambda tx: tx.get_case("c2")) is None
        assert list(store.case_ids()) == ["c1"]

    def test_a_read_only_transaction_reads_and_refuses_writes(self, store: CaseStore) -> None:
        case, event = add(store, "c1")
        with store.transaction(read_only=True) as tx:
            assert tx.get_case("c1") == case
            assert tx.get_events("c1") == [event]
            assert tx.get_head("c1") == event.hash
        new, second = revise(case, event, state="classified")

        def write_read_only() -> None:
            with store.transaction(read_only=True) as tx:
                tx.update_case(new, 1, second)  # the store may refuse here or at commit
                tx.commit()

        with pytest.raises(StoreError):
            write_read_only()
        assert read(store, lambda tx: tx.get_case("c1")) == case

    def test_the_head_is_the_latest_event_hash(self, stores: StoreFactory) -> None:
        store = stores()
        assert read(store, lambda tx: tx.get_head("c1")) is None
        case, event = add(store, "c1")
        assert read(stores(), lambda tx: tx.get_head("c1")) == event.hash
        new, second = revise(case, event, state="classified")
        with store.transaction() as tx:
            assert tx.get_case("c1") == case  # a read before the write must not pin the head
            tx.update_case(new, 1, second)
            assert tx.get_head("c1") == second.hash
            tx.rollback()
        assert read(stores(), lambda tx: tx.get_head("c1")) == event.hash
        commit(store, lambda tx: tx.update_case(new, 1, second))
        assert read(stores(), lambda tx: tx.get_head("c1")) == second.hash

    def test_a_new_case_has_its_first_event_as_head_before_commit(self, store: CaseStore) -> None:
        case, event = new_case("c1")
        with store.transaction() as tx:
            tx.add_case(case, None, event)
            assert tx.get_head("c1") == event.hash

    def test_contact_data_is_kept_apart_from_the_case(self, store: CaseStore) -> None:
        add(store, "c1")
        case = read(store, lambda tx: tx.get_case("c1"))
        assert case.contact is None
        assert "13800000000" not in case.model_dump_json()
        assert read(store, lambda tx: tx.get_contact("c1")).phone == "13800000000"
        assert all("13800000000" not in e.model_dump_json() for e in read(store, _events))

    def test_case_ids_list_cases_oldest_first(self, store: CaseStore) -> None:
        for n, name in enumerate(["b", "c", "a"]):
            add(store, name, at=T0 + timedelta(minutes=n))
        assert list(store.case_ids()) == ["b", "c", "a"]

    def test_an_idempotency_record_is_kept_once(self, store: CaseStore) -> None:
        add(store, "c1")
        record = IdempotencyRecord(key="k1", fingerprint="f" * 64, case_id="c1", version=1)
        with store.transaction() as tx:
            tx.put_idempotency(record)
            assert tx.get_idempotency("k1") == record
            tx.commit()
        assert read(store, lambda tx: tx.get_idempotency("k1")) == record
        assert read(store, lambda tx: tx.get_idempotency("k2")) is None
        other = record.model_copy(update={"fingerprint": "0" * 64})
        with pytest.raises(ConcurrentModification):
            commit(store, lambda tx: tx.put_idempotency(other))
        assert read(store, lambda tx: tx.get_idempotency("k1")) == record

    def test_instants_come_back_aware_and_equal(self, store: CaseStore) -> None:
        beijing = timezone(timedelta(hours=8))
        at = datetime(2026, 1, 5, 17, 30, 0, 123456, tzinfo=beijing)
        case, event = add(store, "c1", at=at, deadline=deadline(at + timedelta(days=2)))
        stored = read(store, lambda tx: tx.get_case("c1"))
        stored_event = read(store, _events)[0]
        for value in (stored.reported_at, stored.deadline.due_at, stored_event.at):
            assert value.utcoffset() is not None
        assert (stored.reported_at, stored.deadline, stored_event.at) == (
            case.reported_at,
            case.deadline,
            event.at,
        )

    def test_naive_instants_are_rejected(self, store: CaseStore) -> None:
        case, event = new_case("c1")
        naive = case.model_copy(update={"reported_at": datetime(2026, 1, 5, 9)})
        with pytest.raises(NaiveDatetime):
            commit(store, lambda tx: tx.add_case(naive, None, event))
        assert read(store, lambda tx: tx.get_case("c1")) is None

    def test_adding_one_case_twice_in_a_transaction_fails_it(self, store: CaseStore) -> None:
        case, event = new_case("c1")
        with pytest.raises(ConcurrentModification):
            commit(store, *[lambda tx: tx.add_case(case, None, event)] * 2)
        assert read(store, lambda tx: tx.get_case("c1")) is None


def _fail(tx: object) -> None:
    raise RuntimeError("the command failed half way")


def _events(tx: object) -> list[object]:
    return tx.get_events("c1")  # type: ignore[attr-defined, no-any-return]
