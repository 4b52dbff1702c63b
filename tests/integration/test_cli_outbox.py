"""``closedloop outbox dead`` and ``outbox requeue``: the notifications given up on,
listed and sent again through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.engine.delivery import DeliveryReport, RetryPolicy
from closedloop.engine.ports import Notification
from closedloop.errors import DeliveryFailed, EndpointGone
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER
from tests.integration.cli_runs import assert_one_line_error, run, run_all


class Scripted:
    """Refuses the first message for good (410), the second once, then accepts."""

    def __init__(self) -> None:
        self.failures: list[Exception] = [
            EndpointGone("notify", "https://hooks.example/x"),
            DeliveryFailed("notify", "m", "answered HTTP 500"),
        ]
        self.received: list[str] = []

    def send(self, notification: Notification) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.received.append(notification.id)


def given_up(db: Path) -> tuple[str, str]:
    """A SQLite file with a disabled and a dead notification: their ids, oldest first."""
    store = SQLStore(f"sqlite:///{db}")
    try:
        engine = Engine(workflows.standard(), store=store, clock=ManualClock(),
                        notifier=Scripted(), retry=RetryPolicy(max_attempts=1))  # fmt: skip
        for _ in range(2):
            case = engine.report(CITIZEN, description="井盖缺失")
            case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
            engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
        assert engine.deliver() == DeliveryReport(dead=1, disabled=1)
        disabled, dead = engine.dead_letters()
        return disabled.id, dead.id
    finally:
        store.close()


def test_dead_letters_are_listed_and_requeued_one_or_all(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    disabled, dead = given_up(db)
    listed, as_json = run_all(tmp_path, ("outbox", "dead", db), ("outbox", "dead", db, "--json"))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("  ")[:3] for line in lines] == [
        [disabled, "disabled", "1 attempt"],
        [dead, "dead", "1 attempt"],
    ]
    assert "gone (it answered 410)" in lines[0]
    assert "answered HTTP 500" in lines[1]
    assert listed.stderr == "2 dead letters\n"
    assert as_json.stderr == ""
    shown = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(m["id"], m["status"], m["event"]) for m in shown] == [
        (disabled, "disabled", "dispatch"),
        (dead, "dead", "dispatch"),
    ]

    one = run(tmp_path, "outbox", "requeue", db, disabled)
    assert (one.returncode, one.stdout, one.stderr) == (0, f"{disabled}\n",
                                                        "1 notification re-queued\n")  # fmt: skip
    again = run(tmp_path, "outbox", "requeue", db, disabled)
    assert_one_line_error(again, f"no dead or disabled message {disabled!r}")
    (left,) = run(tmp_path, "outbox", "dead", db).stdout.splitlines()
    assert left.startswith(f"{dead}  dead")
    every = run(tmp_path, "outbox", "requeue", db, "--all")
    assert (every.returncode, every.stdout) == (0, f"{dead}\n")
    assert run(tmp_path, "outbox", "dead", db).stdout == ""

    store = SQLStore(f"sqlite:///{db}")
    try:
        channel = Scripted()
        channel.failures = []
        engine = Engine(workflows.standard(), store=store, notifier=channel)
        assert engine.deliver() == DeliveryReport(delivered=2)
        assert sorted(channel.received) == sorted([disabled, dead])
    finally:
        store.close()


def test_a_list_cut_by_the_limit_says_more_dead_letters_exist(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    disabled, dead = given_up(db)
    one, two, as_json = run_all(
        tmp_path,
        ("outbox", "dead", db, "--limit", "1"),
        ("outbox", "dead", db, "--limit", "2"),
        ("outbox", "dead", db, "--limit", "1", "--json"),
    )
    assert [line.split("  ")[0] for line in one.stdout.splitlines()] == [disabled]
    assert (
        one.stderr == "1 dead letter shown, the oldest; more exist (a larger --limit lists them)\n"
    )
    assert [line.split("  ")[0] for line in two.stdout.splitlines()] == [disabled, dead]
    assert two.stderr == "2 dead letters\n"
    assert [json.loads(line)["id"] for line in as_json.stdout.splitlines()] == [disabled]
    assert as_json.stderr == one.stderr


def test_requeue_needs_one_id_or_all(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    disabled, _ = given_up(db)
    neither, both, missing_db = run_all(
        tmp_path,
        ("outbox", "requeue", db),
        ("outbox", "requeue", db, disabled, "--all"),
        ("outbox", "dead", tmp_path / "none.db"),
    )
    for ran, said in (
        (neither, "give the id of one dead letter, or --all for every one (closedloop"),
        (both, "give the id of one dead letter, or --all for every one, not both"),
    ):
        assert ran.returncode == 2, ran  # a usage error, as docs/cli.md says
        shown = " ".join(ran.stderr.replace("│", " ").split())
        assert f"Invalid value for 'MESSAGE_ID' / '--all': {said}" in shown, shown
        assert "Traceback" not in ran.stderr
    assert run(tmp_path, "outbox", "dead", db).stderr == "2 dead letters\n"  # none re-queued
    assert_one_line_error(missing_db, "no SQLite database at")
