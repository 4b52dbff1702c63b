"""The district simulation: reproducible, every case attended, the whole loop exercised."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

import closedloop
import closedloop.workflows
from closedloop import Actor, Engine, ValidationError, Workflow
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.calendars import chinese_office_hours
from closedloop.metrics import Period, compute
from closedloop.simulation import (
    START,
    District,
    Habits,
    Simulation,
    SimulationResult,
    check_cases,
)
from closedloop.simulation.district import FILES, YUNSHAN
from closedloop.simulation.habits import Dice
from closedloop.simulation.stage import Agenda, Story

STANDARD_YAML = Path(closedloop.workflows.__file__).with_name("standard.yaml")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "district"

BUSY = Habits(
    misclassify=0.3,
    return_otherwise=0.4,
    return_again=0.9,
    reject_return=0.9,
    ask_for_information=0.5,
    extension_when_overrunning=1.0,
    handling_office=MappingProxyType({"normal": (14.0, 0.3), "urgent": (14.0, 0.3)}),
    send_back=0.3,
    rework_on_time=0.3,
    reporter_silent=0.3,
    question=0.15,
)
"""Habits that make every turn of the loop happen within a few days."""


def simulated(
    days: int, seed: int, habits: Habits | None = None
) -> tuple[Simulation, SimulationResult]:
    simulation = Simulation(InMemoryStore(), days=days, seed=seed, habits=habits)
    return simulation, simulation.run()


@pytest.fixture(scope="module")
def three_days() -> tuple[Simulation, SimulationResult]:
    simulation = Simulation(InMemoryStore(), days=3, seed=5)
    return simulation, simulation.run()


def trails(simulation: Simulation, case_ids: tuple[str, ...]) -> list[tuple[str, str, str]]:
    engine = simulation.engine
    return [(i, engine.history(i)[-1].to_state, engine.history(i)[-1].hash) for i in case_ids]


def test_every_case_is_final_or_waits_on_an_owner_with_a_clock(
    three_days: tuple[Simulation, SimulationResult],
) -> None:
    simulation, result = three_days
    assert 30 <= len(result.case_ids) <= 120  # about twenty reports a day
    workflow = simulation.engine.workflow
    for case_id in result.case_ids:
        with simulation.engine.store.transaction() as tx:
            case = tx.get_case(case_id)
        assert case is not None
        if not workflow.state(case.state).final:
            assert case.waiting_on is not None, case_id
            assert case.deadline is not None, case_id
        assert simulation.engine.verify(case_id).ok, case_id
    assert check_cases(simulation.engine, result.case_ids).ok


def test_the_common_path_runs_and_the_timers_fire(
    three_days: tuple[Simulation, SimulationResult],
) -> None:
    _, result = three_days
    common = {"report", "classify", "dispatch", "accept", "submit_result", "feedback", "confirm"}
    assert common <= set(result.applied)
    assert result.timers > 0
    assert {"dispatch", "warn", "breach"} <= set(result.delivered)
    assert result.end == START + timedelta(days=3)


def test_refusals_are_only_guards_and_states_the_case_moved_past(
    three_days: tuple[Simulation, SimulationResult],
) -> None:
    _, result = three_days
    assert set(result.refused) <= {"GuardRejected", "TransitionNotAllowed"}
    assert sum(result.refused.values()) <= result.commands // 50


def test_every_turn_of_the_loop_happens() -> None:
    simulation, busy = simulated(4, seed=11, habits=BUSY)
    turns = {
        "return", "redispatch", "reject_return", "arbitrate", "request_info", "provide_info",
        "request_extension", "approve_extension", "send_back", "reject_result",
        "resolve_on_spot", "answer", "merge", "complete_subtask",
    }  # fmt: skip
    assert turns <= set(busy.applied), turns - set(busy.applied)
    assert check_cases(simulation.engine, busy.case_ids).ok


def test_citizens_answer_the_two_callback_questions_independently() -> None:
    simulation, result = simulated(6, seed=2)
    engine = simulation.engine
    answers: Counter[tuple[str, str]] = Counter()
    for case_id in result.case_ids:
        for event in engine.history(case_id):
            if event.trigger in ("confirm", "reject_result") and "resolved" in event.payload:
                answers[event.payload["resolved"], event.payload["rating"]] += 1
    assert answers["yes", "dissatisfied"] > 0  # resolved, yet dissatisfied
    assert answers["no", "satisfied"] + answers["no", "basically_satisfied"] > 0
    start = simulation.start
    total = compute(engine.store, Period(start=start, end=start + timedelta(days=6))).total
    assert total.resolution_rate != total.satisfaction_rate


def test_the_same_seed_gives_the_same_cases_and_trails() -> None:
    (first, one), (second, two) = simulated(1, seed=3), simulated(1, seed=3)
    assert one == two
    assert trails(first, one.case_ids) == trails(second, two.case_ids)
    other, three = simulated(1, seed=4)
    assert trails(other, three.case_ids) != trails(first, one.case_ids)


def test_a_refused_command_is_counted_and_any_other_error_propagates() -> None:
    simulation = Simulation(InMemoryStore(), days=1, seed=1)
    stage = simulation.stage
    district = simulation.district
    citizen = Actor("citizen-x")
    case = simulation.engine.report(citizen, description="x", location={"area": district.grids[0]})
    story = Story(case.id, citizen, district.grids[0], "02.01", "normal")
    assert stage.act(story, district.cast.dispatcher, "accept") is None
    assert stage.refused == {"TransitionNotAllowed": 1}
    assert story.step == 0
    with pytest.raises(ValidationError):
        stage.act(story, district.cast.dispatcher, "classify", category="not a code!")
    assert stage.act(story, district.cast.dispatcher, "classify", category="02.01") is not None
    assert story.step == 1


def test_actions_planned_before_the_case_moved_on_are_dropped() -> None:
    simulation = Simulation(InMemoryStore(), days=1, seed=1)
    stage = simulation.stage
    story = Story("case-x", Actor("c"), "D1.S1.C1.G01", "02.01", "normal")
    played: list[int] = []
    stage.later(story, START + timedelta(minutes=5), lambda _, s: played.append(s.step))
    stage.later(story, START + timedelta(minutes=9), lambda _, s: played.append(99))
    story.step += 1  # the case moved on before either ran
    stage.later(story, START + timedelta(minutes=7), lambda _, s: played.append(s.step))
    while (due := stage.agenda.pop_before(START + timedelta(hours=1))) is not None:
        due[1]()
    assert played == [1]


def test_the_agenda_plays_in_time_order_and_ties_in_scheduling_order() -> None:
    agenda, played = Agenda(), list[str]()
    for name, minutes in (("b", 5), ("a", 1), ("c", 5), ("d", 60)):
        agenda.push(START + timedelta(minutes=minutes), partial(played.append, name))
    while (due := agenda.pop_before(START + timedelta(minutes=30))) is not None:
        due[1]()
    assert played == ["a", "b", "c"]
    assert len(agenda) == 1


def test_office_hours_skip_nights_weekends_and_holidays() -> None:
    zone = District.load().time_zone
    calendar = chinese_office_hours(zone.key)
    assert calendar.name == "office-hours"
    friday_evening = datetime(2026, 3, 6, 17, tzinfo=zone)
    monday = calendar.advance(friday_evening, timedelta(hours=1))  # 30 min Friday, 30 Monday
    assert monday == datetime(2026, 3, 9, 9, tzinfo=zone)
    before_qingming = datetime(2026, 4, 3, 17, tzinfo=zone)  # 4-6 April are holidays
    assert calendar.advance(before_qingming, timedelta(hours=1)) == datetime(
        2026, 4, 7, 9, tzinfo=zone
    )


def test_the_packaged_district_is_the_example_district() -> None:
    for name in FILES:
        assert (YUNSHAN / name).read_bytes() == (EXAMPLE / name).read_bytes(), name


def test_a_district_folder_can_be_simulated(tmp_path: Path) -> None:
    for name in FILES:
        (tmp_path / name).write_bytes((YUNSHAN / name).read_bytes())
    district = District.load(tmp_path)
    assert len(district.grids) == 12
    assert district.cast.handler("YS-WATER").id == "jiang.tao"
    assert district.cast.handler("NO-MEMBERS").units == frozenset({"NO-MEMBERS"})
    assert set(district.cast.grid_workers.values()) == {
        tuple(g for g in district.grids if g.startswith("D1.S1")),
        tuple(g for g in district.grids if g.startswith("D1.S2")),
    }
    assert district.cast.verifier.roles == frozenset({"verifier"})


def test_a_run_needs_at_least_a_day() -> None:
    with pytest.raises(ValidationError, match="days: must be at least 1"):
        Simulation(InMemoryStore(), days=0)


def test_dice_are_reproducible() -> None:
    first, second = Dice(9), Dice(9)
    draws = [(first.count(3.0), first.wait((2.0, 0.5)), first.pick({"a": 1, "b": 3}))]
    assert draws == [(second.count(3.0), second.wait((2.0, 0.5)), second.pick({"a": 1, "b": 3}))]
    assert replace(Habits(), question=0.5).question == 0.5


def test_the_library_example_in_the_cli_docs_runs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/cli.md", "exec"), {"__name__": "docs"})


def simulation_imports(tree: ast.Module) -> tuple[int, int]:
    """How many imports of ``closedloop.simulation`` a module makes: at import time
    (``if TYPE_CHECKING:`` blocks aside), and inside functions."""
    typing_only = {
        id(node)
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    in_functions = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
    }
    at_import = inside = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if not any(n.startswith("closedloop.simulation") for n in names):
            continue
        if id(node) in in_functions:
            inside += 1
        elif id(node) not in typing_only:
            at_import += 1
    return at_import, inside


def test_only_the_demo_command_imports_the_simulation_and_only_when_it_runs() -> None:
    src = Path(closedloop.__file__).parent
    found = {}
    for path in sorted(src.rglob("*.py")):
        name = path.relative_to(src).as_posix()
        if not name.startswith("simulation/"):
            counts = simulation_imports(ast.parse(path.read_text(encoding="utf-8")))
            if counts != (0, 0):
                found[name] = counts
    assert found == {"cli/demo.py": (0, 1)}
    code = (
        "import sys\n"
        "from closedloop.cli.app import app\n"
        "import closedloop.adapters.apscheduler, closedloop.testing.state_machine\n"
        "assert not [m for m in sys.modules if m.startswith('closedloop.simulation')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_parts_of_the_simulation_do_not_import_each_other_in_a_circle() -> None:
    folder = Path(closedloop.__file__).parent / "simulation"
    modules = {path.stem for path in folder.glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        graph[name] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.module == "closedloop.simulation":
                graph[name].update(alias.name for alias in node.names if alias.name in modules)
            else:
                prefix, _, last = (node.module or "").rpartition(".")
                if prefix == "closedloop.simulation" and last in modules:
                    graph[name].add(last)
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name not in done:
            for imported in sorted(graph[name]):
                visit(imported, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())


@pytest.mark.parametrize("seed", [1, 2])
def test_the_demo_signals_flag_exactly_the_units_with_a_simulated_habit(seed: int) -> None:
    # Habits() gives YS-LIGHT the habit of holding results back to the deadline and
    # YS-GREEN and YS-ROADS the habit of handing cases back and forth; every other
    # unit is honest. The demo's own length (30 days) with the demo's thresholds.
    from closedloop.cli.demo import DEMO_SIGNALS
    from closedloop.metrics import signals

    habits = Habits()
    assert habits.deadline_huggers == {"YS-LIGHT"}
    assert habits.ping_pong_pairs == (("YS-GREEN", "YS-ROADS"),)
    store = InMemoryStore()
    simulation = Simulation(store, days=30, seed=seed)
    result = simulation.run()
    zone = simulation.district.time_zone.key
    period = Period(start=result.start, end=result.end, timezone=zone)
    report = signals(store, period, config=DEMO_SIGNALS)
    assert report.flagged_subjects("deadline_hugging") == ("YS-LIGHT",)
    assert report.flagged_subjects("ping_pong") == ("YS-GREEN", "YS-ROADS")
    assert report.flagged_subjects("ping_pong_pair") == ("YS-GREEN <-> YS-ROADS",)
    # The dispatcher's overturned decisions fall on the pair's own categories (the
    # dispatcher passes a bounced case to the other unit), never elsewhere.
    pair_led = {
        entry.category
        for entry in simulation.district.duties.entries
        if entry.lead_unit in {"YS-GREEN", "YS-ROADS"}
    }
    misrouted = {row.category for row in report.flags if row.signal == "misrouting"}
    assert misrouted, "the bounced cases overturn some dispatches"
    assert misrouted <= pair_led, (misrouted, pair_led)
    others = {row.signal for row in report.flags} - {
        "deadline_hugging", "ping_pong", "ping_pong_pair", "misrouting"
    }  # fmt: skip
    assert others == set(), [row.reason for row in report.flags]


def test_a_trigger_field_may_have_any_name_the_stage_takes_for_its_own() -> None:
    data = yaml.safe_load(STANDARD_YAML.read_text(encoding="utf-8"))
    classify = next(t for t in data["transitions"] if t["name"] == "classify")
    for name in ("moves", "story", "actor", "trigger", "fields"):
        classify["fields"][name] = {"type": "text"}
    simulation = Simulation(InMemoryStore(), days=1, seed=1)
    engine = Engine(Workflow.from_dict(data), store=InMemoryStore(), clock=simulation.clock)
    stage = replace(simulation.stage, engine=engine)
    dispatcher = simulation.district.cast.dispatcher
    citizen = Actor("citizen-x")
    case = engine.report(citizen, description="x", location={"area": "D1.S1.C1"})
    story = Story(case.id, citizen, "D1.S1.C1", "01.01", "normal")
    fields = {"category": "01.01", "moves": "m", "fields": "f"}
    classified = stage.act(story, dispatcher, "classify", fields, story="s", actor="a", trigger="t")
    assert classified is not None
    assert classified.state == "classified"
    assert engine.history(case.id)[-1].payload == {
        "category": "01.01",
        "urgency": "normal",
        "moves": "m",
        "fields": "f",
        "story": "s",
        "actor": "a",
        "trigger": "t",
    }
    assert story.step == 1  # moves=True, the stage's own default
    with pytest.raises(TypeError, match="'unit' in fields and as a keyword"):
        stage.act(story, dispatcher, "dispatch", {"unit": "water"}, unit="power")
    assert stage.act(story, dispatcher, "dispatch", {"unit": "water"}, moves=False) is not None
    assert story.step == 1
