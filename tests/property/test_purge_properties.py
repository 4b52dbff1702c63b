"""Random cases, random purge times: every trail verifies after every purge, and no
value a retention rule has made due survives anywhere in the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from closedloop import Actor, Engine
from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import ManualClock
from tests.cast import DISPATCHER
from tests.integration.test_privacy import SHA, with_retention

WORKFLOW = with_retention()
CONTACT_DAYS = 30
"""The workflow's rule: contact data and the reporter's words 30 days after close."""
REPORT_DAYS = 90
"""The workflow's rule: description, address and media 90 days after the report."""


@dataclass(frozen=True)
class Plan:
    """One case: how it ends (or not) and when, and which personal data it carries."""

    ending: str
    reported_after: int
    closed_after: int
    with_contact: bool
    with_address: bool
    with_media: bool


plans = st.builds(
    Plan,
    ending=st.sampled_from(["open", "reject", "cancel", "answered"]),
    reported_after=st.integers(0, 60),
    closed_after=st.integers(0, 60),
    with_contact=st.booleans(),
    with_address=st.booleans(),
    with_media=st.booleans(),
)


@dataclass
class Made:
    """A case made from a plan, with its values by kind and its instants."""

    case_id: str
    reported_at: datetime
    closed_at: datetime | None
    values: dict[str, list[str]]


def make(engine: Engine, clock: ManualClock, index: int, plan: Plan, start: datetime) -> Made:
    clock.set(max(clock.now(), start + timedelta(days=plan.reported_after)) + timedelta(minutes=1))
    reporter = Actor(f"citizen-{index}")
    values: dict[str, list[str]] = {"description": [f"Desc{index}secret"]}
    extra: dict[str, object] = {}
    if plan.with_contact:
        values["contact"] = [f"Name{index}secret", f"1391234{index:04d}"]
        extra["contact"] = {"name": values["contact"][0], "phone": values["contact"][1]}
    if plan.with_address:
        values["location"] = [f"Street{index}secret"]
        extra["location"] = {"address": values["location"][0], "area": "A1"}
    if plan.with_media:
        values["media"] = [f"https://m.example/{index}secret.jpg"]
        extra["media"] = [{"url": values["media"][0], "content_type": "image/jpeg", "sha256": SHA}]
    case = engine.report(reporter, description=values["description"][0], **extra)
    reported_at = clock.now()
    if plan.ending == "open":
        return Made(case.id, reported_at, None, values)
    clock.advance(days=plan.closed_after)
    if plan.ending == "reject":
        engine.trigger(case.id, "reject", by=DISPATCHER, reason="not ours")
    elif plan.ending == "cancel":
        values["inputs"] = [f"Why{index}secret"]
        engine.trigger(case.id, "cancel", by=reporter, reason=values["inputs"][0])
    else:
        values["inputs"] = [f"Thanks{index}secret"]
        engine.trigger(case.id, "answer", by=DISPATCHER, answer="see the notice")
        engine.trigger(case.id, "confirm", by=reporter, resolved="yes", comment=values["inputs"][0])
    return Made(case.id, reported_at, clock.now(), values)


def due_values(made: Made, at: datetime) -> list[str]:
    """The values the rules have made due at ``at``."""
    kinds: list[str] = []
    if made.closed_at is not None and made.closed_at + timedelta(days=CONTACT_DAYS) <= at:
        kinds += ["contact", "inputs"]
    if made.reported_at + timedelta(days=REPORT_DAYS) <= at:
        kinds += ["description", "location", "media"]
    return [value for kind in kinds for value in made.values.get(kind, [])]


@settings(max_examples=12)
@given(
    cases=st.lists(plans, min_size=1, max_size=4),
    purges=st.lists(st.integers(1, 200), min_size=1, max_size=3),
)
def test_every_chain_verifies_and_no_due_value_survives_a_purge(
    cases: list[Plan], purges: list[int]
) -> None:
    clock = ManualClock()
    start = clock.now()
    store = InMemoryStore()
    engine = Engine(WORKFLOW, store=store, clock=clock)
    made = [make(engine, clock, index, plan, start) for index, plan in enumerate(cases)]
    latest = clock.now()
    for offset in sorted(purges):
        at = max(latest, start + timedelta(days=offset))
        engine.purge(now=at)
        held = repr(vars(store._records)) + repr(vars(store._records._outbox))
        for one in made:
            report = engine.verify(one.case_id)
            assert report.ok, report.problems
            assert [v for v in due_values(one, at) if v in held] == []
