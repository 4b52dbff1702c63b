"""``closedloop cases`` lists a query's cases from a SQLite file; every command that opens
a database with a workflow refuses, in one line, a workflow its cases were not written
with."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from closedloop import Actor, Engine, Workflow, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.cli import app
from closedloop.engine.case_query import CaseFilter
from closedloop.testing import ManualClock
from tests.integration.cli_runs import Ran, assert_one_line_error, run_all

DISPATCHER = Actor("op-1", roles=frozenset({"dispatcher"}))
WATER = Actor("crew-w", units=frozenset({"water"}))
LIGHTS = Actor("crew-l", units=frozenset({"lights"}))


def dispatched(engine: Engine, case_id: str, category: str, unit: str) -> None:
    engine.trigger(case_id, "classify", by=DISPATCHER, category=category)
    engine.trigger(case_id, "dispatch", by=DISPATCHER, unit=unit)


def fill(path: Path) -> None:
    """Six cases: c1-c5 reported ten days ago (their clocks have run out), c6 now.

    c1 reported (dispatcher), c2 assigned to lights, c3 in progress at water, c4 awaiting
    the confirmation of citizen-4 (water), c5 closed (lights), c6 reported just now.
    """
    store = SQLStore(f"sqlite:///{path}")
    now = datetime.now(UTC)
    clock = ManualClock(now - timedelta(days=10))
    ids = iter(["c1", "c2", "c3", "c4", "c5", "c6"])
    engine = Engine(workflows.standard(), store=store, clock=clock, id_factory=lambda: next(ids))
    texts = [("Street light out", "3 Oak Rd"), ("Lamp flickering", "12 Elm St"),
             ("Burst pipe on Oak Road", None), ("No water since Monday", "7 Pine Ave"),
             ("Lamp post leaning", "1 Ash Ln")]  # fmt: skip
    for number, (description, address) in enumerate(texts, start=1):
        where = {"address": address, "area": "A1"} if address else {"area": "A2"}
        engine.report(Actor(f"citizen-{number}"), description=description, location=where)
    dispatched(engine, "c2", "03.01", "lights")
    dispatched(engine, "c3", "01.01", "water")
    engine.trigger("c3", "accept", by=WATER)
    dispatched(engine, "c4", "01.01", "water")
    dispatched(engine, "c5", "03.01", "lights")
    for case_id, crew in (("c4", WATER), ("c5", LIGHTS)):
        engine.trigger(case_id, "accept", by=crew)
        engine.trigger(case_id, "submit_result", by=crew, result="done")
        engine.trigger(case_id, "feedback", by=DISPATCHER)
    engine.trigger("c5", "confirm", by=Actor("citizen-5"), rating="satisfied")
    clock.set(now)
    engine.report(Actor("citizen-6"), description="Bench broken", location="9 Oak Rd")
    store.close()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cases")
    fill(folder / "cases.db")
    return folder / "cases.db"


def ids(ran: Ran) -> list[str]:
    assert ran.returncode == 0, ran.stderr
    return [case["id"] for case in json.loads(ran.stdout)["cases"]]


QUERIES: dict[tuple[str, ...], list[str]] = {
    (): ["c1", "c2", "c3", "c4", "c5", "c6"],
    ("--state", "in_progress", "--state", "assigned"): ["c2", "c3"],
    ("--unit", "water"): ["c3", "c4"],
    ("--overdue",): ["c1", "c2", "c3", "c4"],
    ("--waiting-on", "dispatcher"): ["c1", "c6"],
    ("--waiting-on", "role:assignee"): ["c2", "c3"],
    ("--waiting-on", "unit:water"): ["c3"],
    ("--waiting-on", "unit:lights"): ["c2"],
    ("--waiting-on", "reporter:citizen-4"): ["c4"],
    ("--waiting-on", "reporter:citizen-5"): [],
    ("--search", "OAK"): ["c1", "c3", "c6"],
    ("--search", "oak", "--unit", "water"): ["c3"],
    ("--search", "oak", "--overdue", "--waiting-on", "dispatcher"): ["c1"],
    ("--state", "closed", "--waiting-on", "dispatcher"): [],
}


def test_cases_lists_exactly_the_cases_each_query_selects(database: Path) -> None:
    queries = list(QUERIES)
    results = run_all(
        database.parent, *(("cases", "--db", database, "--json", *q) for q in queries)
    )
    assert {q: ids(ran) for q, ran in zip(queries, results, strict=True)} == QUERIES


def test_cases_pages_counts_and_shows_a_table(database: Path) -> None:
    limited, waiting, table, closed, nothing = run_all(
        database.parent,
        ("cases", "--db", database, "--json", "--limit", "2"),
        ("cases", "--db", database, "--json", "--limit", "1", "--waiting-on", "dispatcher"),
        ("cases", "--db", database, "--unit", "water", "--timezone", "Asia/Shanghai"),
        ("cases", "--db", database, "--json", "--state", "closed"),
        ("cases", "--db", database, "--state", "cancelled"),
    )
    first = json.loads(limited.stdout)
    assert (ids(limited), first["total"], first["more"]) == (["c1", "c2"], 6, True)
    some = json.loads(waiting.stdout)
    assert (ids(waiting), some["total"], some["more"]) == (["c1"], 2, True)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "2 of 2 cases matching"
    rows = [line.split()[:4] for line in lines if re.match(r" c\d ", line)]
    assert rows == [["c3", "in_progress", "assignee", "water"],
                    ["c4", "awaiting_confirmation", "reporter", "water"]]  # fmt: skip
    assert "+08:00" in table.stdout
    done = json.loads(closed.stdout)["cases"]
    assert [(c["id"], c["state"], c["deadline"]) for c in done] == [("c5", "closed", None)]
    assert "contact" not in done[0]
    assert nothing.stdout == "No case matches.\n"


def test_cases_refuses_what_it_cannot_ask(database: Path) -> None:
    state, form, role = run_all(
        database.parent,
        ("cases", "--db", database, "--state", "in_progres"),
        ("cases", "--db", database, "--waiting-on", "team:water"),
        ("cases", "--db", database, "--waiting-on", "role:nobody"),
    )
    assert_one_line_error(state, "unknown state 'in_progres'", "in_progress")
    assert_one_line_error(form, "--waiting-on: write role:NAME, unit:ID or reporter:ID")
    assert_one_line_error(role, "unknown role 'nobody'", "dispatcher")


COMPLAINTS = """
name: complaints
roles:
  - {name: dispatcher, kind: global, sees_all: true}
  - {name: reporter, kind: reporter}
