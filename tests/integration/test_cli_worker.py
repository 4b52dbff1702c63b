"""``closedloop worker`` against a SQLite file: delivers what is due (to stdout, a webhook
or the host's own channel), stops cleanly on SIGTERM.

The database is prepared in the test with a manual clock a day in the past, so the
case's sign-for warning, breach and escalation are all due when the worker starts on
the real clock.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, ClassVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from closedloop import Actor, Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.testing import ManualClock
from tests.conftest import new_schema, postgres_url
from tests.integration.cli_runs import Ran, assert_one_line_error, environment
from tests.loopback import FreezingRelay

STOPS_WITHIN = 60.0
"""Seconds a worker may take to exit after SIGTERM: however loaded the machine, only a
worker that went on working or ignored the signal takes this long."""
DISPATCHER = Actor("disp-1", roles=frozenset({"dispatcher"}))


def prepared(path: Path) -> str:
    """A SQLite file with one dispatched case whose timers are all due; its case id."""
    store = SQLStore(f"sqlite:///{path}")
    try:
        clock = ManualClock(datetime.now(UTC) - timedelta(days=1))
        engine = Engine(workflows.standard(), store=store, clock=clock)
        case = engine.report(Actor("citizen-1"), description="lamp out", location={"area": "A1"})
        engine.trigger(case.id, "classify", by=DISPATCHER, category="03.01")
        engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="lights")
        return case.id
    finally:
        store.close()


def start_worker(
    db: Path, *extra: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "closedloop.cli", "worker", str(db), "--interval", "0.2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        env={**os.environ, **(env or {})}, cwd=cwd,
    )  # fmt: skip


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def stopped(worker: subprocess.Popen[str]) -> str:
    """Send SIGTERM and wait for the worker to finish the item in hand and exit; its
    stderr. What it did before stopping is what the tests check, not how long it took."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=STOPS_WITHIN)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    assert worker.stderr is not None
    return worker.stderr.read()


def outbox(db: Path) -> dict[str, tuple[str, str, int, str | None]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT id, event, status, attempts, lease_owner FROM closedloop_outbox"
        )
        return {row[0]: row[1:] for row in rows}


def due_at(db: Path, case_id: str, zone: str = "UTC") -> datetime:
    """When the case's clock falls due, in ``zone``."""
    store = SQLStore(f"sqlite:///{db}")
    try:
        deadline = (
            Engine(workflows.standard(), store=store).get(case_id, viewer=DISPATCHER).deadline
        )
    finally:
        store.close()
    assert deadline is not None
    return deadline.due_at.astimezone(ZoneInfo(zone))


