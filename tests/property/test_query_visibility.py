"""No query shows a viewer a case ``get`` would refuse them, or contact data ``get`` masks,
and no citizen is shown another reporter's identity or contact through a merged case.

Random cases (units, co-units, reporters, duplicates merged into them, states) and
random viewers (roles, units, ids); every query of the read side is compared with
``get``, case by case, and what ``get`` and ``history`` show a viewer who sees a case
only as a citizen holds no reporter id but their own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closedloop import Actor, CaseNotFound, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.engine.ports import CaseStore
from closedloop.testing import ManualClock
from closedloop.testing.contract.base import T0, add, deadline

WORKFLOW = workflows.standard()
HOUR = timedelta(hours=1)
UNITS = ("water", "roads", "parks")
PEOPLE = ("citizen-1", "citizen-2", "clerk")
STATES = ("reported", "assigned", "in_progress", "awaiting_confirmation", "closed")
GLOBAL_ROLES = tuple(r.name for r in WORKFLOW.roles if r.kind == "global")
SEES_ALL = frozenset(r.name for r in WORKFLOW.roles if r.sees_all)

cases = st.lists(
    st.fixed_dictionaries(
        {
            "state": st.sampled_from(STATES),
            "lead_unit": st.none() | st.sampled_from(UNITS),
            "co_units": st.lists(st.sampled_from(UNITS), unique=True, max_size=2).map(tuple),
            "reporter_id": st.sampled_from(PEOPLE),
            "area": st.sampled_from(("D1", "D1.S1", "D2.S1.C1")),
            "duplicates": st.lists(st.sampled_from(PEOPLE), unique=True, max_size=2).map(
                lambda people: tuple({"case": "x", "reporter": p, "at": T0} for p in people)
            ),
        }
    ),
    min_size=1,
    max_size=8,
)
viewers = st.builds(
    Actor,
    id=st.sampled_from(PEOPLE),
    roles=st.frozensets(st.sampled_from(GLOBAL_ROLES), max_size=2),
    units=st.frozensets(st.sampled_from(UNITS), max_size=2),
)


@contextmanager
def opened(kind: str) -> Iterator[CaseStore]:
    if kind == "memory":
        yield InMemoryStore()
        return
    with tempfile.TemporaryDirectory() as folder:
        store = SQLStore(f"sqlite:///{Path(folder) / 'cases.db'}")
        try:
            yield store
        finally:
            store.close()


def check(engine: Engine, viewer: Actor, ids: list[str]) -> None:
    visible = {}
    for case_id in ids:
        with suppress(CaseNotFound):
            visible[case_id] = engine.get(case_id, viewer=viewer)
    pages: list[Any] = [engine.inbox(viewer, limit=1000), engine.inbox(viewer, limit=1)]
    for order in ("oldest", "newest", "urgent"):
        pages.append(engine.find(viewer, order=order, limit=1000))
    pages.append(engine.find(viewer, area="D1", state=["assigned", "in_progress"]))
    pages.append(engine.find(viewer, waiting_on=viewer, lead_unit="water"))
    for page in pages:
        for case in page.cases:
            assert case.id in visible, "a query showed a case get refuses"
            assert case.contact == visible[case.id].contact, "a query unmasked contact data"
            assert case == visible[case.id], "a query showed a case otherwise than get"
    for case_id, case in visible.items():
        if viewer.roles & SEES_ALL or viewer.units & {case.lead_unit, *case.co_units}:
            continue  # staff of the case see who reported it
        shown_ids = {case.reporter_id, *(d.reporter for d in case.duplicates)}
        shown_ids |= {event.actor for event in engine.history(case_id, viewer=viewer)}
        others = set(PEOPLE) - {viewer.id}  # every reporter and duplicate's reporter
        assert not shown_ids & others, "a citizen saw another reporter"
        if case.reporter_id != viewer.id:
            assert case.contact is None, "a citizen saw another reporter's contact"
    assert {c.id for c in pages[2].cases} == set(visible)
    assert engine.count(viewer) == len(visible)
    assert sum(engine.facets(viewer, by="state").values()) == len(visible)


@pytest.mark.parametrize(("kind", "examples"), [("memory", 60), ("sqlite", 12)])
def test_no_query_shows_more_than_get(kind: str, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cases, st.lists(viewers, min_size=1, max_size=4))
    def run(rows: list[dict[str, Any]], people: list[Actor]) -> None:
        with opened(kind) as store:
            ids = []
            for n, row in enumerate(rows):
                area = row.pop("area")
                final = row["state"] == "closed"
                add(store, f"case-{n}", workflow=WORKFLOW.name, location={"area": area},
                    deadline=None if final else deadline(T0 + n * HOUR),
                    **row)  # fmt: skip
                ids.append(f"case-{n}")
            engine = Engine(WORKFLOW, store=store, clock=ManualClock())
            for viewer in people:
                check(engine, viewer, ids)

    run()
