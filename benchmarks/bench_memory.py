"""The in-memory loop beside bare state machines doing the same seven steps.

Each side runs cases through seven steps: the report and the six triggers of the
standard workflow (classify, dispatch, accept, submit_result, feedback, confirm).

* **closedloop**: ``Engine.report`` and ``Engine.trigger`` on an ``InMemoryStore`` (with
  everything a command does: validation, roles, clocks, the hash-chained audit event).
* **transitions**: one shared ``transitions.Machine`` built from the standard
  workflow's states and transitions (plus a ``report`` transition into ``reported``),
  one model object; each step restores the case's state from a dict (``set_state``),
  fires the trigger and stores the new state: the library closedloop runs on, bare.
* **SpiffWorkflow** (the ``bench`` extra): a BPMN process of six user tasks in a row;
  the report starts a workflow and saves it as JSON, each trigger loads the JSON,
  completes the ready task, runs the engine steps and saves it again, as a service
  keeping its workflows in a database would.

Repeats alternate the two sides of each row; a ratio is the median of the per-repeat
ratios of transitions per second. Goals: at least 0.5 of bare ``transitions`` and 8
times SpiffWorkflow.

Run it with ``python benchmarks/bench_memory.py [--cases N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import loop
from table import Row, median_ratio, paired, print_table, rate, timed
from transitions import Machine

from closedloop import Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import ManualClock

STEPS = 1 + len(loop.TRIGGERS)
"""The report and the six triggers."""


def closedloop_run(cases: int) -> Callable[[], None]:
    """Run ``cases`` cases through the loop on a warm engine (made once, here)."""
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=ManualClock())
    loop.advance(engine, loop.report(engine, -1))  # warm up
    counter = iter(range(10**9))

    def run() -> None:
        for _ in range(cases):
            loop.advance(engine, loop.report(engine, next(counter)))

    return run


class _Model:
    state: str


def transitions_run(cases: int) -> Callable[[], None]:
    """The same steps on one shared ``transitions.Machine``, state kept in a dict."""
    workflow = workflows.standard()
    machine = Machine(
        model=None,
        states=["new", *(s.name for s in workflow.states)],
        transitions=[
            {"trigger": "report", "source": "new", "dest": "reported"},
            *(
                {"trigger": t.name, "source": list(t.source), "dest": t.dest}
                for t in workflow.transitions
            ),
        ],
        initial="new",
        auto_transitions=False,
    )
    model = _Model()
    machine.add_model(model)
    states: dict[int, str] = {}

    def step(case: int, trigger: str) -> None:
        machine.set_state(states.get(case, "new"), model=model)
        getattr(model, trigger)()
        states[case] = model.state

    def run() -> None:
        states.clear()
        for case in range(cases):
            step(case, "report")
            for trigger in loop.TRIGGERS:
                step(case, trigger)
        assert all(state == "closed" for state in states.values())

    return run


SPIFF_PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  id="loop-definitions" targetNamespace="http://bpmn.io/schema/bpmn">
<bpmn:process id="loop" isExecutable="true">
<bpmn:startEvent id="start"/>{tasks}<bpmn:endEvent id="end"/>{flows}
</bpmn:process>
</bpmn:definitions>
"""


def spiff_run(cases: int) -> Callable[[], None] | None:
    """The same steps as SpiffWorkflow load-step-save JSON, or ``None`` without it."""
    try:
        from SpiffWorkflow.bpmn.parser import BpmnParser
        from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
        from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
        from SpiffWorkflow.util.task import TaskState
    except ImportError:
        return None
    nodes = ["start", *loop.TRIGGERS, "end"]
    process = SPIFF_PROCESS.format(
        tasks="".join(f'<bpmn:userTask id="{t}" name="{t}"/>' for t in loop.TRIGGERS),
        flows="".join(
            f'<bpmn:sequenceFlow id="flow{n}" sourceRef="{a}" targetRef="{b}"/>'
            for n, (a, b) in enumerate(pairwise(nodes))
        ),
    )
    parser = BpmnParser()
    parser.add_bpmn_str(process.encode())
    spec = parser.get_spec("loop")
    serializer = BpmnWorkflowSerializer()
    saved: dict[int, str] = {}

    def report(case: int) -> None:
        workflow: Any = BpmnWorkflow(spec)
        workflow.do_engine_steps()
        saved[case] = serializer.serialize_json(workflow)

    def step(case: int, trigger: str) -> None:
        workflow: Any = serializer.deserialize_json(saved[case])
        (task,) = workflow.get_tasks(state=TaskState.READY, manual=True)
        assert task.task_spec.name == trigger, task.task_spec.name
        task.data[trigger] = "done"
        task.run()
        workflow.do_engine_steps()
        saved[case] = serializer.serialize_json(workflow)

    def run() -> None:
        saved.clear()
        for case in range(cases):
            report(case)
            for trigger in loop.TRIGGERS:
                step(case, trigger)
        assert serializer.deserialize_json(saved[cases - 1]).is_completed()

    return run


def rows(cases: int, repeats: int) -> tuple[list[Row], list[str]]:
    """The table's rows for this benchmark, and its notes."""
    steps = cases * STEPS
    ours = closedloop_run(cases)
    result: list[Row] = []
    notes = [f"{cases:,} cases x {STEPS} steps (report + 6 triggers), {repeats} repeats"]
    peers: list[tuple[str, Callable[[], None] | None, float]] = [
        ("transitions (shared Machine, set_state + trigger), steps/s", transitions_run(cases), 0.5),
        ("SpiffWorkflow (BPMN, load-step-save JSON), steps/s", spiff_run(cases), 8.0),
    ]
    for name, peer, goal in peers:
        if peer is None:
            notes.append(f"{name}: not installed (pip install -e '.[bench]'); row left out")
            continue
        peer()  # warm up
        mine, theirs = paired(repeats, lambda: timed(ours), lambda p=peer: timed(p))
        result.append(
            Row(
                f"in-memory loop vs {name}",
                rate(steps, statistics.median(theirs)),
                rate(steps, statistics.median(mine)),
                median_ratio(theirs, mine),  # a rate ratio is the inverse time ratio
                goal,
            )
        )
    return result, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300, help="cases per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    table, notes = rows(args.cases, args.repeats)
    print_table("In-memory loop", table, notes)


if __name__ == "__main__":
    main()
