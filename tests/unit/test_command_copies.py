"""A command validates only what it changes, the values a tick makes many of are
assembled as their models would make them, and the in-memory store keeps what it is
given as a database would give it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from closedloop.adapters.memory import InMemoryStore
from closedloop.engine import audit
from closedloop.engine.commands import changed
from closedloop.engine.kinds import TimerKind
from closedloop.engine.model import Case, assembled, to_stored
from closedloop.engine.ports import DuePoint, TimerClaim
from closedloop.errors import StoreError
from closedloop.testing.contract.base import commit, new_case, read, revise


def test_updated_fields_are_validated_as_the_whole_case_validates_them() -> None:
    case, _ = new_case("c1")
    update = {
        "co_units": ["water", "power"],
        "subtasks": [{"unit": "power", "duty": "cut the supply"}],
        "attributes": {"result": "fixed"},
    }
    made = changed(case, update)
    whole = Case.model_validate({**dict(case), **update})
    assert made == whole
    assert made.co_units == ("water", "power")
    assert to_stored(made) == to_stored(whole)  # records keep only what they were given


def test_an_invalid_update_is_reported_as_validating_the_whole_case_reports_it() -> None:
    case, _ = new_case("c1")
    with pytest.raises(PydanticValidationError) as whole:
        Case.model_validate({**dict(case), "subtasks": [{"duty": "no unit"}]})
    with pytest.raises(PydanticValidationError) as made:
        changed(case, {"subtasks": [{"duty": "no unit"}]})
    assert made.value.errors() == whole.value.errors()
    assert made.value.errors()[0]["loc"] == ("subtasks", 0, "unit")


@pytest.mark.parametrize(
    "update",
    [
        {"state": "assigned", "waiting_on": None, "urgency": "high"},
        {"counters": {"returns": True, "reworks": 2}, "attributes": {"result": [1, "x"]}},
        {"counters": {"returns": 1.0}, "attributes": {}},
    ],
)
def test_plain_updates_are_kept_as_validating_them_keeps_them(update: dict[str, Any]) -> None:
    case, _ = new_case("c1")
    made = changed(case, update)
    whole = Case.model_validate({**dict(case), **update})
    for name in update:
        assert getattr(made, name) == getattr(whole, name)
        assert type(getattr(made, name)) is type(getattr(whole, name))
    assert made.counters == whole.counters
    assert [type(v) for v in made.counters.values()] == [int] * len(made.counters)
    if "attributes" in update:
        assert made.attributes is not update["attributes"]  # a copy, as validation makes


@pytest.mark.parametrize(
    "update",
    [{"state": None}, {"attributes": {1: "x"}}, {"counters": {"returns": "many"}}],
)
def test_a_bad_plain_update_is_reported_as_validating_the_whole_case_reports_it(
    update: dict[str, Any],
) -> None:
    case, _ = new_case("c1")
    with pytest.raises(PydanticValidationError) as whole:
        Case.model_validate({**dict(case), **update})
    with pytest.raises(PydanticValidationError) as made:
        changed(case, update)
    assert made.value.errors() == whole.value.errors()


def test_the_memory_store_gives_back_values_as_json_data() -> None:
    store = InMemoryStore()
    case, event = new_case("c1")
    odd = case.model_copy(update={"attributes": {"pair": (1, 2), "plain": [1, "é", 2.5]}})
    commit(store, lambda tx: tx.add_case(odd, None, event))
    stored = read(store, lambda tx: tx.get_case("c1"))
    assert stored.attributes == {"pair": [1, 2], "plain": [1, "é", 2.5]}


def test_the_memory_store_refuses_a_value_that_is_not_json_data() -> None:
    store = InMemoryStore()
    case, event = new_case("c1")
    odd = case.model_copy(update={"attributes": {"when": object()}})
    with pytest.raises(StoreError, match="not JSON data"):
        commit(store, lambda tx: tx.add_case(odd, None, event))
    assert read(store, lambda tx: tx.get_case("c1")) is None


def test_the_memory_store_gives_back_instants_in_utc() -> None:
    store = InMemoryStore()
    case, event = new_case("c1")
    beijing = case.reported_at.astimezone(timezone(timedelta(hours=8)))
    odd = case.model_copy(update={"reported_at": beijing})
    commit(store, lambda tx: tx.add_case(odd, None, event))
    stored = read(store, lambda tx: tx.get_case("c1"))
    assert stored.reported_at == beijing
    assert stored.reported_at.tzinfo is UTC


def test_an_update_holding_text_that_is_not_valid_unicode_stores_nothing() -> None:
    store = InMemoryStore()
    case, event = new_case("c1", attributes={"note": "kept"})
    commit(store, lambda tx: tx.add_case(case, None, event))
    second, second_event = revise(case, event, state="classified")
    odd = second.model_copy(update={"attributes": {"note": "\ud800"}})
    with pytest.raises(StoreError, match="not JSON data"):
        commit(store, lambda tx: tx.update_case(odd, 1, second_event))
    stored = read(store, lambda tx: tx.get_case("c1"))
    assert (stored.version, stored.attributes) == (1, {"note": "kept"})
    assert len(read(store, lambda tx: tx.get_events("c1"))) == 1


def test_a_case_kept_by_the_memory_store_shares_no_dict_with_the_one_committed() -> None:
    store = InMemoryStore()
    case, event = new_case("c1", counters={"returns": 1}, attributes={"tags": ["a"]})
    commit(store, lambda tx: tx.add_case(case, None, event))
    second, second_event = revise(case, event, state="classified")
    commit(store, lambda tx: tx.update_case(second, 1, second_event))
    second.counters["returns"] = 5
    second.attributes["tags"].append("b")
    stored = read(store, lambda tx: tx.get_case("c1"))
    assert (stored.counters, stored.attributes) == ({"returns": 1}, {"tags": ["a"]})


@pytest.mark.parametrize("pair", [[1, 2], (1, 2)])
def test_the_memory_store_keeps_an_event_of_its_own_as_json_data(pair: object) -> None:
    store = InMemoryStore()
    case, _ = new_case("c1")
    event = audit.seal(
        case_id="c1",
        seq=1,
        at=case.reported_at,
        actor="host",
        role=None,
        trigger="report",
        from_state=None,
        to_state="reported",
        payload={"pair": pair, "nested": {"tags": ["a"]}},
        reason=None,
        changes=audit.changes(None, case),
        prev_hash=audit.GENESIS,
    )
    commit(store, lambda tx: tx.add_case(case, None, event))
    event.payload["nested"]["tags"].append("b")
    event.changes["state"] = "changed by the host"
    (stored,) = read(store, lambda tx: tx.get_events("c1"))
    assert stored.payload == {"pair": [1, 2], "nested": {"tags": ["a"]}}
    assert stored.changes["state"] == "reported"
    assert stored.hash == audit.event_hash(stored)


def test_the_memory_store_checks_an_event_as_it_is_at_commit() -> None:
    store = InMemoryStore()
    case, event = new_case("c1")
    event.payload["when"] = object()
    with pytest.raises(StoreError, match="not JSON data"):
        commit(store, lambda tx: tx.add_case(case, None, event))
    assert read(store, lambda tx: tx.get_case("c1")) is None


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (
            DuePoint,
            {
                "id": "c/classify/2026-01-05T09:00:00+00:00/warning/0/2026-01-05T10:24:00+00:00",
                "case_id": "c",
                "clock": "classify",
                "kind": TimerKind.WARNING,
                "level": 0,
                "due_at": datetime(2026, 1, 5, 10, 24, tzinfo=UTC),
            },
        ),
        (
            TimerClaim,
            {
                "case_id": "c",
                "next_timer_at": datetime(2026, 1, 5, 10, 24, tzinfo=UTC),
                "owner": "ticker",
                "expires_at": datetime(2026, 1, 5, 10, 29, tzinfo=UTC),
                "token": "t",
            },
        ),
    ],
)
def test_an_assembled_value_is_the_one_its_model_would_construct_and_validate(
    kind: type[BaseModel], fields: dict[str, Any]
) -> None:
    made = assembled(kind, dict(fields))
    for other in (kind.model_construct(**fields), kind.model_validate(fields)):
        assert made == other
        assert made.model_fields_set == other.model_fields_set
        assert made.model_dump(mode="json") == other.model_dump(mode="json")
