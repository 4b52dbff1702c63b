"""``SQLStore``: the CaseStore on SQLite (embedded default) or PostgreSQL (many processes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import URL, Connection, Engine, select

from closedloop.adapters.sqlalchemy import event_stream, leases, queries, rows, tally
from closedloop.adapters.sqlalchemy import statements as sql
from closedloop.adapters.sqlalchemy.checkpoints import SQLCheckpoints
from closedloop.adapters.sqlalchemy.engines import (
    IdleConnections,
    Statements,
    Synchronous,
    begin,
    connect,
    make_engine,
)
from closedloop.adapters.sqlalchemy.failures import retrying, translated
from closedloop.adapters.sqlalchemy.provisioning import prepare as prepare_schema
from closedloop.adapters.sqlalchemy.recent import RecentRows
from closedloop.adapters.sqlalchemy.schema import cases
from closedloop.adapters.sqlalchemy.transaction import SQLTransaction
from closedloop.adapters.store_base import check_claim
from closedloop.engine.case_query import CaseFilter, CasePage, Facet, Order, Show
from closedloop.engine.clock import utc
from closedloop.engine.model import AuditEvent, ReporterContact
from closedloop.engine.ports import (
    CaseQueries,
    EventKey,
    EventRecord,
    EventsByTime,
    EventStream,
    OutboxMessage,
    OutboxStatus,
    ShownCases,
    TimerClaim,
)
from closedloop.errors import MessageNotFound, StoreError, ValidationError

T = TypeVar("T")

_CASE_IDS = select(cases.c.id).order_by(cases.c.row_id)


class SQLStore(CaseQueries, ShownCases, EventStream, EventsByTime, SQLCheckpoints):
    """A CaseStore in a SQL database: a SQLite file, or PostgreSQL through psycopg 3.

    On an empty database the store creates its tables and records the schema revision;
    on a database of another revision it refuses to start (run :func:`upgrade`).

    Args:
        url_or_engine: A database URL (``sqlite:///cases.db``,
            ``postgresql://user@host/db``; a plain ``postgresql://`` uses psycopg 3),
            or a SQLAlchemy ``Engine`` (configured in place for SQLite; not disposed
            by :meth:`close`).
        schema: PostgreSQL schema to keep the tables in (created if missing); the
            database's default when ``None``. Not available on SQLite.
        create_schema: Create the tables on an empty database. With ``False`` an
            empty database is an error (for deployments that migrate explicitly).
        busy_timeout: SQLite: seconds a writer waits for the write lock.
        synchronous: SQLite: ``"FULL"`` syncs every commit to disk (a commit survives
            power loss); ``"NORMAL"`` is several times faster and survives a crash of
            the process but may lose the last commits on power loss. Any other
            value is refused, on either backend.
        retries: How many times a claim or finish runs before a serialization
            failure or deadlock is given up on (PostgreSQL).
        held_rows: How many cases' rows (body, version, chain head, contact data) the
            store holds from its transactions' reads and commits, so that a trigger on
            one of them need not read it (its write checks it); ``0`` holds none.

    Raises:
        ValidationError: ``synchronous`` is neither ``"FULL"`` nor ``"NORMAL"``, or
            ``held_rows`` is not a whole number from 0.
        StoreUnavailable: the database cannot be reached.
        StoreError: the URL is unusable, or the schema is of another revision.
    """

    def __init__(
        self,
        url_or_engine: str | URL | Engine,
        *,
        schema: str | None = None,
        create_schema: bool = True,
        busy_timeout: float = 30.0,
        synchronous: Synchronous = "FULL",
        retries: int = 5,
        held_rows: int = RecentRows.KEEP,
    ) -> None:
        if type(held_rows) is not int or held_rows < 0:
            raise ValidationError(
                [("held_rows", f"must be a whole number from 0, not {held_rows!r}")],
                subject="SQLStore",
            )
        engine, self._owned = make_engine(
            url_or_engine, busy_timeout=busy_timeout, synchronous=synchronous
        )
        self._base = engine
        self._idle = IdleConnections(engine)
        # The rows its transactions read or committed lately (none held: not asked).
        self._recent = RecentRows(held_rows) if held_rows else None
        if schema is not None and engine.dialect.name != "postgresql":
            self.close()
            raise StoreError("a schema (schema=, --schema) is only available on PostgreSQL")
        # Tables are defined without a schema; this maps them into ``schema`` on execution.
        self._engine = (
            engine
            if schema is None
            else engine.execution_options(schema_translate_map={None: schema})
        )
        self._retries = max(1, retries)
        self._schema = schema
        self._statements = Statements(self._engine)  # its transactions' own, prepared
        try:
            prepare_schema(self._engine, schema, create=create_schema)
        except BaseException:
            self.close()
            raise

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (with the schema mapping applied)."""
        return self._engine

    def transaction(self, *, read_only: bool = False) -> SQLTransaction:
        """Open a unit of work; it rolls back unless committed.

        Args:
            read_only: The transaction only reads. It then takes no write lock on
                SQLite and reads one consistent snapshot on both backends.
        """
        return SQLTransaction(
            self._engine,
            self._idle,
            read_only=read_only,
            recent=self._recent,
            statements=self._statements,
        )

    def case_ids(self) -> list[str]:
        """Every case id, oldest first."""
        return self._read("list cases", lambda c: list(c.execute(_CASE_IDS).scalars()))

    def finish_erasures(self) -> None:
        """Drop what the database keeps of erased text beyond the rows: on SQLite, the
        full-text index keeps a changed row's old text in its segments until they are
        merged, so they are merged here (once per purge, not per case). The cases the
        queries built lately from stored bodies are dropped too (``rows.BuiltCases``)."""
        rows.built_cases.clear()
        if self._recent is not None:
            self._recent.clear()
        if self._engine.dialect.name == "sqlite":
            self._write("merge the search index", lambda c: c.execute(sql.MERGE_SEARCH_TEXT))

    def close(self) -> None:
        """Release the connections (only those of an engine this store created)."""
        self._idle.close()
        if self._owned:
            self._base.dispose()

    # -- queries ---------------------------------------------------------------------

    def find_cases(
        self,
        *,
        state: str | Sequence[str] | None = None,
        lead_unit: str | None = None,
        category: str | None = None,
        area: str | None = None,
        warning_level: str | None = None,
        overdue_at: datetime | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> CasePage:
        """Cases matching every given criterion, oldest first, one page at a time.

        Args:
            state: A state, or several (any of them).
            lead_unit: The unit that leads the case.
            category: The case's category code.
            area: The area or grid code of the case's location.
            warning_level: ``"yellow"`` or ``"red"``.
            overdue_at: Only cases whose breach deadline is at or before this instant.
            after: The ``next_cursor`` of the previous page.
            limit: The page size, 1 to 1000.

        Raises:
            ValidationError: ``limit`` is out of range or ``after`` is not a cursor.
            NaiveDatetime: ``overdue_at`` has no time zone.
        """
        where = CaseFilter.of(state, lead_unit, category, area, warning_level, overdue_at)
        return self.select_cases(where, after=after, limit=limit)

    def count_cases(
        self,
        *,
        state: str | Sequence[str] | None = None,
        lead_unit: str | None = None,
        category: str | None = None,
        area: str | None = None,
        warning_level: str | None = None,
        overdue_at: datetime | None = None,
    ) -> int:
        """How many cases match every given criterion (see :meth:`find_cases`)."""
        where = CaseFilter.of(state, lead_unit, category, area, warning_level, overdue_at)
        return self.count_selected(where)

    def select_cases(
        self,
        where: CaseFilter,
        *,
        order: Order = "oldest",
        after: str | None = None,
        limit: int = 50,
    ) -> CasePage:
        """Cases ``where`` selects, in ``order``, one keyset page at a time.

        Raises:
            ValidationError: ``limit`` is out of range or ``after`` is not a cursor.
            StoreError: the database failed.
        """
        return self._read(
            "find cases",
            lambda c: queries.select_cases(c, where, order=order, after=after, limit=limit),
        )

    def select_shown(
        self,
        where: CaseFilter,
        *,
        order: Order = "oldest",
        after: str | None = None,
        limit: int = 50,
        show: Show | None = None,
    ) -> tuple[CasePage, dict[str, ReporterContact]]:
        """The page :meth:`select_cases` returns and its cases' contact data, from one
        statement; with ``show``, its cases as ``show`` shows them (see
        ``ShownCases.select_shown``).

        Raises:
            ValidationError: ``limit`` is out of range or ``after`` is not a cursor.
            StoreError: the database failed.
        """
        return self._read(
            "find cases",
            lambda c: queries.select_shown(
                c, where, order=order, after=after, limit=limit, show=show
            ),
        )

    def count_selected(self, where: CaseFilter) -> int:
        """How many cases ``where`` selects.

        Raises:
            StoreError: the database failed.
        """
        return self._read("count cases", lambda c: queries.count_selected(c, where))

    def facet_counts(self, where: CaseFilter, by: Facet) -> dict[str | None, int]:
        """How many cases ``where`` selects, per value of ``by``.

        On PostgreSQL a call that reads the case tally and finds many changes to it
        pending folds them into it afterwards, in a short transaction of its own, then
        vacuums the changes (without making writers wait).

        Raises:
            StoreError: the database failed.
        """
        counts, due = self._read("count cases", lambda c: queries.facet_counts(c, where, by))
        if due and self._write("fold the case counts", tally.fold):
            with translated("vacuum the case counts"):
                tally.vacuum(self._base, self._schema)
        return counts

    def contacts_of(self, case_ids: Sequence[str]) -> dict[str, ReporterContact]:
        """The stored contact data of these cases, in one query.

        Raises:
            StoreError: the database failed.
        """
        return self._read("read contact data", lambda c: queries.contacts_of(c, case_ids))

    # -- the audit trail in one pass ------------------------------------------------

    def events_between(
        self,
        start: datetime,
        before: datetime,
        *,
        after: EventKey | None = None,
        limit: int,
        workflow: str | None = None,
    ) -> list[AuditEvent]:
        """Up to ``limit`` events at or after ``start`` and before ``before`` (of the
        cases of ``workflow``, when given), in order of (at, case id, seq), past
        ``after`` (see ``EventsByTime``): one statement, a range of the index on the
        events' instant.

        Raises:
            StoreError: the database failed.
        """
        values: dict[str, object] = {
            "start": utc(start, "start"),
            "before": utc(before, "before"),
            "limit": limit,
        }
        if after is None:
            statement = sql.EVENTS_BETWEEN if workflow is None else sql.EVENTS_OF_WORKFLOW_BETWEEN
        else:
            statement = (
                sql.EVENTS_BETWEEN_AFTER
                if workflow is None
                else sql.EVENTS_OF_WORKFLOW_BETWEEN_AFTER
            )
            values.update(after_at=utc(after[0], "after"), after_case=after[1], after_seq=after[2])
        if workflow is not None:
            values["workflow"] = workflow

        def read(connection: Connection) -> list[AuditEvent]:
            found = connection.execute(statement, values).mappings().all()
            return [rows.event_from_row(row) for row in found]

        return self._read("read audit events", read)

    def stream_events(self, *, chunk: int = event_stream.CHUNK) -> Iterator[Sequence[EventRecord]]:
        """Each case's audit events, oldest first, one case at a time, from one streamed query.

        Cases come by case id. Rows are handed on as they are, without building
        :class:`~closedloop.engine.model.AuditEvent` models (no hashes, no actor). The
        query holds one read-only transaction (a snapshot; on SQLite no write lock)
        until the iteration ends.

        Args:
            chunk: How many rows to fetch from the database at a time.

        Raises:
            StoreError: the database failed.
        """
        return event_stream.stream_events(self._engine, chunk=chunk)

    # -- timers and outbox -----------------------------------------------------------

    def claim_due(
        self,
        now: datetime,
        *,
        owner: str,
        lease: timedelta,
        limit: int,
        workflow: str | None = None,
    ) -> list[TimerClaim]:
        """Lease up to ``limit`` cases (of ``workflow``, or of any) whose earliest timer
        is due, earliest first.

        A case whose lease expired is claimable again; every claim gets a new token
        and is committed before this returns.
        """
        now = check_claim(now, lease, limit)
        return self._write(
            "claim due timers",
            lambda c: leases.claim_due(
                c, now, owner=owner, lease=lease, limit=limit, workflow=workflow
            ),
        )

    def next_due_at(self, workflow: str | None = None) -> datetime | None:
        """The earliest ``next_timer_at`` of any case (of ``workflow``, when given), or
        ``None``."""
        return self._read("find the next due timer", lambda c: leases.next_due_at(c, workflow))

    def claim_outbox(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` pending messages due for an attempt; count the attempt now."""
        now = check_claim(now, lease, limit)
        return self._write(
            "claim outbox messages",
            lambda c: leases.claim_outbox(c, now, owner=owner, lease=lease, limit=limit),
        )

    def finish_outbox(
        self,
        message: OutboxMessage,
        *,
        status: OutboxStatus,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Record an attempt's outcome; ``False`` (and no change) if the lease was lost."""
        retry_at = None if next_attempt_at is None else utc(next_attempt_at, "next_attempt_at")
        return self._write(
            "finish an outbox message",
            lambda c: leases.finish_outbox(
                c, message, status=status, error=error, next_attempt_at=retry_at
            ),
        )

    def dead_letters(self, *, limit: int = 100) -> list[OutboxMessage]:
        """Messages finished as ``dead`` or ``disabled``, oldest first."""
        return self._read("list dead letters", lambda c: leases.dead_letters(c, limit=limit))

    def requeue(self, message_id: str, *, now: datetime) -> None:
        """Put a dead or disabled message back as pending, due at ``now``, with its
        attempts reset.

        Raises:
            MessageNotFound: no dead or disabled message has that id.
        """
        now = utc(now, "now")
        if not self._write("requeue a message", lambda c: leases.requeue(c, message_id, now=now)):
            raise MessageNotFound(message_id)

    # -- internals -------------------------------------------------------------------

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:
        # On a connection the store's transactions keep between them (SQLite): a
        # checkout from the pool costs a page more than its BEGIN.
        with translated(action):
            connection = self._idle.take(self._engine, read_only=True)
            try:
                with begin(connection, write=False):
                    return work(connection)
            finally:
                self._idle.give_back(connection)

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with (
                connect(self._engine, read_only=False) as connection,
                begin(connection, write=True),
            ):
                return work(connection)

        with translated(action):
            return retrying(attempt, attempts=self._retries)
