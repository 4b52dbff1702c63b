"""``closedloop signals`` lists the flagged units of a period from a SQLite file, in one
line each with their cases, and exports them as JSON or CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from closedloop.adapters.sqlalchemy import SQLStore
from tests.integration.cli_runs import assert_one_line_error, run_all
from tests.unit.test_metrics_signals import run


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "cases.db"
    store = SQLStore(f"sqlite:///{path}")
    run(store)
    store.close()
    return path


def test_signals_lists_each_flagged_subject_with_its_reason_and_cases(database: Path) -> None:
    week = "2026-01-05..2026-01-11"
    text, as_json, as_csv, everything = run_all(
        database.parent,
        ("signals", "--db", database, "--period", week),
        ("signals", "--db", database, "--period", week, "--json"),
        ("signals", "--db", database, "--period", week, "--csv"),
        ("signals", "--db", database, "--period", week, "--csv", "--all"),
    )
    assert text.returncode == 0, text
    lines = text.stdout.splitlines()
    assert lines[0] == "Supervision signals, 2026-01-05 to 2026-01-11 (UTC)"
    assert lines[1].startswith("deadline_hugging: water: 3 of 5 results in the last 10%")
    assert lines[2] == "  cases: H1 H2 H3"
    assert "silent_cases: street_s1: 1 of 1 open cases silent" in text.stdout
    assert len(lines) == 1 + 2 * 7
    rows = json.loads(as_json.stdout)["rows"]
    assert [(r["signal"], r["subject"]) for r in rows][:2] == [
        ("deadline_hugging", "water"),
        ("ping_pong", "roads"),
    ]
    assert rows[-1]["cases"] == "S1"
    assert len(as_csv.stdout.splitlines()) == 1 + 7
    assert len(everything.stdout.splitlines()) > 1 + 7


def test_signals_refuses_a_period_it_cannot_read_as_a_usage_error(database: Path) -> None:
    runs = run_all(
        database.parent,
        ("signals", "--db", database, "--period", "last week"),
        ("board", "--db", database, "--period", "2026-13-01"),
    )
    for ran, why in zip(runs, ("Invalid isoformat string", "month must be in 1..12"), strict=True):
        assert ran.returncode == 2, ran
        said = " ".join(ran.stderr.replace("│", " ").split())
        assert "Invalid value for '--period'" in said, said
        assert why in said, said
        assert "write FIRST..LAST (dates, both included) or one DATE" in said, said
        assert "Traceback" not in ran.stderr


def test_a_misspelt_time_zone_is_told_the_closest_names(database: Path) -> None:
    (ran,) = run_all(
        database.parent,
        ("signals", "--db", database, "--period", "2026-01-05", "--timezone", "Asia/Shangai"),
    )
    assert_one_line_error(ran, "unknown time zone 'Asia/Shangai'; use an IANA zone name")
    assert "closest: Asia/Shanghai" in ran.stderr


def test_a_reversed_period_is_a_usage_error_that_says_so(database: Path) -> None:
    before = database.read_bytes()
    (ran,) = run_all(
        database.parent, ("signals", "--db", database, "--period", "2026-03-08..2026-03-02")
    )
    assert ran.returncode == 2, ran
    said = " ".join(ran.stderr.replace("│", " ").split())
    assert "Invalid value for '--period': '2026-03-08..2026-03-02' is reversed" in said
    assert "2026-03-02 is before 2026-03-08" in said
    assert "Traceback" not in ran.stderr
    assert database.read_bytes() == before


def test_board_shows_the_open_cases_and_one_line_per_flagged_unit(database: Path) -> None:
    week = "2026-01-05..2026-01-11"
    (shown,) = run_all(database.parent, ("board", "--db", database, "--period", week))
    assert shown.returncode == 0, shown
    lines = shown.stdout.splitlines()
    heading = lines.index("Flagged by the supervision signals (a reason to look, not a verdict):")
    flags = [line.strip() for line in lines[heading + 1 :]]
    assert len(flags) == 7
    assert flags[0].startswith("water: deadline_hugging: 3 of 5 results in the last 10%")
    assert "Supervision board" in shown.stdout