def held_timers(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        held = connection.execute(
            "SELECT count(*) FROM closedloop_cases WHERE tick_owner IS NOT NULL"
        )
        return int(held.fetchone()[0])


def test_worker_delivers_a_due_warning_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    case_id = prepared(db)
    worker = start_worker(db)
    assert worker.stdout is not None
    lines = lines_of(worker.stdout)
    delivered: list[dict[str, str]] = []
    deadline = time.monotonic() + 60
    while not any(d["event"] == "warn" for d in delivered):
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        try:
            delivered.append(json.loads(lines.get(timeout=max(deadline - time.monotonic(), 0))))
        except queue.Empty:
            pytest.fail("the worker delivered no warning within a minute")
    err = stopped(worker)
    assert worker.returncode == 0, err
    assert "stopped:" in err
    warning = next(d for d in delivered if d["event"] == "warn")
    assert (warning["case_id"], warning["recipient"]) == (case_id, "unit:lights")
    # The case counts in natural time, as the engine that wrote it had no zone: UTC.
    assert warning["subject"].endswith(f"{due_at(db, case_id):%Y-%m-%d %H:%M} (UTC) 到期")
    rows = outbox(db)
    assert rows[warning["id"]][1] == "delivered"
    assert all(lease is None for _, _, _, lease in rows.values())  # nothing left claimed
    assert held_timers(db) == 0


class SlowReceiver(BaseHTTPRequestHandler):
    """Accepts a webhook after a pause long enough to stop the worker mid-send."""

    received: ClassVar[list[str]] = []
    first: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.received.append(self.headers["webhook-id"])
        self.first.set()
        time.sleep(1.5)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    SlowReceiver.received = []
    SlowReceiver.first = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_sigterm_mid_send_finishes_the_claimed_notification_and_claims_no_more(
    tmp_path: Path, receiver: str
) -> None:
    pytest.importorskip("httpx")
    from closedloop.adapters.webhook import generate_secret

    db = tmp_path / "cases.db"
    prepared(db)
    secret = {"CLOSEDLOOP_WEBHOOK_SECRET": generate_secret()}
    worker = start_worker(db, "--webhook", receiver, "--allow-host", "127.0.0.1", env=secret)
    if not SlowReceiver.first.wait(timeout=60):
        worker.kill()
        pytest.fail("the worker sent nothing within a minute")
    err = stopped(worker)  # while the receiver still holds the first request
    assert worker.returncode == 0, err
    assert len(SlowReceiver.received) == 1  # it finished that send and began no other
    rows = outbox(db)
    in_hand = SlowReceiver.received[0]
    assert rows[in_hand][1:3] == ("delivered", 1)
    others = [row for message_id, row in rows.items() if message_id != in_hand]
    assert others
    assert all(row[1:] == ("pending", 0, None) for row in others)
    assert held_timers(db) == 0


HOST_CHANNELS = """
import json
from pathlib import Path


class FileChannel:
    \"\"\"Appends each notification it is sent to a file, as a JSON line.\"\"\"

    def __init__(self, name):
        self.path = Path(__file__).with_name(name)

    def send(self, notification):
        line = {"id": notification.id, "channel": notification.channel,
                "event": notification.event, "recipient": notification.recipient}
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\\n")


def for_notify():
    return FileChannel("notify.jsonl")
"""


def delivered_everything(db: Path, worker: subprocess.Popen[str], count: int) -> None:
    """Wait until the outbox holds ``count`` notifications, every one delivered."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        rows = outbox(db)
        if len(rows) == count and all(row[1] == "delivered" for row in rows.values()):
            return
        time.sleep(0.1)
    worker.kill()
    pytest.fail(f"the worker did not deliver {count} notifications within a minute")


def test_worker_delivers_through_the_hosts_channel_named_on_the_command_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "channels.py").write_text(HOST_CHANNELS, encoding="utf-8")
    for name in ("host.db", "other.db"):
        case_id = prepared(tmp_path / name)
    host = start_worker(tmp_path / "host.db", "--notifier", "notify=channels:for_notify",
                        cwd=tmp_path)  # fmt: skip
    other = start_worker(tmp_path / "other.db", "--timezone", "America/Chicago",
                         cwd=tmp_path)  # fmt: skip
    for db, worker in ((tmp_path / "host.db", host), (tmp_path / "other.db", other)):
        delivered_everything(db, worker, 4)
    results = {
        name: (stopped(worker), worker) for name, worker in (("host", host), ("other", other))
    }
    for err, worker in results.values():
        assert worker.returncode == 0, err
        assert "4 notifications delivered" in err
    received = [
        json.loads(line)
        for line in (tmp_path / "notify.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(r["channel"], r["event"], r["recipient"]) for r in received] == [
        ("notify", "dispatch", "unit:lights"),
        ("notify", "warn", "unit:lights"),
        ("notify", "breach", "unit:lights"),
        ("notify", "escalate", "unit:lights"),
    ]
    assert sorted(r["id"] for r in received) == sorted(outbox(tmp_path / "host.db"))
    assert host.stdout is not None
    assert host.stdout.read() == ""
    # The other worker has no host channel: "notify" went to stdout.
    assert other.stdout is not None
    printed = [json.loads(line) for line in other.stdout.read().splitlines()]
    assert [p["event"] for p in printed] == ["dispatch", "warn", "breach", "escalate"]
    assert {p["case_id"] for p in printed} == {case_id}
    due = due_at(tmp_path / "other.db", case_id, "America/Chicago")
    assert f"{due:%Y-%m-%d %H:%M} (America/Chicago)" in printed[1]["subject"]  # --timezone


def test_worker_signs_checkpoints_with_the_key_from_the_environment(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    case_id = prepared(db)
    key = "ab" * 32
    worker = start_worker(db, "--checkpoint-every", "1", env={"CLOSEDLOOP_CHECKPOINT_KEY": key})
    deadline = time.monotonic() + 60
    while True:
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        with sqlite3.connect(db) as connection:
            made = connection.execute("SELECT count(*) FROM closedloop_checkpoints").fetchone()[0]
        if made:
            break
        assert time.monotonic() < deadline, "no checkpoint within a minute"
        time.sleep(0.2)
    err = stopped(worker)
    assert worker.returncode == 0, err
    store = SQLStore(f"sqlite:///{db}")
    try:
        engine = Engine(workflows.standard(), store=store, checkpoint_key=bytes.fromhex(key))
        assert engine.verify(case_id).ok
        assert engine.export_checkpoints()[0].heads[0].case_id == case_id
    finally:
        store.close()


def test_worker_refuses_checkpoints_without_a_usable_key(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    prepared(db)
    env = {k: v for k, v in os.environ.items() if k != "CLOSEDLOOP_CHECKPOINT_KEY"}
    missing = subprocess.run(
        [sys.executable, "-m", "closedloop.cli", "worker", str(db), "--checkpoint-every", "5"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    short = subprocess.run(
        [sys.executable, "-m", "closedloop.cli", "worker", str(db), "--checkpoint-every", "5"],
        capture_output=True, text=True, env={**env, "CLOSEDLOOP_CHECKPOINT_KEY": "abcd"},
        timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "needs a signing key: set CLOSEDLOOP_CHECKPOINT_KEY" in missing.stderr
    assert short.returncode == 1
    assert "at least 32 bytes" in short.stderr


def test_a_malformed_webhook_url_or_allowed_network_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    prepared(db)
    secret = {"CLOSEDLOOP_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
    env = {**environment(), **secret}
    ran = [
        subprocess.run(
            [sys.executable, "-m", "closedloop.cli", "worker", str(db), *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=env,
            timeout=60,
        )
        for args in (
            ("--webhook", "https://[::1/"),
            ("--webhook", "not-a-url"),
            ("--webhook", "https://hooks.example/x", "--allow-host", "10.0.0.0/33"),
        )
    ]
    bracket, no_scheme, network = (Ran(r.returncode, r.stdout, r.stderr) for r in ran)
    assert_one_line_error(bracket, "refusing to send to 'https://[::1/': not a valid URL")
    assert_one_line_error(no_scheme, "refusing to send to 'not-a-url': only http:// and https://")
    assert_one_line_error(network, "allow_hosts[0]: '10.0.0.0/33' is not a network")


FAILING_CHANNEL = """
class Refusing:
    def send(self, notification):
        raise RuntimeError("the gateway is down")
"""


def test_worker_says_how_many_notifications_were_not_delivered(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING_CHANNEL, encoding="utf-8")
    db = tmp_path / "cases.db"
    prepared(db)
    worker = start_worker(db, "--notifier", "failing:Refusing", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while True:  # the dispatch, warning, breach and escalation each failed once
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        rows = outbox(db).values()
        if len(rows) == 4 and all(row[1] == "pending" and row[2] == 1 for row in rows):
            break
        assert time.monotonic() < deadline, "four failed attempts not made within a minute"
        time.sleep(0.1)
    err = stopped(worker)
    assert worker.returncode == 0, err
    assert (
        "closedloop worker: notifications not delivered: 4 failed attempts to retry "
        f"(list them: closedloop outbox dead {db})"
    ) in err.splitlines()
    assert "0 notifications delivered" in err


@pytest.mark.external_service
def test_worker_never_prints_the_database_password(tmp_path: Path) -> None:
    # The test server trusts local connections, so it accepts any password in the URL.
    base = make_url(postgres_url())
    url = base.set(password="hunter2secret").render_as_string(hide_password=False)
    schema = new_schema("w")
    SQLStore(url, schema=schema).close()
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "closedloop.cli", "worker", url, "--schema", schema,
             "--interval", "0.2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            env=environment(),
        )  # fmt: skip
        assert worker.stderr is not None
        lines = lines_of(worker.stderr)
        try:
            started = lines.get(timeout=60)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=STOPS_WITHIN)
        shown = make_url(url).render_as_string(hide_password=True)  # postgres:***@...
        assert ":***@" in shown
        assert started == f"closedloop worker: running on {shown} (stop with Ctrl-C or SIGTERM)\n"
        rest = [lines.get(timeout=60)]
        while "stopped:" not in rest[-1]:
            rest.append(lines.get(timeout=60))
        assert worker.returncode == 0, rest
        assert "hunter2secret" not in started + "".join(rest)
    finally:
        engine = create_engine(postgres_url())
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.mark.external_service
def test_a_second_sigterm_stops_a_worker_whose_database_stopped_answering() -> None:
    # The worker reaches PostgreSQL through a relay that then stops passing anything on,
    # as a hung server does: the first SIGTERM cannot finish the statement in hand, the
    # second stops the worker anyway.
    base = make_url(postgres_url())
    relay = FreezingRelay(base.host or "127.0.0.1", base.port or 5432)
    url = base.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    schema = new_schema("w")
    SQLStore(url, schema=schema).close()
    worker = subprocess.Popen(
        [sys.executable, "-m", "closedloop.cli", "worker", url, "--schema", schema,
         "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        env={**environment(), "PYTHONFAULTHANDLER": "1"},
    )  # fmt: skip
    try:
        assert worker.stderr is not None
        lines = lines_of(worker.stderr)
        assert "running on" in lines.get(timeout=60)
        relay.freeze()
        assert relay.stuck.wait(timeout=60), "the worker never waited on the database"
        worker.send_signal(signal.SIGTERM)
        assert lines.get(timeout=60) == (
            "closedloop worker: SIGTERM: finishing the item in hand, then stopping "
            "(send it again to stop at once)\n"
        )
        assert worker.poll() is None  # still waiting on the database
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.send_signal(signal.SIGABRT)  # the fault handler prints where it waits
            worker.wait(timeout=30)
            time.sleep(1)
            said = []
            while not lines.empty():
                said.append(lines.get())
            pytest.fail("the worker did not stop:\n" + "".join(said))
        assert worker.returncode == 128 + signal.SIGTERM
        assert lines.get(timeout=60) == (
            "closedloop worker: SIGTERM again: stopping at once; "
            "the item in hand is left to its lease\n"
        )
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        relay.close()
