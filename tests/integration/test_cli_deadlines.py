"""``closedloop deadlines recompute`` and the provisional clock in ``closedloop case show``,
on a SQLite file, with due times worked out by hand on the office-hours calendar."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from closedloop import Engine, Workflow, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.engine.calendars import chinese_office_hours
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER
from tests.integration.cli_runs import run

SHANGHAI = ZoneInfo("Asia/Shanghai")
CN_2027 = """\
name: cn-2027
years:
  2027:
    holidays: [2027-01-01, 2027-02-06..2027-02-13, 2027-10-01..2027-10-07]
    workdays: [2027-02-14, 2027-10-09]
"""


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def test_a_provisional_rung_is_shown_and_recounted_from_the_command_line(tmp_path: Path) -> None:
    data = yaml.safe_load(workflows.standard_yaml())
    for clock in data["clocks"]:
        if clock["name"] == "handling":
            clock.update({"calendar": "office-hours", "sla": []})
    (tmp_path / "workflow.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "cn-2027.yaml").write_text(CN_2027, encoding="utf-8")
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    clock = ManualClock(local(2026, 12, 21, 10))
    engine = Engine(
        Workflow.from_dict(data),
        store=store,
        clock=clock,
        calendars={"office-hours": chinese_office_hours()},
        id_factory=lambda: "case-1",
    )
    case = engine.report(CITIZEN, description="井盖缺失 manhole cover missing")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    engine.trigger(case.id, "accept", by=WATER)
    # Five office days after 12-21 end at 17:30 on 12-28; the breach and rung 1 then.
    clock.set(local(2026, 12, 28, 17, 30))
    assert engine.tick().applied == 3
    # Rung 2, the 10th office day: 29, 30, 31, then 2027-01-01 and 01-04 standing in.
    assert engine.next_due_at() == local(2027, 1, 4, 17, 30)
    store.close()

    workflow = ("--workflow", "workflow.yaml")
    shown = run(tmp_path, "case", "show", "case-1", "--db", "cases.db", *workflow)
    assert shown.returncode == 0, shown.stderr
    assert "no holiday data for 2027-01-01..2027-01-04" in " ".join(shown.stdout.split())

    args = ("deadlines", "recompute", "cases.db", "--since", "2027-01-01", *workflow)
    moved = run(tmp_path, *args, "--holidays", "cn-2027.yaml")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines() == ["moved case-1", "1 clocks counted again from 2027-01-01"]
    again = run(tmp_path, *args, "--holidays", "cn-2027.yaml")
    assert again.stdout.splitlines() == ["0 clocks counted again from 2027-01-01"]

    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}", create_schema=False)
    try:
        due = store.next_due_at()
    finally:
        store.close()
    # 2027-01-01 is a holiday: the 10th office day is 01-05.
    assert due == local(2027, 1, 5, 17, 30)
