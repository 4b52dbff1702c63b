"""Evidence: reports, answers and results carry media references (a URL or storage key,
a content type, a SHA-256 digest) inside the hashed event; a swapped photo breaks
``verify``; the standard workflow can require an after-photo for ``submit_result``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from closedloop import Actor, Case, Engine, InvalidWorkflow, ValidationError, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.model import AuditEvent, MediaRef
from closedloop.engine.ports import CaseStore
from closedloop.testing import ManualClock

CITIZEN = Actor("citizen-1")
WORKER = Actor("grid-1", roles={"grid_worker"})
DISPATCHER = Actor("op-1", roles={"dispatcher"})
WATER = Actor("crew-1", units={"water"})
BEFORE = {"url": "https://media.example.org/r/1.jpg", "content_type": "image/jpeg",
          "sha256": "a" * 64}  # fmt: skip
AFTER = {"key": "photos/case-1/after.jpg", "content_type": "image/png", "sha256": "b" * 64}


def in_progress(engine: Engine, reporter: Actor = CITIZEN, channel: str = "hotline") -> Case:
    case = engine.report(reporter, description="Pothole", channel=channel, media=[BEFORE])
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    return engine.trigger(case.id, "accept", by=WATER)


def test_media_references_go_into_the_hashed_events(engine: Engine) -> None:
    case = in_progress(engine)
    engine.trigger(case.id, "request_info", by=WATER, question="Which lane?")
    info = {"key": "uploads/7.mp4", "content_type": "video/mp4", "sha256": "c" * 64}
    engine.trigger(case.id, "provide_info", by=CITIZEN, info="the left one", media=[info])
    engine.trigger(case.id, "submit_result", by=WATER, result="Filled", after_photos=[AFTER])
    payloads = {e.trigger: e.payload for e in engine.history(case.id)}
    assert payloads["report"] == {"media": [BEFORE]}
    assert payloads["provide_info"]["media"] == [info]
    assert payloads["submit_result"] == {"result": "Filled", "after_photos": [AFTER]}
    assert MediaRef(**AFTER).key == "photos/case-1/after.jpg"
    assert engine.verify(case.id).ok


def test_a_report_without_media_keeps_an_empty_payload(engine: Engine) -> None:
    case = engine.report(CITIZEN, description="Pothole")
    assert engine.history(case.id)[0].payload == {}


def swap_digest(store: CaseStore, case_id: str, seq: int, digest: str) -> None:
    """Replace the digest of the first reference in event ``seq``, as a forger would."""
    if isinstance(store, InMemoryStore):
        rows = store._records.events[case_id]
        forged = copy.deepcopy(rows[seq - 1].payload)
        forged["after_photos"][0]["sha256"] = digest
        rows[seq - 1] = rows[seq - 1].model_copy(update={"payload": forged})
        return
    from sqlalchemy import select, update

    from closedloop.adapters.sqlalchemy.schema import case_events

    where = (case_events.c.case_id == case_id) & (case_events.c.seq == seq)
    with store.engine.begin() as connection:  # type: ignore[attr-defined]
        payload: dict[str, Any] = connection.execute(
            select(case_events.c.payload).where(where)
        ).scalar_one()
        payload["after_photos"][0]["sha256"] = digest
        connection.execute(update(case_events).where(where).values(payload=payload))


def test_a_swapped_photo_breaks_verify(engine: Engine) -> None:
    case = in_progress(engine)
    done = engine.trigger(case.id, "submit_result", by=WATER, result="Filled", after_photos=[AFTER])
    assert engine.verify(case.id).ok
    swap_digest(engine.store, case.id, done.version, "d" * 64)
    report = engine.verify(case.id)
    assert not report.ok
    assert report.problems == (
        f"event {done.version}: content does not match its hash (it was changed)",
    )


@pytest.mark.parametrize(
    ("media", "field", "message"),
    [
        ([{"content_type": "image/jpeg", "sha256": "a" * 64}], "media[0]",
         "give either a url or a storage key"),
        ([{**BEFORE, "key": "k"}], "media[0]", "give either a url or a storage key"),
        ([{**BEFORE, "url": "ftp://x/1.jpg"}], "media[0].url",
         "must be an http or https URL without whitespace"),
        ([{**BEFORE, "sha256": "A" * 64}], "media[0].sha256",
         "must be 64 lowercase hexadecimal digits"),
        ([{**BEFORE, "content_type": "JPEG"}], "media[0].content_type",
         "must be a lowercase media type like image/jpeg"),
        ([{**BEFORE, "bytes": "..."}], "media[0]",
         "must have only the fields url or key, content_type, sha256"),
        ([BEFORE] * 21, "media", "must be a list of at most 20 media references"),
    ],
)  # fmt: skip
def test_malformed_references_are_refused(
    memory_engine: Engine, media: list[dict[str, str]], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        memory_engine.report(CITIZEN, description="Pothole", media=media)
    assert refused.value.errors == ((field, message),)
    assert memory_engine.store.count_cases() == 0  # type: ignore[attr-defined]


def after_photo_engine(store: CaseStore, after_photo: Any) -> Engine:
    workflow = workflows.standard(after_photo=after_photo)
    return Engine(workflow, store=store, clock=ManualClock())


def test_grid_cases_need_an_after_photo_when_the_option_is_on(store: CaseStore) -> None:
    engine = after_photo_engine(store, ["grid"])
    grid = in_progress(engine, WORKER, channel="grid")
    for missing in ({}, {"after_photos": []}):
        with pytest.raises(ValidationError) as refused:
            engine.trigger(grid.id, "submit_result", by=WATER, result="Filled", **missing)
        assert refused.value.errors == (("after_photos", "is required"),)
    assert engine.get(grid.id, viewer=DISPATCHER).version == grid.version
    hotline = in_progress(engine)
    assert engine.trigger(hotline.id, "submit_result", by=WATER, result="Done").state == "handled"
    done = engine.trigger(grid.id, "submit_result", by=WATER, result="Done", after_photos=[AFTER])
    assert done.state == "handled"


def test_the_after_photo_option_can_cover_every_case() -> None:
    workflow = workflows.standard(after_photo=True)
    field = workflow.transition("submit_result").fields["after_photos"]
    assert (field.type, field.required, field.required_channels) == ("media", True, ())
    plain = workflows.standard().transition("submit_result").fields["after_photos"]
    assert (plain.required, plain.required_channels) == (False, ())


def test_the_validator_checks_required_channels() -> None:
    data = {
        "name": "w",
        "roles": [{"name": "clerk"}],
        "clocks": [{"name": "c", "duration": "1 day"}],
        "states": [
            {"name": "open", "initial": True, "owner": "clerk", "clock": "c"},
            {"name": "done", "final": True},
        ],
        "transitions": [
            {"name": "finish", "from": ["open"], "to": "done", "roles": ["clerk"],
             "fields": {"photos": {"type": "media", "required": True,
                                   "required_channels": ["grid", "bad code"]}}},
        ],
    }  # fmt: skip
    with pytest.raises(InvalidWorkflow) as invalid:
        Workflow.from_dict(data)
    where = "transitions[0] (finish).fields.photos"
    assert list(invalid.value.problems) == [
        f"{where}.required_channels: the field is required on every channel already",
        f"{where}.required_channels[1]: 'bad code' is not a channel code",
    ]


def test_events_keep_references_not_bytes(memory_engine: Engine) -> None:
    case = memory_engine.report(CITIZEN, description="Pothole", media=[MediaRef(**AFTER)])
    first: AuditEvent = memory_engine.history(case.id)[0]
    assert first.payload == {"media": [AFTER]}