clocks:
  - {name: triage, duration: "4 hours"}
  - {name: look, duration: "1 day"}
states:
  - {name: reported, initial: true, owner: dispatcher, clock: triage}
  - {name: investigate, owner: dispatcher, clock: look}
  - {name: done, final: true}
transitions:
  - {name: open, from: [reported], to: investigate, roles: [dispatcher]}
  - {name: close, from: [investigate], to: done, roles: [dispatcher]}
"""


@pytest.fixture(scope="module")
def complaints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of the complaints workflow: one case in 'investigate', its timers due;
    beside it the workflow, a renamed copy and a copy whose clock has another name."""
    folder = tmp_path_factory.mktemp("complaints")
    (folder / "complaints.yaml").write_text(COMPLAINTS, encoding="utf-8")
    renamed = COMPLAINTS.replace("name: complaints", "name: grievances")
    (folder / "renamed.yaml").write_text(renamed, encoding="utf-8")
    reclocked = COMPLAINTS.replace("look", "inspect")
    (folder / "reclocked.yaml").write_text(reclocked, encoding="utf-8")
    store = SQLStore(f"sqlite:///{folder / 'cases.db'}")
    clock = ManualClock(datetime.now(UTC) - timedelta(days=2))
    engine = Engine(
        Workflow.from_yaml(folder / "complaints.yaml"), store=store, clock=clock,
        id_factory=lambda: "k1",
    )  # fmt: skip
    engine.report(Actor("citizen-1"), description="Noise at night", location="5 Elm St")
    engine.trigger("k1", "open", by=DISPATCHER)
    store.close()
    return folder


def test_a_workflow_the_cases_were_not_written_with_is_a_one_line_error(complaints: Path) -> None:
    db = complaints / "cases.db"
    runs = run_all(
        complaints,
        ("worker", db, "--interval", "0.2"),
        ("cases", "--db", db),
        ("case", "show", "k1", "--db", db),
        ("worker", db, "--workflow", "renamed.yaml"),
        ("cases", "--db", db, "--workflow", "reclocked.yaml"),
        ("case", "show", "k1", "--db", db, "--workflow", "renamed.yaml"),
    )
    undeclared = "it is in state 'investigate', which workflow 'standard' does not declare"
    for ran in runs[:3]:
        assert_one_line_error(ran, "workflow 'standard' cannot handle the stored case 'k1'",
                              "(written by workflow 'complaints')", undeclared)  # fmt: skip
    assert_one_line_error(runs[3], "workflow 'grievances'", "the workflows' names differ")
    assert_one_line_error(runs[4], "its clock 'look' is not a clock of workflow 'complaints'")
    assert_one_line_error(runs[5], "the workflows' names differ")


def test_the_workflow_the_cases_were_written_with_reads_them(complaints: Path) -> None:
    db = complaints / "cases.db"
    listed, shown = run_all(
        complaints,
        ("cases", "--db", db, "--workflow", "complaints.yaml", "--json", "--overdue"),
        ("case", "show", "k1", "--db", db, "--workflow", "complaints.yaml"),
    )
    assert ids(listed) == ["k1"]
    assert shown.returncode == 0, shown.stderr
    assert "investigate (version 2, workflow complaints)" in shown.stdout


def test_cases_reads_one_page_of_the_matching_cases_whatever_the_database_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "cases.db"
    store = SQLStore(f"sqlite:///{db}")
    engine = Engine(workflows.standard(), store=store)
    for number in range(40):  # every eighth one a burst pipe, the rest street lamps
        text = "Burst pipe" if number % 8 == 7 else "Street lamp out"
        engine.report(Actor(f"citizen-{number}"), description=text, location="3 Oak Rd")
    store.close()
    pages: list[tuple[str | None, int]] = []  # each page read: its text criterion, its size
    for name in ("select_cases", "select_shown"):
        original = getattr(SQLStore, name)

        def reading(self: SQLStore, where: CaseFilter, *args: object, _original: Any = original,
                    **kw: object) -> Any:  # fmt: skip
            answer = _original(self, where, *args, **kw)
            page = answer[0] if isinstance(answer, tuple) else answer
            pages.append((where.text, len(page.cases)))
            return answer

        monkeypatch.setattr(SQLStore, name, reading)
    ran = CliRunner().invoke(
        app, ["cases", "--db", str(db), "--search", "pipe", "--waiting-on", "dispatcher",
              "--limit", "2", "--json"],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    listed = json.loads(ran.stdout)
    assert (len(listed["cases"]), listed["total"], listed["more"]) == (2, 5, True)
    assert {case["description"] for case in listed["cases"]} == {"Burst pipe"}
    # One page of the two listed, asked with the text (not the forty cases, scanned).
    assert [size for text, size in pages if text is not None] == [2]
