"""``SQLTransaction``: one database transaction behind the CaseTransaction port.

Writes go to the database as they are made, inside the open transaction, so reads
see them and the database enforces keys as it goes; nothing is durable until
:meth:`SQLTransaction.commit`. The optimistic check is the ``UPDATE``'s own
``WHERE version = :expected``: zero rows means another writer got there first. On
PostgreSQL, where each statement is a round trip, the ``UPDATE`` and the INSERT of the
case's event are one statement (:class:`~closedloop.adapters.sqlalchemy.statements.
WithEvent`), and so are a new case's INSERTs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from sqlalchemy import Connection, Executable, RootTransaction
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql.expression import ClauseElement

from closedloop.adapters.sqlalchemy import leases, rows
from closedloop.adapters.sqlalchemy import statements as sql
from closedloop.adapters.sqlalchemy.engines import IdleConnections, Statements, begin
from closedloop.adapters.sqlalchemy.failures import is_busy, translated
from closedloop.adapters.sqlalchemy.prepared import Composed, Outcome, listened_to
from closedloop.adapters.sqlalchemy.recent import RecentRow, RecentRows
from closedloop.adapters.store_base import StoreTransaction, check_claim
from closedloop.engine import audit
from closedloop.engine.integrity import indexed_values
from closedloop.engine.model import AuditEvent, Case, ReporterContact
from closedloop.engine.ports import IdempotencyRecord, OutboxMessage, TimerClaim
from closedloop.errors import (
    CaseNotFound,
    ClosedLoopError,
    ConcurrentModification,
    LeaseLost,
    StoreError,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine


_PREPARED: tuple[ClauseElement | Composed, ...] = (
    sql.ADD_CASE,
    sql.ADD_EVENT,
    sql.UPDATE_CASE,
    sql.CLAIMED_CASE,
    sql.CLAIMED_RECENT_CASE,
    sql.ADD_OUTBOX,
    sql.UPDATE_WITH_EVENT,
    sql.RECENT_CASE,
    sql.RECENT_WITH_EVENT,
    sql.CLAIMED_WITH_EVENT,
    sql.ADD_WITH_EVENT,
)
"""The writes every command makes, run as prepared statements."""
_PREPARED_IDS = frozenset(map(id, _PREPARED))


class SQLTransaction(StoreTransaction):
    """A unit of work over a :class:`~closedloop.adapters.sqlalchemy.SQLStore`.

    Rolls back on leaving its ``with`` block unless :meth:`commit` was called. The
    checks every store makes are
    :class:`~closedloop.adapters.store_base.StoreTransaction`'s; this class writes.
    """

    def __init__(
        self,
        engine: Engine,
        idle: IdleConnections,
        *,
        read_only: bool = False,
        recent: RecentRows | None = None,
        statements: Statements | None = None,
    ) -> None:
        super().__init__(read_only=read_only)
        self._engine = engine
        self._statements = Statements(engine) if statements is None else statements
        # Whether anything listens to the statements (see prepared.listened_to), found
        # when the transaction begins.
        self._listened = True
        self._idle = idle
        self._recent = recent
        self._connection: Connection | None = None
        self._transaction: RootTransaction | None = None
        self._writing = False
        self._versions: dict[str, int] = {}
        self._read_versions: dict[str, int] = {}
        self._contacts: dict[str, ReporterContact | None] = {}
        self._heads: dict[str, str | None] = {}
        self._stored: dict[str, Case] = {}  # the case as its row holds it now
        self._texts: dict[str, str] = {}  # the body text its row holds now, when known
        # The values its row's queryable columns hold now, when known (rows.case_written).
        self._columns: dict[str, Mapping[str, Any]] = {}
        # The cases written (as they read back, see rows.as_read) and their bodies.
        self._written: dict[str, tuple[Case, dict[str, Any]]] = {}
        self._held: list[_Held] | None = None  # writes held back (in batched_writes)
        self._held_cases: set[str] = set()  # the cases with an UPDATE among them
        # The cases read from memory (recent_case) at these versions, not yet written.
        self._unverified: dict[str, int] = {}
        # PostgreSQL: a case's write not sent yet (see _update_case), with the
        # notifications queued after it, sent with it.
        self._pending: _Pending | None = None

    # -- reads -----------------------------------------------------------------------

    def get_case(self, case_id: str) -> Case | None:
        """The stored case (contact data not included), or ``None``."""
        if self._unverified.pop(case_id, None) is not None:
            # Read from memory and not written yet: the row as it stands replaces it.
            for held in (self._versions, self._stored, self._texts, self._columns):
                held.pop(case_id, None)
        with self._errors("read a case", case_id):
            read = self._statements.get(sql.CASE, ())  # every command's first statement
            connection = self._conn()
            row = read.run(connection, {"case_id": case_id}, listened=self._listened).first()
        return None if row is None else self._read(case_id, row)

    def recent_case(self, case_id: str) -> tuple[Case | None, bool]:
        """The case as this store's transactions last read or committed it, without a
        statement, when that row is held and the case was not read in this transaction
        yet (then ``True``); else as :meth:`get_case` reads it (and ``False``). See
        :class:`~closedloop.engine.ports.RecentCases`: the case's guarded UPDATE checks
        it, and a case read so and not written is checked at commit."""
        row = None
        if self._recent is not None and case_id not in self._stored:
            row = self._recent.get(case_id)
        if row is None:
            return self.get_case(case_id), False
        return self._from_memory(case_id, row), True

    def _from_memory(self, case_id: str, row: RecentRow) -> Case:
        """The case in a held row, as read at its version, to be checked as written."""
        if self._finished:
            raise StoreError("this transaction has already ended")
        self._versions.setdefault(case_id, row.version)
        self._contacts[case_id] = row.contact
        self._heads[case_id] = row.head
        case = rows.built_cases.case(row.text, row.version)
        self._stored[case_id] = case
        self._texts[case_id] = row.text
        if row.columns is None:
            self._columns.pop(case_id, None)
        else:
            self._columns[case_id] = row.columns
        self._unverified[case_id] = row.version
        return case

    def get_cases(self, case_ids: Sequence[str]) -> dict[str, Case]:
        """The stored cases among ``case_ids`` by id, read with their heads and
        contacts a few hundred at a statement (one for a tick's batch). A case whose
        row this store holds (:meth:`recent_case`) is taken from memory, and its
        guarded UPDATE checks that row's version and text."""
        wanted = list(dict.fromkeys(case_ids))
        found: dict[str, Case] = {}
        if self._recent is not None:
            unread = []
            for case_id in wanted:
                held = None if case_id in self._stored else self._recent.get(case_id)
                if held is None:
                    unread.append(case_id)
                else:
                    found[case_id] = self._from_memory(case_id, held)
            wanted = unread
        for start in range(0, len(wanted), _READ_AT_ONCE):
            chunk = wanted[start : start + _READ_AT_ONCE]
            with self._errors("read cases", None):
                read = self._conn().execute(sql.CASES, {"case_ids": chunk}).all()
            found.update((row.id, self._read(row.id, row)) for row in read)
        return found

    def _read(self, case_id: str, row: Any) -> Case:
        """The case in a row of :data:`sql.CASE`, its version, head and contact kept."""
        self._versions.setdefault(case_id, row.version)
        if not self._writing:
            self._read_versions.setdefault(case_id, row.version)
        self._contacts[case_id] = rows.joined_contact(row._mapping)
        self._heads[case_id] = row.head
        case = rows.built_cases.case(row.body, row.version)
        if case_id not in self._stored:
            self._stored[case_id] = case
            self._columns.pop(case_id, None)
            if isinstance(row.body, str):
                self._texts[case_id] = row.body
                self._hold(case_id, row.body, row.version)
        return case

    def _hold(
        self, case_id: str, text: str, version: int, columns: Mapping[str, Any] | None = None
    ) -> None:
        """Hold the case's row as read (before this transaction wrote the case) or as
        committed (with its ``columns`` when known), for :meth:`recent_case`."""
        if self._recent is None:
            return
        if case_id in self._contacts and case_id in self._heads:
            head, contact = self._heads[case_id], self._contacts[case_id]
            self._recent.put(case_id, RecentRow(text, version, head, contact, columns))
        else:
            self._recent.drop(case_id)  # not known whole: the held row is out of date

    def get_contact(self, case_id: str) -> ReporterContact | None:
        """The reporter's contact data for the case, or ``None``."""
        if case_id in self._contacts:
            return self._contacts[case_id]  # read with the case, in this transaction
        with self._errors("read contact data", case_id):
            row = self._conn().execute(sql.CONTACT, {"case_id": case_id}).mappings().first()
        return None if row is None else rows.contact_from_row(row)

    def get_events(self, case_id: str) -> list[AuditEvent]:
        """The case's audit events, oldest first."""
        with self._errors("read audit events", case_id):
            found = self._conn().execute(sql.EVENTS, {"case_id": case_id}).mappings().all()
        return [rows.event_from_row(row) for row in found]

    def get_head(self, case_id: str) -> str | None:
        """The hash of the case's latest event (read with the case when it was read)."""
        if case_id in self._heads:
            return self._heads[case_id]
        with self._errors("read the audit head", case_id):
            head = self._conn().execute(sql.HEAD, {"case_id": case_id}).scalar()
        return None if head is None else str(head)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The record stored under ``key``, or ``None``."""
        with translated("read an idempotency key"):
            row = self._conn().execute(sql.IDEMPOTENCY, {"key": key}).mappings().first()
        return None if row is None else rows.idempotency_from_row(row)

    # -- writes ----------------------------------------------------------------------

    def _add_case(
        self,
        case: Case,
        contact: ReporterContact | None,
        event: AuditEvent,
        next_timer_at: datetime | None,
    ) -> None:
        exists = _conflict(case.id, 0)
        columns = rows.case_written(case)
        values = {**columns, "next_timer_at": next_timer_at}
        with self._errors("add a case", case.id, conflict=exists, duplicate=exists):
            if self._engine.dialect.name == "postgresql":  # one statement, one round trip
                if contact is not None:
                    values.update(
                        sql.prefixed(sql.CONTACT_PARAM, rows.contact_values(case.id, contact))
                    )
                values.update(sql.prefixed(sql.EVENT_PARAM, rows.event_values(event)))
                if self._connection is None and self._pending is None:
                    # The transaction's first statement: sent with what follows it.
                    self._pending = _Pending(
                        sql.ADD_WITH_EVENT, values, "add a case", case.id, 0, []
                    )
                else:
                    self._write(sql.ADD_WITH_EVENT, values)
            else:
                self._write(sql.ADD_CASE, values)
                if contact is not None:
                    self._write(sql.ADD_CONTACT, rows.contact_values(case.id, contact))
                self._write(sql.ADD_EVENT, rows.event_values(event))
        self._stored[case.id] = case
        self._texts[case.id] = columns["body"]
        self._columns[case.id] = columns
        self._wrote(case)
        self._contacts[case.id] = contact
        self._heads[case.id] = event.hash
        self._versions[case.id] = case.version

    def _update_case(
        self,
        case: Case,
        expected_version: int,
        event: AuditEvent,
        next_timer_at: datetime | None,
        claim: TimerClaim | None,
    ) -> None:
        if self._held is not None:
            self._update_later(case, expected_version, event, next_timer_at, claim)
            return
        stale = _conflict(case.id, expected_version)
        params, columns = self._update_params(case, expected_version, next_timer_at, claim)
        held = self._held_body(case.id, expected_version, claim)
        if held is not None:
            params["held_body"] = held
        with self._errors("update a case", case.id, conflict=stale, duplicate=stale):
            if self._engine.dialect.name == "postgresql":
                # One round trip: the event is inserted only if the guard matched.
                params.update(sql.prefixed(sql.EVENT_PARAM, rows.event_values(event)))
                both = sql.UPDATE_WITH_EVENT if claim is None else sql.CLAIMED_WITH_EVENT
                if held is not None:
                    both = sql.RECENT_WITH_EVENT
                if claim is None and self._connection is None and self._pending is None:
                    # The transaction's first statement: sent with what follows it
                    # (see _Pending), its guard checked then.
                    self._pending = _Pending(
                        both, params, "update a case", case.id, expected_version, []
                    )
                elif self._write(both, params).rowcount != 1:
                    self._refused(case.id, expected_version, claim)
            else:
                guard = sql.UPDATE_CASE if claim is None else sql.CLAIMED_CASE
                if held is not None:
                    guard = sql.RECENT_CASE
                if self._write(guard, params).rowcount != 1:
                    self._refused(case.id, expected_version, claim)
                self._write(sql.ADD_EVENT, rows.event_values(event))
        self._updated(case, expected_version, event, columns, "body" in params)

    def _update_later(
        self,
        case: Case,
        expected_version: int,
        event: AuditEvent,
        next_timer_at: datetime | None,
        claim: TimerClaim | None,
    ) -> None:
        """Hold back the guarded UPDATE and the event of ``_update_case``: they are sent
        with the batch's others, the UPDATE's match checked then (see :meth:`_send`)."""
        assert self._held is not None
        if case.id in self._held_cases:
            self._send()  # its earlier UPDATE goes first, alone
        params, columns = self._update_params(case, expected_version, next_timer_at, claim)
        statement = sql.UPDATE_CASE if claim is None else sql.CLAIMED_CASE
        held = self._held_body(case.id, expected_version, None)
        if held is not None:
            params["held_body"] = held
            statement = sql.RECENT_CASE if claim is None else sql.CLAIMED_RECENT_CASE
        check = _Check(case.id, expected_version, case.version, claim)
        self._held += [(statement, params, check), (sql.ADD_EVENT, rows.event_values(event), None)]
        self._held_cases.add(case.id)
        self._updated(case, expected_version, event, columns, "body" in params)

    def _held_body(
        self, case_id: str, expected_version: int, claim: TimerClaim | None
    ) -> str | None:
        """The text the case's row held when it was read from memory at
        ``expected_version`` and not written since (:meth:`recent_case`), which its
        guarded UPDATE checks too; ``None`` for a case read from the database."""
        if claim is None and self._unverified.get(case_id) == expected_version:
            return self._texts.get(case_id)
        return None

    def _update_params(
        self,
        case: Case,
        expected_version: int,
        next_timer_at: datetime | None,
        claim: TimerClaim | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The parameters of the guarded UPDATE of ``case`` (under ``claim``, if any),
        and the values of all its columns (the body a parameter only when it changed)."""
        values, columns = self._changed_values(case, expected_version)
        params = {"case_id": case.id, "expected": expected_version, **values}
        params["next_timer_at"] = next_timer_at
        if claim is not None:
            params.update(sql.NO_LEASE, token=claim.token)
        return params, columns

    def _updated(
        self,
        case: Case,
        expected_version: int,
        event: AuditEvent,
        columns: dict[str, Any],
        set_body: bool,
    ) -> None:
        """Remember ``case`` as this transaction wrote it, with its event as the head, the
        values its row's columns then hold (``columns``), and the text its row's body
        holds: ``columns``' when the UPDATE set it or the row held it already; unknown
        otherwise (a body equal as data, not as text, is not known to build ``case``
        exactly)."""
        text: str = columns["body"]
        self._columns[case.id] = columns
        self._versions[case.id] = case.version
        self._heads[case.id] = event.hash
        self._stored[case.id] = case
        if self._unverified.get(case.id) == expected_version:
            del self._unverified[case.id]  # the guarded UPDATE checked it
        if set_body or self._texts.get(case.id) == text:
            self._texts[case.id] = text
        else:
            self._texts.pop(case.id, None)
        self._wrote(case)
        if self._read_versions.get(case.id) == expected_version:
            del self._read_versions[case.id]  # the guarded UPDATE checks this read

    def _wrote(self, case: Case) -> None:
        """Remember ``case``, written, as its stored body reads back (to keep at commit)."""
        data = audit.body(case)
        self._written[case.id] = (rows.as_read(case, data), data)

    def _changed_values(
        self, case: Case, expected_version: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The columns to set for ``case``: those whose values differ from the case as
        this transaction read or wrote it at ``expected_version`` (all of them when it
        did neither), types included (:func:`~closedloop.engine.audit.differs`: ``1``
        changed to ``True`` is written), and the values of all its columns (with the
        text of its body). SQLite rewrites the entries of every index on a column an
        UPDATE sets, changed or not, so setting only what changed spares most of them.
        The values the row holds are those this transaction or the one that wrote it
        last in this process computed, when known (see ``RecentRow.columns``)."""
        columns = rows.case_written(case)
        before = self._stored.get(case.id)
        if before is None or before.version != expected_version:
            values = dict(columns)
            del values["id"]  # the key is matched, not set
            return values, columns
        was = self._columns.get(case.id)
        if was is None:
            was = indexed_values(before)
        changed = {
            name: value
            for name, value in columns.items()
            if name not in _MATCHED_OR_BODY and audit.differs(was.get(name), value)
        }
        if audit.differs(audit.body(before), audit.body(case)):  # both known to the audit
            changed["body"] = columns["body"]
        return changed, columns

    def _put_idempotency(self, record: IdempotencyRecord) -> None:
        taken = _conflict(record.case_id, 0)
        with self._errors("store an idempotency key", record.case_id, duplicate=taken):
            self._write(sql.ADD_IDEMPOTENCY, rows.idempotency_values(record))

    def _release_claim(
        self, claim: TimerClaim, version: int, next_timer_at: datetime | None
    ) -> None:
        params = {
            "case_id": claim.case_id,
            "expected": version,
            "token": claim.token,
            "next_timer_at": next_timer_at,
            **sql.NO_LEASE,
        }
        with self._errors("release a timer claim", claim.case_id):
            if self._write(sql.CLAIMED_CASE, params).rowcount != 1:
                self._refused(claim.case_id, version, claim)

    def _hold_claim(self, claim: TimerClaim, version: int) -> None:
        params = {
            "case_id": claim.case_id,
            "expected": version,
            "tick_owner": claim.owner,
            "tick_expires_at": claim.expires_at,
            "tick_token": claim.token,
        }
        with self._errors("hold a timer claim", claim.case_id):
            if self._write(sql.UPDATE_CASE, params).rowcount != 1:
                self._refused(claim.case_id, version, None)

    def _refused(self, case_id: str, expected: int, claim: TimerClaim | None) -> None:
        """Raise why a guarded UPDATE of the case matched no row."""
        found = self._conn().execute(sql.LEASE_STATE, {"case_id": case_id}).first()
        if found is not None and found.version == expected and claim is not None:
            raise LeaseLost(case_id)
        raise ConcurrentModification(case_id, expected, None if found is None else found.version)

    def _add_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        if self._held is not None:
            self._held += [(sql.ADD_OUTBOX, rows.outbox_values(m), None) for m in messages]
            return
        if self._pending is not None:  # written with the case, when its guard matches
            self._pending.outbox.extend(rows.outbox_values(m) for m in messages)
            return
        first = messages[0]
        clash = _conflict(first.case_id or first.id, 0)
        with self._errors("write outbox messages", first.case_id, duplicate=clash):
            self._write(sql.ADD_OUTBOX, [rows.outbox_values(m) for m in messages])

    def _outbox_of(self, case_id: str) -> list[OutboxMessage]:
        with self._errors("read outbox messages", case_id):
            found = self._conn().execute(sql.OUTBOX_OF, {"case_id": case_id}).mappings().all()
        return [rows.outbox_from_row(row) for row in found]

    def _erase_personal(
        self,
        case_id: str,
        events: Sequence[AuditEvent],
        outbox: Sequence[OutboxMessage],
        contact: bool,
    ) -> None:
        with self._errors("erase personal data", case_id):
            if events:
                self._write(sql.ERASE_EVENT, [rows.erased_event_values(e) for e in events])
            if outbox:
                self._write(sql.ERASE_OUTBOX, [rows.erased_outbox_values(m) for m in outbox])
            if contact:
                self._write(sql.DROP_CONTACT, {"case_id": case_id})
                self._contacts[case_id] = None
            self._write(sql.DROP_IDEMPOTENCY, {"case_id": case_id})

    # -- batches ---------------------------------------------------------------------

    @contextmanager
    def batched_writes(self) -> Iterator[None]:
        """A block whose case updates, events and outbox messages are held back and sent
        together: one ``executemany`` per statement (and per set of columns) when the
        block ends, or before anything else touches the database. Each UPDATE's match is
        checked then, and a missed one raises as ``update_case`` would."""
        self._check_writable()
        if self._held is not None:
            yield  # already batching: the outer block sends
            return
        self._held = []
        try:
            yield
            self._send()
        except BaseException:
            self._spoiled = True  # some of it may be sent: the transaction cannot commit
            raise
        finally:
            self._held = None
            self._held_cases.clear()

    def _send(self) -> None:
        """Send the held-back writes, grouped by statement and columns, rows in their
        order; check every guarded UPDATE matched.

        The guarded UPDATEs go first (their groups in the order each first came), then
        the rest: a stale case fails on its own UPDATE, as ``update_case`` would, before
        its event collides with the one another writer appended, and each case's row is
        locked before the rows that hang on it are written, as a command locks it.
        """
        held, self._held = self._held or [], []
        self._held_cases.clear()
        groups: dict[tuple[int, tuple[str, ...]], tuple[Executable, list[Any], list[_Check]]]
        groups = {}
        for statement, params, check in held:
            group = groups.setdefault((id(statement), tuple(params)), (statement, [], []))
            group[1].append(params)
            if check is not None:
                group[2].append(check)
        for statement, batch, checks in sorted(groups.values(), key=lambda g: not g[2]):
            first = checks[0] if checks else None
            clash = None if first is None else _conflict(first.case_id, first.expected)
            with self._errors("write a batch", None, conflict=clash, duplicate=clash):
                matched = self._write(statement, batch).rowcount
            if checks and matched != len(checks):
                self._unmatched(checks)

    def _unmatched(self, checks: Sequence[_Check]) -> None:
        """Raise why one of a batch's guarded UPDATEs matched no row."""
        ids = list(dict.fromkeys(c.case_id for c in checks))
        with self._errors("check a batch", None):
            found = {row.id: row for row in self._conn().execute(sql.CASES, {"case_ids": ids})}
        for check in checks:
            # Each case has one UPDATE among those sent together (see _update_later): it
            # matched if the row now holds the case this transaction wrote.
            row = found.get(check.case_id)
            written = self._stored.get(check.case_id)
            if (
                row is None
                or row.version != check.version
                or rows.case_from_row(row.body, row.version) != written
            ):
                self._refused(check.case_id, check.expected, check.claim)
        first = checks[0]
        raise ConcurrentModification(first.case_id, first.expected, None)

    # -- claims ----------------------------------------------------------------------

    def claim_due(
        self,
        now: datetime,
        *,
        owner: str,
        lease: timedelta,
        limit: int,
        workflow: str | None = None,
    ) -> list[TimerClaim]:
        """Lease up to ``limit`` due cases (of ``workflow``, or of any) as one of this
        transaction's writes (the held back writes sent first, so it sees them); the
        leases last from its commit."""
        now = check_claim(now, lease, limit)
        self._check_writable()
        if self._held:
            self._send()
        with self._errors("claim due timers", None):
            return leases.claim_due(
                self._writer_connection(),
                now,
                owner=owner,
                lease=lease,
                limit=limit,
                workflow=workflow,
            )

    # -- savepoints ------------------------------------------------------------------

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A block whose writes are rolled back, and only they, if it raises.

        The transaction becomes the writer first (on SQLite it takes the write lock), so
        a savepoint is never lost to a reader's restart.
        """
        self._check_writable()
        if self._held:
            self._send()
        held, self._held = self._held, None  # inside, each write goes as it is made
        connection = self._writer_connection()
        remembered = self._remember()
        with translated("begin a savepoint"):
            nested = connection.begin_nested()
        try:
            yield
        except BaseException:
            with suppress(sa_exc.SQLAlchemyError):
                nested.rollback()
            self._restore(remembered)
            raise
        finally:
            self._held = held
        with self._errors("release a savepoint", None):
            nested.commit()

    def _writer_connection(self) -> Connection:
        if self._connection is None:
            return self._open(write=True)
        if not self._writing:
            # A SQLite reader that wrote nothing yet: start again as the writer; what it
            # read is checked before it commits (see _check_reads).
            with translated("take the write lock"):
                self._restart_as_writer(self._connection)
        return self._connection

    def _remember(self) -> tuple[dict[str, Any], ...]:
        return (
            dict(self._versions),
            dict(self._read_versions),
            dict(self._stored),
            dict(self._contacts),
            dict(self._heads),
            dict(self._texts),
            dict(self._written),
            dict(self._unverified),
            dict(self._columns),
        )

    def _restore(self, remembered: tuple[dict[str, Any], ...]) -> None:
        versions, read_versions, stored, contacts, heads, texts, written, unverified, columns = (
            remembered
        )
        self._versions, self._read_versions, self._stored = versions, read_versions, stored
        self._contacts, self._heads = contacts, heads
        self._texts, self._written, self._unverified = texts, written, unverified
        self._columns = columns

    # -- end -------------------------------------------------------------------------

    def _commit(self) -> None:
        try:
            if self._held:
                self._send()
            if self._pending is not None and not self._unverified and self._connection is None:
                self._commit_alone()  # the transaction's one statement, and its commit
            else:
                if self._unverified and not self._writing:
                    self._check_reads(self._conn())  # read from memory, written nowhere
                if self._pending is not None:
                    self._conn()  # begins, sending the pending write
                if self._transaction is not None:
                    if self._writing and self._connection is not None:
                        self._check_reads(self._connection)
                    with translated("commit"):
                        self._transaction.commit()
        finally:
            self._close()
        self._keep_written()

    def _commit_alone(self) -> None:
        """Send the pending write, this transaction's only statement, and commit.

        With psycopg, and unless the engine asks for an isolation level or a read-only
        or deferrable mode of its own, the statement is sent outside a transaction
        block: PostgreSQL runs it as a transaction of its own (atomic, and committed as
        durably as by ``COMMIT`` once it returns), one round trip instead of three
        (``BEGIN``, the statement, ``COMMIT``). Its guard failing writes nothing at all,
        since its event and notifications are inserted only when it matched."""
        with translated("connect"):
            connection = self._idle.take(self._engine, read_only=False)
            self._connection = connection
            self._begin(connection, write=True)  # sends nothing yet
        driver: Any = connection.connection.driver_connection
        alone = self._engine.dialect.driver == "psycopg" and (
            driver.isolation_level is None and driver.read_only is None and not driver.deferrable
        )
        if alone:
            driver.autocommit = True
        try:
            self._send_pending(connection)
        finally:
            if alone:
                try:
                    driver.autocommit = False
                except Exception:  # broken (lost, or interrupted mid-statement): not reused
                    connection.invalidate()
        assert self._transaction is not None
        with translated("commit"):
            self._transaction.commit()  # alone: sends nothing, the statement committed

    def _send_pending(self, connection: Connection) -> None:
        """Send the pending write (with the notifications queued after it); check that
        its guard matched. When it fails, the transaction cannot commit: the write was
        taken as made (its case is this transaction's from then on), so nothing made
        after it may be kept without it."""
        pending, self._pending = self._pending, None
        assert pending is not None
        params = pending.params
        if pending.outbox:
            params = {**params, **sql.outbox_params(pending.outbox)}
        stale = _conflict(pending.case_id, pending.expected)
        try:
            with self._errors(pending.action, pending.case_id, conflict=stale, duplicate=stale):
                matched = self._execute(connection, pending.statement, params).rowcount
            if matched != 1:
                self._refused(pending.case_id, pending.expected, None)
        except BaseException:
            self._spoiled = True
            raise

    def _keep_written(self) -> None:
        """Keep the cases this transaction wrote, now committed, as the cases their rows'
        texts build (``rows.BuiltCases``): the next command on one reads it without
        building it again. A case whose row's text is not known is not kept."""
        for case_id, (case, data) in self._written.items():
            text = self._texts.get(case_id)
            if text is not None:
                kept = rows.built_cases.keep(text, case, data)
                # Its columns' values describe the case its text builds when it was kept.
                self._hold(
                    case_id, text, case.version, self._columns.get(case_id) if kept else None
                )
            elif self._recent is not None:
                self._recent.drop(case_id)

    def _rollback(self) -> None:
        self._pending = None  # never sent
        try:
            if self._transaction is not None and self._transaction.is_active:
                if self._read_only and self._engine.dialect.name == "postgresql":
                    # A PostgreSQL reader wrote nothing, so COMMIT ends it as ROLLBACK
                    # would, but keeps the connection's prepared statements: psycopg
                    # drops them all at every ROLLBACK (DEALLOCATE ALL), so a host
                    # reading a case between commands would make the server plan the
                    # commands' statements again.
                    with translated("end a read"):
                        self._transaction.commit()
                    return
                with translated("roll back"):
                    self._transaction.rollback()
        finally:
            self._close()

    # -- internals -------------------------------------------------------------------

    def _conn(self) -> Connection:
        if self._held:
            self._send()  # a read sees the held-back writes
        if self._connection is None:
            return self._open(write=False)
        return self._connection

    def _write(self, statement: Executable | Composed, params: Any) -> Outcome:
        if self._held:
            self._send()  # the held-back writes go first
        if self._connection is None:
            return self._execute(self._open(write=True), statement, params)
        if self._writing:
            return self._execute(self._connection, statement, params)
        # A SQLite reader's first write: it becomes the writer in place when nobody
        # wrote since its snapshot (what it read is current). Otherwise SQLite refuses
        # at once ("database is locked", whatever the timeout), and the transaction
        # starts again as the writer, queueing for the lock; what it read is then
        # checked before it commits (see _check_reads). Nothing was written yet, so
        # running this first statement again is safe.
        try:
            result = self._execute(self._connection, statement, params)
        except sa_exc.OperationalError as exc:
            if not is_busy(exc):
                raise
            self._restart_as_writer(self._connection)
            result = self._execute(self._connection, statement, params)
        else:
            self._read_versions.clear()
        self._writing = True
        return result

    def _execute(
        self, connection: Connection, statement: Executable | Composed, params: Any
    ) -> Outcome:
        # A command's own writes run prepared (compiled once per store); others as usual.
        if not params or id(statement) not in _PREPARED_IDS:
            assert isinstance(statement, Executable)  # a Composed one is always prepared
            return connection.execute(statement, params)
        first = params if isinstance(params, dict) else params[0]
        # The body comes as JSON text (rows.case_written): passed as it is.
        hot = cast("ClauseElement | Composed", statement)  # one of _PREPARED
        statement_of = self._statements.get(hot, tuple(first), _ENCODED)
        return statement_of.run(connection, params, listened=self._listened)

    def _open(self, *, write: bool) -> Connection:
        if self._finished:
            raise StoreError("this transaction has already ended")
        with translated("connect"):
            connection = self._idle.take(self._engine, read_only=self._read_only)
            self._connection = connection
            self._begin(connection, write=write)
        if self._pending is not None:
            self._send_pending(connection)  # the transaction's first write goes first
        return connection

    def _begin(self, connection: Connection, *, write: bool) -> None:
        # PostgreSQL runs one transaction throughout: its row locks and the guarded
        # UPDATE order writers. SQLite starts as a reader (no lock, a snapshot).
        sqlite = connection.dialect.name == "sqlite"
        self._writing = write or not sqlite
        self._transaction = begin(connection, write=self._writing)
        self._listened = not sqlite or listened_to(connection)

    def _restart_as_writer(self, connection: Connection) -> None:
        assert self._transaction is not None
        self._transaction.rollback()
        self._begin(connection, write=True)

    def _check_reads(self, connection: Connection) -> None:
        """Every case read before writing, or read from memory and not written, must
        still be at the version read."""
        unchecked = {**self._read_versions, **self._unverified}
        if not unchecked:
            return
        with translated("check what was read"):
            found = connection.execute(sql.VERSIONS, {"case_ids": list(unchecked)}).all()
        current = {row.id: row.version for row in found}
        for case_id, version in unchecked.items():
            if current.get(case_id) != version:
                raise ConcurrentModification(case_id, version, current.get(case_id))

    def _close(self) -> None:
        self._finished = True
        connection, self._connection, self._transaction = self._connection, None, None
        if connection is not None:
            self._idle.give_back(connection)

    def _errors(
        self,
        action: str,
        case_id: str | None,
        *,
        conflict: Callable[[], ClosedLoopError] | None = None,
        duplicate: Callable[[], ClosedLoopError] | None = None,
    ) -> AbstractContextManager[None]:
        if case_id is None:
            return translated(action, conflict=conflict, duplicate=duplicate)
        if conflict is None:
            # A deadlock or serialization failure means another writer touched this case.
            conflict = _conflict(case_id, self._versions.get(case_id, 0))
        return translated(
            action,
            conflict=conflict,
            duplicate=duplicate,
            missing=lambda: CaseNotFound(case_id),
        )


_MATCHED_OR_BODY = frozenset({"id", "body"})
"""The columns :meth:`SQLTransaction._changed_values` compares otherwise or never sets."""

_ENCODED = ("body",)
"""The parameters a transaction passes encoded already: the case body's JSON text."""

_READ_AT_ONCE = 500
"""The most cases :meth:`SQLTransaction.get_cases` reads in one statement."""


class _Check(NamedTuple):
    """What a held-back guarded UPDATE of a case expects, to check it matched."""

    case_id: str
    expected: int
    version: int  # the version it writes
    claim: TimerClaim | None


class _Pending(NamedTuple):
    """PostgreSQL: the write of a case (a new one, or a guarded update) with its event,
    the transaction's first statement, not sent yet. It goes before anything else the
    transaction sends, or at its commit; the notifications queued in between are
    inserted by the same statement (:class:`~closedloop.adapters.sqlalchemy.statements.
    WithEvent`, :class:`~closedloop.adapters.sqlalchemy.statements.AddedWithEvent`). A
    report, or a trigger on a case the store holds, so sends one statement, and when
    nothing else follows it, that statement is the whole transaction (see
    :meth:`SQLTransaction._commit_alone`)."""

    statement: Composed
    params: dict[str, Any]
    action: str  # for its errors: "add a case", "update a case"
    case_id: str
    expected: int
    outbox: list[dict[str, Any]]


_Held = tuple[Executable, dict[str, Any], _Check | None]
"""A held-back write: its statement, its row's parameters, its check if guarded."""


def _conflict(case_id: str, expected: int) -> Callable[[], ClosedLoopError]:
    return lambda: ConcurrentModification(case_id, expected, None)
