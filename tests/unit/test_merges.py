"""Merges: a duplicate report joins an open master case. Refused targets write nothing;
the master records its duplicates; the duplicate's reporter is told of the merge and of
the master's outcome, and may follow the master (contact data masked)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from closedloop import Actor, Case, CaseNotFound, Engine, InvalidWorkflow, Workflow, workflows
from closedloop.engine.model import Duplicate
from closedloop.engine.ports import CaseStore
from closedloop.errors import MergeRefused
from closedloop.metrics import Period, compute
from closedloop.testing import ManualClock, RecordingNotifier

FIRST = Actor("citizen-1")
SECOND = Actor("citizen-2")
STRANGER = Actor("citizen-3")
DISPATCHER = Actor("op-1", roles={"dispatcher"})
WATER = Actor("crew-1", units={"water"})
MONDAY = datetime(2026, 1, 5, 9, tzinfo=UTC)


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def merging(store: CaseStore, notifier: RecordingNotifier) -> tuple[Engine, ManualClock]:
    clock = ManualClock(MONDAY)
    return Engine(workflows.standard(), store=store, clock=clock, notifier=notifier), clock


def two_reports(engine: Engine) -> tuple[Case, Case]:
    master = engine.report(
        FIRST, description="Burst pipe on Elm St", contact={"phone": "13812345678"}
    )
    duplicate = engine.report(SECOND, description="Water everywhere on Elm St")
    return master, duplicate


def trails(engine: Engine, *cases: Case) -> list[object]:
    return [engine.history(case.id) for case in cases]


def test_merge_refuses_missing_self_closed_and_merged_targets(
    merging: tuple[Engine, ManualClock],
) -> None:
    engine, _ = merging
    master, duplicate = two_reports(engine)
    other = engine.report(STRANGER, description="Same burst pipe")
    closed = engine.report(STRANGER, description="Old report")
    engine.trigger(closed.id, "reject", by=DISPATCHER, reason="out of scope")
    engine.trigger(other.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    before = trails(engine, master, duplicate, other, closed)
    refusals = {
        "no-such-case": "no such case",
        duplicate.id: "it is the case itself",
        other.id: f"it is merged into {master.id!r}",
        closed.id: "it is 'rejected', no longer open",
    }
    for target, reason in refusals.items():
        with pytest.raises(MergeRefused) as refused:
            engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=target)
        assert (refused.value.target, refused.value.reason) == (target, reason)
        assert refused.value.to_problem()["status"] == 409
    assert trails(engine, master, duplicate, other, closed) == before


def test_the_master_records_its_duplicates_and_both_trails_verify(
    merging: tuple[Engine, ManualClock],
) -> None:
    engine, clock = merging
    master, duplicate = two_reports(engine)
    engine.trigger(duplicate.id, "classify", by=DISPATCHER, category="01.01")
    clock.advance(minutes=30)
    merged = engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    assert (merged.state, merged.merged_into, merged.version) == ("merged", master.id, 3)
    assert (merged.deadline, merged.waiting_on) == (None, None)
    seen = engine.get(master.id, viewer=DISPATCHER)
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    assert seen.duplicates == (Duplicate(case=duplicate.id, reporter=SECOND.id, at=at),)
    assert (seen.state, seen.version) == ("reported", 2)
    last = engine.history(master.id)[-1]
    assert (last.trigger, last.actor, last.role, last.payload) == (
        "duplicate", DISPATCHER.id, "dispatcher", {"duplicate": duplicate.id}
    )  # fmt: skip
    assert engine.verify(master.id).ok
    assert engine.verify(duplicate.id).ok


def test_the_duplicates_reporter_follows_the_master_without_its_reporter(
    merging: tuple[Engine, ManualClock],
) -> None:
    engine, _ = merging
    master, duplicate = two_reports(engine)
    engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    followed = engine.get(master.id, viewer=SECOND)
    assert followed.state == "reported"
    assert (followed.reporter_id, followed.contact) == ("[hidden]", None)
    assert [d.reporter for d in followed.duplicates] == [SECOND.id]
    assert [e.actor for e in engine.history(master.id, viewer=SECOND)] == ["[hidden]", "op-1"]
    assert engine.history(master.id, viewer=SECOND)[0].changes["reporter_id"] == "[hidden]"
    page = engine.find(SECOND, limit=10).cases
    assert sorted((c.reporter_id, c.id == master.id) for c in page) == [
        ("[hidden]", True),
        (SECOND.id, False),
    ]
    assert engine.allowed(master.id, SECOND) == ()
    with pytest.raises(CaseNotFound):
        engine.get(master.id, viewer=STRANGER)


def test_the_masters_reporter_is_not_shown_who_reported_its_duplicates(
    merging: tuple[Engine, ManualClock],
) -> None:
    engine, _ = merging
    master, duplicate = two_reports(engine)
    third = engine.report(STRANGER, description="Elm St is flooded")
    engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    engine.trigger(third.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    own = engine.get(master.id, viewer=FIRST)
    assert (own.reporter_id, own.contact.phone if own.contact else None) == (
        FIRST.id,
        "13812345678",
    )
    assert own.duplicates == ()
    trail = engine.history(master.id, viewer=FIRST)
    assert [e.changes["attributes"] for e in trail if e.trigger == "duplicate"] == [
        {"duplicates": []},
        {"duplicates": []},
    ]
    assert "citizen-2" not in repr(trail)
    assert "citizen-3" not in repr(trail)
    seen_by_third = engine.get(master.id, viewer=STRANGER)
    assert [d.case for d in seen_by_third.duplicates] == [third.id]
    staff = engine.get(master.id, viewer=DISPATCHER)
    assert [d.reporter for d in staff.duplicates] == [SECOND.id, STRANGER.id]
    assert engine.history(master.id, viewer=DISPATCHER) == engine.history(master.id)
    assert engine.verify(master.id).ok


def test_the_duplicates_reporter_is_told_of_the_merge_and_the_outcome(
    merging: tuple[Engine, ManualClock], notifier: RecordingNotifier
) -> None:
    engine, _ = merging
    master, duplicate = two_reports(engine)
    engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    engine.trigger(master.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(master.id, "dispatch", by=DISPATCHER, unit="water")
    engine.trigger(master.id, "accept", by=WATER)
    engine.trigger(master.id, "submit_result", by=WATER, result="Pipe repaired")
    engine.trigger(master.id, "feedback", by=DISPATCHER)
    closed = engine.trigger(master.id, "confirm", by=FIRST, rating="satisfied")
    assert closed.state == "closed"
    told = engine.get(duplicate.id, viewer=SECOND)
    assert (told.state, told.version, told.attributes["master_outcome"]) == ("merged", 3, "closed")
    last = engine.history(duplicate.id)[-1]
    assert (last.trigger, last.actor, last.payload) == (
        "master_closed", "system", {"master": master.id, "outcome": "closed"}
    )  # fmt: skip
    assert engine.verify(duplicate.id).ok
    engine.deliver()
    to_second = [n for n in notifier.sent if n.case_id == duplicate.id]
    assert [(n.event, n.recipient) for n in to_second] == [
        ("merge", "reporter"),
        ("master_closed", "reporter"),
    ]
    assert f"repeats case {master.id}" in to_second[0].body
    assert f"Case {master.id}, which your report {duplicate.id} was merged into, has ended: " \
        "closed." in to_second[1].body  # fmt: skip


def test_metrics_count_the_pair_once_as_filed(merging: tuple[Engine, ManualClock]) -> None:
    engine, _ = merging
    master, duplicate = two_reports(engine)
    engine.trigger(master.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(duplicate.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    total = compute(engine.store, Period.week(date(2026, 1, 5))).total
    assert (total.reported, total.filed, total.merged) == (2, 1, 1)
    assert total.filing_rate == 0.5


def test_the_validator_checks_merges_into() -> None:
    data = workflows.standard().model_dump(by_alias=True, exclude_defaults=True)
    merge = next(t for t in data["transitions"] if t["name"] == "merge")
    merge["merges_into"] = "reason"
    merge["to"] = "classified"
    with pytest.raises(InvalidWorkflow) as invalid:
        Workflow.from_dict(data)
    where = "transitions[3] (merge).merges_into"
    assert list(invalid.value.problems) == [
        f"{where}: 'reason' must be a required code field of this transition",
        f"{where}: a merge must lead to a final state alone (the duplicate waits no more)",
    ]


def test_changes_show_a_citizen_no_other_reporter_and_hand_out_copies(
    merging: tuple[Engine, ManualClock],
) -> None:
    engine, clock = merging
    start = clock.now()
    master, duplicate = two_reports(engine)
    engine.trigger(duplicate.id, "classify", by=DISPATCHER, category="01.01")
    clock.advance(minutes=30)
    engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    clock.advance(minutes=1)

    # The duplicate's reporter follows the master: its events come through, as the
    # master's history shows them to that reporter, never naming the master's reporter.
    seen = list(engine.changes(SECOND, start=start, before=clock.now()))
    assert {event.case_id for event in seen} == {master.id, duplicate.id}
    shown = engine.history(master.id, viewer=SECOND)
    assert [e for e in seen if e.case_id == master.id] == shown
    assert FIRST.id not in repr(seen)
    # The dispatcher sees every reporter.
    assert FIRST.id in repr(list(engine.changes(DISPATCHER, start=start, before=clock.now())))

    # What a host changes in the events it got changes nothing stored.
    for event in engine.changes(DISPATCHER, start=start, before=clock.now()):
        event.changes["description"] = "edited"
        event.payload["edited"] = True
    assert "edited" not in repr(trails(engine, master, duplicate))
    assert engine.verify(master.id).ok
    assert engine.verify(duplicate.id).ok


def test_a_master_with_duplicates_is_not_merged_away_from_their_reporters(
    merging: tuple[Engine, ManualClock], notifier: RecordingNotifier
) -> None:
    engine, _ = merging
    master, duplicate = two_reports(engine)
    other = engine.report(STRANGER, description="Elm St flooded")
    engine.trigger(duplicate.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    engine.deliver()
    sent = len(notifier.sent)
    before = trails(engine, master, duplicate, other)
    with pytest.raises(MergeRefused) as refused:
        engine.trigger(master.id, "merge", by=DISPATCHER, duplicate_of=other.id)
    assert refused.value.reason == (
        f"it is the master of {duplicate.id!r}, whose reporters follow it; merge "
        f"{other.id!r} into it instead, or handle both"
    )
    assert trails(engine, master, duplicate, other) == before
    assert engine.get(master.id, viewer=DISPATCHER).state == "reported"
    engine.deliver()
    assert len(notifier.sent) == sent  # the duplicate's reporter heard of no ending
    engine.trigger(other.id, "merge", by=DISPATCHER, duplicate_of=master.id)
    seen = engine.get(master.id, viewer=DISPATCHER)
    assert [d.case for d in seen.duplicates] == [duplicate.id, other.id]
