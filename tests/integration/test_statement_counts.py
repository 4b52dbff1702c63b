"""What one command costs the database, counted: transactions, commits and statements.

Counts, never times: each command is one transaction with one commit, and its statements
are counted with SQLAlchemy's cursor events, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from closedloop import Case, Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore, queries
from closedloop.errors import ValidationError
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER
from tests.conftest import new_schema, postgres_url


class Counted:
    """The statements, transactions and commits an engine's store runs."""

    def __init__(self, store: SQLStore) -> None:
        self.statements: list[str] = []
        self.begins = 0
        self.commits = 0
        event.listen(store.engine, "before_cursor_execute", self._statement)
        event.listen(store.engine, "begin", self._begin)
        event.listen(store.engine, "commit", self._commit)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(" ".join(statement.split()[:3]))

    def _begin(self, _conn: Any) -> None:
        self.begins += 1

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def of(self, command: Callable[[], object]) -> tuple[int, int, int]:
        """(transactions, commits, statements) of running ``command``."""
        self.statements.clear()
        self.begins = self.commits = 0
        command()
        return self.begins, self.commits, len(self.statements)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.external_service)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    if request.param == "sqlite":
        opened = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    else:
        opened = SQLStore(postgres_url(), schema=new_schema())
    yield opened
    opened.close()


def twin(store: SQLStore) -> SQLStore:
    """Another store on the same tables, as another process would open."""
    mapped = store.engine.get_execution_options().get("schema_translate_map")
    return SQLStore(store.engine.url, schema=None if mapped is None else mapped[None])


def test_a_report_is_one_transaction_of_two_statements_or_one_on_postgresql(
    store: SQLStore,
) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    counted = Counted(store)
    report = counted.of(lambda: engine.report(CITIZEN, description="Pipe burst"))
    if store.engine.dialect.name == "postgresql":
        assert report == (1, 1, 1)  # the case and its event, in one statement
        assert counted.statements[0].startswith("WITH added AS")
    else:
        assert report == (1, 1, 2)  # the case (with its earliest timer instant), its event
        assert counted.statements[0].startswith("INSERT INTO")
        assert "closedloop_cases" in counted.statements[0]


