"""Two stores on one SQLite file, as two processes: each holds the rows it read or
wrote lately, and the other moves the cases on behind its back. Whichever of them
fires each step of the loop, every step is taken once, none is refused, and every
trail verifies: a row held from before is checked, never trusted."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import given, settings
from hypothesis import strategies as st

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER

STEPS = [
    ("classify", DISPATCHER, {"category": "01.02", "urgency": "normal"}),
    ("dispatch", DISPATCHER, {"unit": "water"}),
    ("accept", WATER, {}),
    ("submit_result", WATER, {"result": "Valve replaced"}),
    ("feedback", DISPATCHER, {"message": "Fixed"}),
    ("confirm", CITIZEN, {"rating": "satisfied"}),
]


@settings(max_examples=25, deadline=None)
@given(
    cases=st.integers(1, 3),
    turns=st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.booleans()), max_size=24),
)
def test_two_stores_take_turns_on_the_same_cases_without_a_refusal(
    cases: int, turns: list[tuple[int, bool, bool]]
) -> None:
    with TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'cases.db'}"
        stores = [SQLStore(url), SQLStore(url)]
        try:
            engines = [Engine(workflows.standard(), store=s, clock=ManualClock()) for s in stores]
            ids = [engines[0].report(CITIZEN, description=f"Leak {n}").id for n in range(cases)]
            taken = dict.fromkeys(ids, 0)
            for number, second, look_first in turns:
                case_id = ids[number % cases]
                if taken[case_id] == len(STEPS):
                    continue
                engine = engines[int(second)]
                if look_first:  # a host shows the case first: the row is read and held
                    engine.get(case_id, viewer=DISPATCHER)
                name, actor, fields = STEPS[taken[case_id]]
                fired = engine.trigger(case_id, name, by=actor, **fields)
                taken[case_id] += 1
                assert fired.version == taken[case_id] + 1
            for case_id in ids:
                for engine in engines:
                    history = engine.history(case_id)
                    assert [e.trigger for e in history] == [
                        "report",
                        *(name for name, _, _ in STEPS[: taken[case_id]]),
                    ]
                    assert engine.verify(case_id).ok
        finally:
            for store in stores:
                store.close()
