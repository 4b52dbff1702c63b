"""The ``closedloop`` command line, run as a user runs it: a subprocess per command
(see ``cli_runs``; the console script's declaration is checked separately)."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import pytest

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import HEAD_REVISION, SQLStore, upgrade
from closedloop.cli.report import BOARD_COLUMNS, HANDLING_COLUMNS, THREE_RATES_COLUMNS, cells
from closedloop.engine.calendars import chinese_office_hours
from closedloop.metrics import Period, compute, supervision_board, to_csv
from closedloop.simulation import START, District
from tests.integration.cli_runs import Ran, assert_one_line_error, run, run_all

ROOT = Path(__file__).resolve().parents[2]
DISTRICT = ROOT / "examples" / "district"
STANDARD = ROOT / "src" / "closedloop" / "workflows" / "standard.yaml"
UNREACHABLE = "postgresql://nobody@127.0.0.1:9/closedloop"  # port 9 (discard) refuses
DEMO_DAYS = 5


def printed_table(stdout: str, title: str) -> list[list[str]]:
    """The rows of the table printed under ``title`` (cells split on whitespace)."""
    lines = iter(stdout.splitlines())
    for line in lines:
        if line.startswith(title):
            break
    else:
        raise AssertionError(f"no table {title!r} in:\n{stdout}")
    for line in lines:
        if line.strip().startswith("─"):
            break
    rows = []
    for line in lines:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


# -- the demo ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Demos:
    folder: Path
    main: Ran
    again: tuple[Ran, Ran]


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Demos:
    folder = tmp_path_factory.mktemp("demo")
    main, first, second = run_all(
        folder,
        ("demo", "--days", str(DEMO_DAYS), "--seed", "1"),
        ("demo", "--days", "1", "--seed", "7", "--db", "a.db", "--out", "a"),
        ("demo", "--days", "1", "--seed", "7", "--db", "b.db", "--out", "b"),
    )
    return Demos(folder, main, (first, second))


@pytest.fixture(scope="module")
def demo_store(demos: Demos) -> Iterator[SQLStore]:
    assert demos.main.returncode == 0, demos.main.stderr
    store = SQLStore(f"sqlite:///{demos.folder / 'closedloop-demo.db'}", create_schema=False)
    yield store
    store.close()


def demo_engine(store: SQLStore) -> Engine:
    office = chinese_office_hours(District.load().time_zone.key)
    return Engine(workflows.standard(), store=store, calendars={office.name: office})


def test_demo_completes_and_says_where_its_exports_are(demos: Demos) -> None:
    ran = demos.main
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert f"Simulated {DEMO_DAYS} days of 云杉区 Yunshan District" in ran.stdout
    assert "audit chains verify" in ran.stdout
    assert "Database: closedloop-demo.db (SQLite, synchronous=NORMAL)" in ran.stdout
    out = demos.folder / "closedloop-demo"
    for name in ("metrics-by-unit.csv", "supervision-board.csv", "on-time-by-unit.png"):
        assert f"closedloop-demo/{name}" in ran.stdout
    assert (out / "on-time-by-unit.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (out / "intake-per-day.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_every_demo_case_is_closed_or_waits_on_an_owner_with_a_live_clock(
    demo_store: SQLStore,
) -> None:
    engine = demo_engine(demo_store)
    ids = demo_store.case_ids()
    assert len(ids) > 50
    end = START + timedelta(days=DEMO_DAYS)
    for case_id in ids:
        with demo_store.transaction() as tx:
            case = tx.get_case(case_id)
        assert case is not None
        if not engine.workflow.state(case.state).final:
            assert case.waiting_on is not None, case_id
            assert case.deadline is not None, case_id
        report = engine.verify(case_id)
        assert report.ok, report.problems
    assert all(e.at <= end for e in engine.history(ids[-1]))


def test_the_printed_metrics_equal_the_metrics_of_its_database(
    demos: Demos, demo_store: SQLStore
) -> None:
    end = START + timedelta(days=DEMO_DAYS)
    period = Period(start=START, end=end, timezone="Asia/Shanghai")
    table = compute(demo_store, period, by="unit")
    for title, columns in (("Handling", HANDLING_COLUMNS), ("Three rates", THREE_RATES_COLUMNS)):
        expected = [cells(row, columns) for row in (*table.rows, table.total)]
        assert printed_table(demos.main.stdout, title) == expected
    board = supervision_board(demo_store, as_of=end)
    expected = [cells(row, BOARD_COLUMNS) for row in (*board.rows, board.total)]
    assert printed_table(demos.main.stdout, "Supervision board") == expected
    exported = (demos.folder / "closedloop-demo" / "metrics-by-unit.csv").read_text("utf-8-sig")
    assert exported == to_csv(table).replace("\r\n", "\n")
    assert len(list(csv.DictReader(exported.splitlines()))) == len(table.rows) + 1


def test_the_same_seed_gives_the_same_results(demos: Demos) -> None:
    first, second = demos.again
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    for title in ("Handling", "Three rates", "Supervision board"):
        assert printed_table(first.stdout, title) == printed_table(second.stdout, title)
    trails = []
    for name in ("a.db", "b.db"):
        with sqlite3.connect(demos.folder / name) as db:
            query = "SELECT case_id, seq, hash FROM closedloop_case_events ORDER BY 1, 2"
            trails.append(db.execute(query).fetchall())
    assert trails[0] == trails[1]
    assert len(trails[0]) > 30


def test_case_show_prints_the_case_its_history_and_the_verification(demos: Demos) -> None:
    db = demos.folder / "closedloop-demo.db"
    tampered = demos.folder / "tampered.db"
    with sqlite3.connect(db) as source, sqlite3.connect(tampered) as target:
        source.backup(target)
        target.execute(
            "UPDATE closedloop_case_events SET actor = 'someone-else' WHERE case_id = 'case-00002'"
        )
    shown, missing, broken = run_all(
        demos.folder,
        ("case", "show", "case-00001", "--db", db, "--timezone", "Asia/Shanghai"),
        ("case", "show", "case-99999", "--db", db),
        ("case", "show", "case-00002", "--db", f"sqlite:///{tampered}"),
    )
    assert shown.returncode == 0, shown.stderr
    assert "Audit chain verified" in shown.stdout
    assert "citizen-00001" in shown.stdout
    assert "139****" in shown.stdout  # contact data masked
    assert_one_line_error(missing, "case 'case-99999' not found")
    assert_one_line_error(broken, "does not verify", "content does not match its hash")


def test_case_show_checks_checkpoint_signatures_only_with_the_key(
    demos: Demos, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = bytes(range(32))
    db = demos.folder / "signed.db"
    with (
        sqlite3.connect(demos.folder / "closedloop-demo.db") as source,
        sqlite3.connect(db) as target,
    ):
        source.backup(target)
    store = SQLStore(f"sqlite:///{db}")
    office = chinese_office_hours(District.load().time_zone.key)
    engine = Engine(
        workflows.standard(), store=store, calendars={office.name: office}, checkpoint_key=key
    )
    made = engine.checkpoint()
    store.close()
    assert made is not None
    show = ("case", "show", "case-00050", "--db", db)
    monkeypatch.setenv("CLOSEDLOOP_CHECKPOINT_KEY", key.hex())
    keyed = run(demos.folder, *show)
    assert keyed.returncode == 0, keyed.stderr
    assert "Checkpoint signatures checked with the key" in keyed.stdout
    # Someone who can write the database edits the checkpoint row (here: another
    # case's head). Without the key nothing tells; with it the signature fails.
    heads = [
        {**h.model_dump(), "hash": "0" * 64} if h.case_id == "case-00049" else h.model_dump()
        for h in made.heads
    ]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE closedloop_checkpoints SET heads = ?", (json.dumps(heads),))
    edited = run(demos.folder, *show)
    assert_one_line_error(edited, "signature does not verify under the key given")
    monkeypatch.delenv("CLOSEDLOOP_CHECKPOINT_KEY")
    keyless = run(demos.folder, *show)
    assert keyless.returncode == 0, keyless.stderr
    assert "Checkpoint signatures were not checked" in keyless.stdout
    monkeypatch.setenv("CLOSEDLOOP_CHECKPOINT_KEY", "not hex")
    assert_one_line_error(run(demos.folder, *show), "must be hexadecimal")


def test_demo_keeps_an_existing_file_when_told_to(tmp_path: Path) -> None:
    (tmp_path / "mine.db").write_text("precious")
    ran = run(tmp_path, "demo", "--days", "1", "--db", "mine.db", "--no-overwrite")
    assert_one_line_error(ran, "mine.db exists")
    assert (tmp_path / "mine.db").read_text() == "precious"


# -- definitions and lists ----------------------------------------------------------------


def test_workflow_commands(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nstates: []\nbogus: 1\n", encoding="utf-8")
    valid, invalid, mermaid, dot, undrawable = run_all(
        tmp_path,
        ("validate", STANDARD),
        ("validate", broken),
        ("diagram", STANDARD),
        ("diagram", STANDARD, "--format", "dot"),
        ("diagram", broken),
    )
    assert valid.returncode == 0, valid.stderr
    assert "workflow 'standard' version 1 is valid: 12 states (4 final)" in valid.stdout
    assert_one_line_error(invalid, "broken.yaml", "roles: Field required", "bogus")
    assert "  - bogus: Extra inputs are not permitted" in invalid.stdout  # every problem listed
    assert mermaid.stdout.startswith("stateDiagram-v2\n    [*] --> reported\n")
    assert "    classified --> arbitration: dispatch (divert)" in mermaid.stdout
    assert "    closed --> [*]" in mermaid.stdout
    assert dot.stdout.startswith('digraph "standard" {')
    assert '"returned" -> "assigned" [label="redispatch\\nreject_return"];' in dot.stdout
    assert_one_line_error(undrawable, "invalid workflow")


def test_list_commands(tmp_path: Path) -> None:
    duties = DISTRICT / "duties.yaml"
    routed, after_switch, unknown, near, gaps, no_list = run_all(
        tmp_path,
        ("route", duties, "--category", "01.01", "--area", "D1.S1.C1.G01", "--at",
         "2026-02-10T08:15"),
        ("route", duties, "--category", "03.01", "--area", "D1.S2.C4.G08", "--at",
         "2026-03-01 00:00"),
        ("route", duties, "--category", "01.01", "--area", "D9.NOWHERE"),
        ("route", duties, "--category", "01.1", "--area", "D1.S1.C1.G1"),
        ("gaps", duties),
        ("route", tmp_path / "none.yaml", "--category", "01.01", "--area", "D1"),
    )  # fmt: skip
    assert routed.returncode == 0, routed.stderr
    assert "lead unit         YS-WATER 云杉水务有限公司" in routed.stdout
    assert "Entry E-0101 decides: lead unit YS-WATER" in routed.stdout
    assert "E-0301-B (owner)" in after_switch.stdout  # the lamp contract from 1 March
    assert_one_line_error(unknown, "unknown area 'D9.NOWHERE'")
    # A near miss is told the closest codes the catalogue and the directory list.
    assert_one_line_error(near, "unknown category '01.1'; closest: 01.01, 01, 01.02")
    assert "unknown area 'D1.S1.C1.G1'; closest: D1.S1.C1.G01, D1.S1.C1.G02" in near.stderr
    assert gaps.returncode == 0, gaps.stderr
    assert "12 of 168 (category, grid) pairs only a fallback owner covers" in gaps.stdout
    assert gaps.stdout.count("消防栓") == 6
    assert_one_line_error(no_list, "no responsibility list at")


def test_database_commands(tmp_path: Path) -> None:
    fresh, down, show_down, worker_down, no_file = run_all(
        tmp_path,
        ("db", "upgrade", "fresh.db"),
        ("db", "upgrade", UNREACHABLE),
        ("case", "show", "case-00001", "--db", UNREACHABLE),
        ("worker", UNREACHABLE),
        ("case", "show", "case-00001", "--db", tmp_path / "missing.db"),
    )
    assert fresh.returncode == 0, fresh.stderr
    assert (
        fresh.stdout == f"closedloop tables created at revision {HEAD_REVISION} (there were none)\n"
    )
    shown = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert fresh.stdout.strip() in shown, "docs/cli.md shows another revision than the head"
    assert (tmp_path / "fresh.db").is_file()
    for ran in (down, show_down, worker_down):
        assert_one_line_error(ran)
        assert "unavailable" in ran.stderr or "not installed" in ran.stderr
    assert_one_line_error(no_file, "no SQLite database at")
    assert not (tmp_path / "missing.db").exists()


def test_db_upgrade_says_whether_it_created_upgraded_or_found_the_schema_current(
    tmp_path: Path,
) -> None:
    upgrade(f"sqlite:///{tmp_path / 'old.db'}", revision="0008")
    SQLStore(f"sqlite:///{tmp_path / 'current.db'}").close()
    old, current, new = run_all(
        tmp_path,
        ("db", "upgrade", "old.db"),
        ("db", "upgrade", "current.db"),
        ("db", "upgrade", "new.db"),
    )
    for ran in (old, current, new):
        assert ran.returncode == 0, ran
    assert old.stdout == f"closedloop schema upgraded from revision 0008 to {HEAD_REVISION}\n"
    assert (
        current.stdout == f"closedloop schema already at revision {HEAD_REVISION}: nothing to do\n"
    )
    assert (
        new.stdout == f"closedloop tables created at revision {HEAD_REVISION} (there were none)\n"
    )
    shown = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current.stdout.strip() in shown, "docs/cli.md shows another revision than the head"


def test_a_database_a_later_closedloop_upgraded_is_refused_in_one_line(tmp_path: Path) -> None:
    SQLStore(f"sqlite:///{tmp_path / 'later.db'}").close()
    with sqlite3.connect(tmp_path / "later.db") as connection:
        connection.execute("UPDATE closedloop_alembic_version SET version_num = '9999'")
    connection.close()
    listed, upgraded = run_all(
        tmp_path, ("cases", "--db", "later.db"), ("db", "upgrade", "later.db")
    )
    for ran in (listed, upgraded):
        assert_one_line_error(
            ran,
            f"is at schema revision '9999', newer than this closedloop knows (its newest is "
            f"'{HEAD_REVISION}')",
            "install the closedloop version that upgraded it, or restore a backup",
        )
        assert "db upgrade" not in ran.stderr
    with sqlite3.connect(tmp_path / "later.db") as connection:
        assert connection.execute(
            "SELECT version_num FROM closedloop_alembic_version"
        ).fetchall() == [("9999",)]
    connection.close()


def test_usage_errors_exit_with_status_2(tmp_path: Path) -> None:
    results = run_all(
        tmp_path,
        ("demo", "--days", "0"),
        ("diagram", STANDARD, "--format", "png"),
        ("no-such-command",),
    )
    for ran in results:
        assert ran.returncode == 2, ran
        assert "Traceback" not in ran.stderr


def test_the_console_script_is_declared_and_installed() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["closedloop"] == "closedloop.cli:main"
    scripts = metadata.entry_points(group="console_scripts", name="closedloop")
    assert [s.value for s in scripts] == ["closedloop.cli:main"], (
        "reinstall: pip install -e '.[cli]'"
    )
    executable = Path(sys.executable).with_name("closedloop")
    done = subprocess.run(
        [executable, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: closedloop" in done.stdout