def test_a_trigger_that_reschedules_and_notifies_is_one_transaction(store: SQLStore) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    counted = Counted(store)
    dispatch = counted.of(lambda: engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water"))
    # The case as this store committed it is not read again: update it (with its
    # timers' earliest instant) where it still holds that version and text; append its
    # event; queue its notification. PostgreSQL does all three in one statement.
    if store.engine.dialect.name == "postgresql":
        assert dispatch == (1, 1, 1)
        assert [s.split()[0] for s in counted.statements] == ["WITH"]
    else:
        assert dispatch == (1, 1, 3)
        assert [s.split()[0] for s in counted.statements] == ["UPDATE", "INSERT", "INSERT"]
    assert engine.verify(case.id).ok
    with store.transaction(read_only=True) as tx:
        queued = tx.outbox_of(case.id)
    assert [(m.event, m.recipient, m.status) for m in queued] == [
        ("dispatch", "unit:water", "pending")
    ]


class RoundTrips:
    """What a store's PostgreSQL connections send, as libpq traces it: a round trip
    ends with each simple ``Query`` (psycopg's ``BEGIN`` and ``COMMIT``) or ``Sync`` (a
    statement with parameters) the client sends, and waits for the server's answer."""

    def __init__(self, store: SQLStore, path: Path) -> None:
        self._file = path.open("w+")
        event.listen(store.engine, "connect", self._trace)
        store.engine.pool.dispose()  # connections from now on are traced

    def _trace(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.pgconn.trace(self._file.fileno())

    def of(self, command: Callable[[], object]) -> list[str]:
        """The messages the client sent while running ``command``, by name."""
        self._file.seek(0)
        self._file.truncate()
        command()
        self._file.flush()
        self._file.seek(0)
        # Each line: [timestamp] direction length message-name details, tab-separated.
        sent = [line.split("\t") for line in self._file.read().splitlines()]
        return [fields[fields.index("F") + 2].split()[0] for fields in sent if "F" in fields]

    def close(self) -> None:
        """Close the trace (once the store's connections are closed)."""
        self._file.close()


@pytest.mark.external_service
def test_a_report_and_a_trigger_on_a_held_case_on_postgresql_are_one_round_trip_each(
    tmp_path: Path,
) -> None:
    store = SQLStore(postgres_url(), schema=new_schema())
    trips = RoundTrips(store, tmp_path / "libpq.trace")
    try:
        engine = Engine(workflows.standard(), store=store, clock=ManualClock())
        reported: list[Case] = []
        report = trips.of(
            lambda: reported.append(
                engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
            )
        )
        case = reported[0]
        # A report's one statement, and a trigger's, sent outside a transaction block:
        # PostgreSQL runs it as a transaction of its own, without BEGIN or COMMIT. So
        # does a trigger that queues a notification (dispatch), which the same statement
        # inserts.
        classify = trips.of(
            lambda: engine.trigger(
                case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal"
            )
        )
        dispatch = trips.of(
            lambda: engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
        )
        for sent in (report, classify, dispatch):
            assert [m for m in sent if m in ("Query", "Sync")] == ["Sync"]
            assert "Execute" in sent
        # A case the store does not hold is read first, in a transaction: BEGIN, the
        # read, the write (accept notifies nobody), COMMIT.
        other = twin(store)
        try:
            elsewhere = Engine(workflows.standard(), store=other, clock=ManualClock())
            trips_elsewhere = RoundTrips(other, tmp_path / "elsewhere.trace")
            accept = trips_elsewhere.of(lambda: elsewhere.trigger(case.id, "accept", by=WATER))
            assert [m for m in accept if m in ("Query", "Sync")] == [
                "Query",
                "Sync",
                "Sync",
                "Query",
            ]
        finally:
            other.close()
            trips_elsewhere.close()
        assert [e.trigger for e in engine.history(case.id)] == [
            "report",
            "classify",
            "dispatch",
            "accept",
        ]
        assert engine.verify(case.id).ok
    finally:
        store.close()
    trips.close()


@pytest.mark.external_service
def test_a_trigger_on_an_engine_with_an_isolation_level_of_its_own_begins_and_commits(
    tmp_path: Path,
) -> None:
    # The host's engine asks for REPEATABLE READ: the write is not sent outside a
    # transaction block, where the server's default level would apply.
    pooled = create_engine(postgres_url(), isolation_level="REPEATABLE READ", hide_parameters=True)
    store = SQLStore(pooled, schema=new_schema())
    trips = RoundTrips(store, tmp_path / "libpq.trace")
    try:
        engine = Engine(workflows.standard(), store=store, clock=ManualClock())
        case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
        classify = trips.of(
            lambda: engine.trigger(
                case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal"
            )
        )
        assert [m for m in classify if m in ("Query", "Sync")] == ["Query", "Sync", "Query"]
        assert [e.trigger for e in engine.history(case.id)] == ["report", "classify"]
    finally:
        store.close()
        pooled.dispose()
    trips.close()


def test_a_trigger_reads_a_case_its_store_has_not_seen_with_one_statement(
    store: SQLStore,
) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    other = twin(store)  # another process's store: it holds no case yet
    elsewhere = Engine(workflows.standard(), store=other, clock=ManualClock())
    counted = Counted(other)
    dispatch = counted.of(
        lambda: elsewhere.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    )
    # Read the case with its head and contact, then write as above.
    if store.engine.dialect.name == "postgresql":
        assert dispatch == (1, 1, 3)
        assert [s.split()[0] for s in counted.statements] == ["SELECT", "WITH", "INSERT"]
    else:
        assert dispatch == (1, 1, 4)
        assert [s.split()[0] for s in counted.statements] == [
            "SELECT",
            "UPDATE",
            "INSERT",
            "INSERT",
        ]
    assert elsewhere.get(case.id, viewer=DISPATCHER).state == "assigned"
    assert engine.verify(case.id).ok


def test_a_trigger_on_a_case_changed_elsewhere_reads_it_and_fires_once_on_it(
    store: SQLStore,
) -> None:
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    other = twin(store)  # another process moves the case on
    elsewhere = Engine(workflows.standard(), store=other, clock=ManualClock())
    elsewhere.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    counted = Counted(store)
    # This store holds the case as reported, where dispatch is not allowed: refused on
    # the case it holds (before any statement), the command runs again on the case
    # read, where it is.
    dispatch = counted.of(lambda: engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water"))
    assert dispatch[:2] == (1, 1)
    assert counted.statements[0].startswith("SELECT")
    # Moved on elsewhere again: a cancel is allowed on the case as held too, so the
    # first try writes, where the case no longer holds the version it expects. Its
    # guarded UPDATE matches nothing (nothing of it is written, and it is rolled
    # back), and the command runs again on the case read.
    elsewhere.trigger(case.id, "accept", by=WATER)
    cancel = counted.of(lambda: engine.trigger(case.id, "cancel", by=CITIZEN, reason="Dup"))
    assert cancel[:2] == (2, 1)
    events = engine.history(case.id)
    assert [e.trigger for e in events] == ["report", "classify", "dispatch", "accept", "cancel"]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert engine.verify(case.id).ok


def test_a_tick_that_applies_one_timer_claims_applies_and_finds_nothing_left(
    store: SQLStore,
) -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=store, clock=clock)
    engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    due = engine.next_due_at()
    assert due is not None
    clock.set(due)  # the classify clock's warning
    counted = Counted(store)
    tick = counted.of(engine.tick)
    # The claim (select the due cases, lease them); the case's warning: read the case,
    # update it under the claim (ending the lease), append its event (the standard
    # workflow notifies nobody of a classify warning); the next claim finds nothing.
    # PostgreSQL updates the case and appends its event in one statement.
    written = ["WITH"] if store.engine.dialect.name == "postgresql" else ["UPDATE", "INSERT"]
    claim, none_left = claims(store)
    assert tick == (3, 3, len(claim) + 1 + len(written) + len(none_left))
    assert [s.split()[0] for s in counted.statements] == [
        *claim,
        "SELECT",
        *written,
        *none_left,
    ]
    assert engine.history(engine.store.case_ids()[0])[-1].trigger == "warn"


def claims(store: SQLStore) -> tuple[list[str], list[str]]:
    """The statements of a claim that leases cases, and of one that finds none: on
    SQLite one UPDATE (whose subquery selects the due cases), elsewhere a SELECT that
    locks them and the UPDATE of those it found."""
    if store.engine.dialect.name == "sqlite":
        return ["UPDATE"], ["UPDATE"]
    return ["SELECT", "UPDATE"], ["SELECT"]


def reported(store: SQLStore, count: int) -> tuple[Engine, ManualClock]:
    """An engine on ``store`` with ``count`` cases reported, and its clock."""
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=store, clock=clock)
    for n in range(count):
        engine.report(CITIZEN, description=f"Pipe burst {n}", location={"area": "310101"})
    return engine, clock


def test_a_tick_that_applies_three_timers_reads_and_writes_their_cases_at_once(
    store: SQLStore,
) -> None:
    engine, clock = reported(store, 3)
    due = engine.next_due_at()
    assert due is not None
    clock.set(due)  # the three classify clocks' warnings
    counted = Counted(store)
    tick = counted.of(engine.tick)
    # The claim of the three; one transaction for the batch: the three cases as this
    # store committed them (no SELECT: each UPDATE checks its row's version and text
    # too), update them with one UPDATE (run for each), append their events with one
    # INSERT (run for each), and claim the next batch, which finds nothing.
    claim, none_left = claims(store)
    assert tick == (2, 2, len(claim) + 2 + len(none_left))
    assert [s.split()[0] for s in counted.statements] == [
        *claim,
        "UPDATE",
        "INSERT",
        *none_left,
    ]
    assert engine.tick().applied == 0
    for case_id in engine.store.case_ids():
        assert [e.trigger for e in engine.history(case_id)] == ["report", "warn"]
        assert engine.verify(case_id).ok


def test_a_tick_on_cases_changed_elsewhere_applies_each_timer_once_on_the_case_read(
    store: SQLStore,
) -> None:
    engine, clock = reported(store, 3)
    warn = engine.next_due_at()
    assert warn is not None
    other = twin(store)  # another process applies the warnings: this store holds the reports
    elsewhere = Engine(workflows.standard(), store=other, clock=ManualClock(warn))
    assert elsewhere.tick().applied == 3
    breach = elsewhere.next_due_at()
    assert breach is not None
    clock.set(breach)
    counted = Counted(store)
    done = counted.of(engine.tick)
    # The claim; the batch as held matches no row (each is a version on): rolled back,
    # and applied again in one transaction, case by case on the cases read, each timer
    # once; the next claim, in a transaction of its own, finds nothing.
    assert done[:2] == (4, 3)
    assert engine.tick().applied == 0
    for case_id in engine.store.case_ids():
        assert [e.trigger for e in engine.history(case_id)] == ["report", "warn", "breach"]
        assert engine.verify(case_id).ok


def test_a_tick_claims_each_batch_after_the_first_in_the_transaction_of_the_one_before(
    store: SQLStore,
) -> None:
    engine, clock = reported(store, 4)
    due = engine.next_due_at()
    assert due is not None
    clock.set(due)  # the four classify clocks' warnings
    counted = Counted(store)
    report = counted.of(lambda: engine.tick(batch=2))
    # The first claim; the first two cases' transaction, which claims the other two; the
    # other two's, whose claim finds nothing: one commit per batch, and one more.
    assert report[:2] == (3, 3)
    assert engine.tick().applied == 0
    for case_id in engine.store.case_ids():
        assert [e.trigger for e in engine.history(case_id)] == ["report", "warn"]


def test_a_claim_inside_a_transaction_lasts_from_its_commit_and_not_after_a_rollback(
    store: SQLStore,
) -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=store, clock=clock)
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    due = engine.next_due_at()
    assert due is not None
    lease = timedelta(minutes=5)
    with store.transaction() as tx:
        (claim,) = tx.claim_due(due, owner="a", lease=lease, limit=10)
        assert (claim.case_id, claim.owner) == (case.id, "a")
    # Rolled back: the case is free again, and this time the lease is kept.
    with store.transaction() as tx:
        assert [c.case_id for c in tx.claim_due(due, owner="b", lease=lease, limit=10)] == [case.id]
        tx.commit()
    assert store.claim_due(due, owner="c", lease=lease, limit=10) == []
    assert store.claim_due(due + lease, owner="c", lease=lease, limit=10)[0].owner == "c"


@pytest.mark.external_service
def test_reading_a_case_on_postgresql_keeps_the_statements_the_server_prepared() -> None:
    store = SQLStore(postgres_url(), schema=new_schema())
    try:
        engine = Engine(workflows.standard(), store=store, clock=ManualClock())
        ids = [engine.report(CITIZEN, description="Leak", location="Gate").id for _ in range(7)]
        for case_id in ids:  # psycopg prepares a statement on its fifth run
            engine.trigger(case_id, "classify", by=DISPATCHER, category="01.02", urgency="normal")

        def prepared() -> int:
            with store.engine.connect() as connection:  # the one pooled connection
                found = connection.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements")
                count = int(found.scalar_one())
                connection.commit()
                return count

        before = prepared()
        counted = Counted(store)
        rollbacks: list[object] = []
        event.listen(store.engine, "rollback", rollbacks.append)
        assert counted.of(lambda: engine.get(ids[0], viewer=DISPATCHER))[:2] == (1, 1)
        assert rollbacks == []
        assert before > 0
        assert prepared() == before
    finally:
        store.close()


def test_a_trigger_s_update_sets_only_the_columns_that_changed(store: SQLStore) -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=store, clock=clock)
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    clock.advance(timedelta(minutes=5))
    sent: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    (update,) = [s[s.index("UPDATE") :] for s in sent if "UPDATE" in s]
    assigned = update.split(" SET ")[1].split(" WHERE ")[0]
    set_columns = {part.split("=")[0].strip() for part in assigned.split(", ")}
    # What a dispatch changes, and nothing it leaves as it was (the reporter, the text).
    assert {"state", "lead_unit", "version", "body", "updated_at", "clock"} <= set_columns
    assert set_columns.isdisjoint({"reporter_id", "reported_at", "search_text", "category"})
    assert engine.verify(case.id).ok


def test_sqlite_commands_reuse_the_connection_the_last_one_ended_on(tmp_path: Path) -> None:
    pooled = create_engine(f"sqlite:///{tmp_path / 'cases.db'}", hide_parameters=True)
    store = SQLStore(pooled)
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    checkouts: list[object] = []
    event.listen(pooled, "checkout", lambda *a: checkouts.append(a))
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    assert engine.get(case.id, viewer=DISPATCHER).state == "assigned"
    assert checkouts == []  # each command began on the connection the last one left
    assert pooled.pool.checkedout() == 1
    store.close()  # a host's engine gets its connections back
    assert pooled.pool.checkedout() == 0
    pooled.dispose()


def test_a_kept_connection_is_not_used_after_the_host_disposes_of_its_engine(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cases.db"
    pooled = create_engine(f"sqlite:///{path}", hide_parameters=True)
    engine = Engine(workflows.standard(), store=SQLStore(pooled), clock=ManualClock())
    kept = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    backup_path = tmp_path / "backup.db"
    with closing(sqlite3.connect(path)) as live, closing(sqlite3.connect(backup_path)) as copy:
        live.backup(copy)
    engine.report(CITIZEN, description="Lost in the restore", location={"area": "310101"})
    pooled.dispose()  # the host restores its backup: no connection to the old file left
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    backup_path.replace(path)
    after = engine.report(CITIZEN, description="After the restore", location={"area": "310101"})
    with closing(sqlite3.connect(path)) as restored:
        ids = {row[0] for row in restored.execute("SELECT id FROM closedloop_cases")}
    assert ids == {kept.id, after.id}
    # Disposed of while a transaction runs: its connection is not kept either.
    with closing(sqlite3.connect(path)) as live, closing(sqlite3.connect(backup_path)) as copy:
        live.backup(copy)
    with engine.store.transaction(read_only=True) as tx:
        assert tx.get_case(after.id) is not None
        pooled.dispose()  # the host restores once the transactions under way have ended
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    backup_path.replace(path)
    last = engine.report(CITIZEN, description="After the restore", location={"area": "310101"})
    with closing(sqlite3.connect(path)) as restored:
        ids = {row[0] for row in restored.execute("SELECT id FROM closedloop_cases")}
    assert ids == {kept.id, after.id, last.id}
    engine.store.close()
    pooled.dispose()


def test_statements_are_logged_once_the_host_turns_logging_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert any(message.startswith("UPDATE closedloop_cases") for message in logged)
    store.close()


def test_a_text_search_reads_spans_of_the_time_index_and_the_text_index_only_when_rare(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A text search in report-time order on SQLite first counts the text index's
    # matches, up to a bound (one per row of the page here, sixteen in a store's use): a
    # text with fewer is read through the text index at once, a second statement.
    # Otherwise (and on PostgreSQL, which does not count) it reads a span of that order
    # (one statement for its edge, one for its matches) and stops once the page is
    # full; a span without a match leaves the rest to the text index, one more
    # statement. Spans of four cases here, of thousands in a store's use.
    monkeypatch.setattr(queries, "FIRST_SPAN", 1)
    monkeypatch.setattr(queries, "SMALLEST_SPAN", 4)
    monkeypatch.setattr(queries, "FEW", 1)
    counts = int(store.engine.dialect.name == "sqlite")  # the count's statement
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=store, clock=clock)
    for n in range(12):
        text = "manhole cover missing" if n < 8 else "lamp out"
        engine.report(CITIZEN, description=text if n != 5 else "pothole and manhole")
        clock.advance(timedelta(minutes=1))
    counted = Counted(store)
    find = engine.find
    assert counted.of(lambda: find(DISPATCHER, text="manhole", limit=2)) == (1, 1, 2 + counts)
    assert counted.of(lambda: find(DISPATCHER, text="lamp", limit=2)) == (1, 1, 3 + counts)
    # One match, fewer than the page's three rows: on SQLite the text index alone; on
    # PostgreSQL the first span (without it) and the text index.
    assert counted.of(lambda: find(DISPATCHER, text="pothole", limit=2)) == (1, 1, 3 - counts)
    # Too short for the trigram index: never counted, the spans first.
    assert counted.of(lambda: find(DISPATCHER, text="la", limit=2)) == (1, 1, 3)
    assert counted.of(lambda: find(DISPATCHER, text="lamp", order="urgent")) == (1, 1, 1)
    assert counted.of(lambda: find(DISPATCHER, state="reported", limit=2)) == (1, 1, 1)
    # The newest cases hold the lamp: the first span fills the page.
    newest = counted.of(lambda: find(DISPATCHER, text="lamp", order="newest", limit=2))
    assert newest == (1, 1, 2 + counts)
    assert [case.description for case in find(DISPATCHER, text="pothole").cases] == [
        "pothole and manhole"
    ]


def test_a_store_holds_as_many_rows_as_asked_and_none_at_zero(tmp_path: Path) -> None:
    for held, reads in ((1, [False, True]), (0, [True, True])):
        store = SQLStore(f"sqlite:///{tmp_path / f'held{held}.db'}", held_rows=held)
        engine = Engine(workflows.standard(), store=store, clock=ManualClock())
        first = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
        last = engine.report(CITIZEN, description="Lamp out", location={"area": "310101"})
        counted = Counted(store)
        read = []
        for case in (last, first):  # the store holds the last one it wrote, if any
            counted.of(
                lambda c=case, e=engine: e.trigger(
                    c.id, "classify", by=DISPATCHER, category="01.02", urgency="normal"
                )
            )
            read.append(counted.statements[0].startswith("SELECT"))
        assert read == reads, held
        assert engine.verify(first.id).ok
        store.close()


@pytest.mark.parametrize("held", [-1, 2.5, True, "4096"])
def test_a_store_refuses_a_number_of_held_rows_that_is_not_a_whole_count(
    tmp_path: Path, held: object
) -> None:
    with pytest.raises(ValidationError, match="held_rows"):
        SQLStore(f"sqlite:///{tmp_path / 'cases.db'}", held_rows=held)  # type: ignore[arg-type]
    assert not (tmp_path / "cases.db").exists()
