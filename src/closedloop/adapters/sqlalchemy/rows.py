"""Domain values to table rows and back; the only place that knows both shapes."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, from_json, to_json
from sqlalchemy import RowMapping

from closedloop.adapters.readback import reads_back
from closedloop.adapters.sqlalchemy.damage import damaged_row
from closedloop.engine import audit
from closedloop.engine.integrity import indexed_values
from closedloop.engine.model import (
    RECORD_FIELDS,
    AuditEvent,
    Case,
    ReporterContact,
    from_stored,
    unshared,
)
from closedloop.engine.ports import IdempotencyRecord, OutboxMessage
from closedloop.errors import StoreError


def case_values(case: Case) -> dict[str, Any]:
    """The ``cases`` row of ``case``: queryable columns plus the body as JSON.

    The columns are :func:`~closedloop.engine.integrity.indexed_values`, the same values
    ``verify`` compares them with, so the two cannot drift apart.
    """
    # The version lives in its own column, the contact in its own table.
    return {**indexed_values(case), "body": _stored_case(case)}


def case_written(case: Case) -> dict[str, Any]:
    """:func:`case_values` with the body as its JSON text, as the engine's serializer
    (pydantic-core's) writes it, encoded here once: a transaction's statements take it
    as it is (their ``encoded`` parameter, see ``Prepared``), and the transaction keeps
    it to know the case that text builds (:meth:`BuiltCases.keep`)."""
    values = case_values(case)
    values["body"] = _json_text(values["body"])
    return values


def case_from_row(body: Mapping[str, Any] | str | bytes, version: int) -> Case:
    """The case stored as ``body`` at ``version``: the column's JSON as data, or as the
    text a prepared statement reads on SQLite (decoded here, as the engine's
    ``json_deserializer`` would).

    Raises:
        DamagedRecord: the row does not hold a case (it was edited or damaged).
    """
    data: Any = body
    if isinstance(data, str | bytes):
        with damaged_row({}, "case"):
            data = from_json(data)
    with damaged_row(data if isinstance(data, Mapping) else {}, "case"):
        case = from_stored({**data, "version": version})
    audit.read_body(case, data)
    return case


class BuiltCases:
    """Cases built lately from stored bodies, by body text and version: those the case
    queries built, and those this process's transactions wrote and committed.

    An inbox or a search asked again reads mostly the same rows, and building a case
    from its body (decoding the JSON, validating the model) is most of what such a page
    costs in Python; a command mostly reads the case the command before it wrote. The
    key is the stored text itself with the version: a body changed in any way (by a
    command, an erasure, a migration, a repair by hand, another process) is built anew,
    and one that does not hold a case is never kept. Each reader gets a copy whose
    mutable values are its own (:func:`~closedloop.engine.model.unshared`), so no
    change a reader makes reaches a kept case; when the case's body is known (it was
    written as that text, or read as one a command wrote), the copy's body is noted for
    the audit (:func:`~closedloop.engine.audit.note_body`), so the next command does
    not compute it again. At most :attr:`KEEP` cases are kept; when full, the one used
    least recently goes, so a read over more cases than that keeps the latest it read
    and a page asked again after it still finds its own. Readers in other threads share
    the cases: a lock keeps the order and the bound exact (held for the lookups only,
    never while a case is built).
    """

    KEEP = 1024

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[str, int], tuple[Case, dict[str, Any] | None]] = OrderedDict()
        self._by_version: dict[tuple[str, int], Case] = {}
        """The kept cases by case id and version (the one kept last of each)."""
        self._rows: weakref.WeakKeyDictionary[
            Any, OrderedDict[tuple[int, int], tuple[Case, ReporterContact | None]]
        ] = weakref.WeakKeyDictionary()
        """The cases and contact data of the rows the queries read, by database, row id
        and version (see :meth:`by_row`)."""
        self._lock = threading.Lock()

    def case(
        self, body: Mapping[str, Any] | str | bytes, version: int, *, noted: bool = True
    ) -> Case:
        """The case stored as ``body`` at ``version`` (see :func:`case_from_row`), its
        body noted for the audit when known and ``noted`` (a command's read; a query's
        cases never reach a command).

        Raises:
            DamagedRecord: the row does not hold a case.
        """
        if not isinstance(body, str):  # decoded already: built each time
            return case_from_row(body, version)
        key = (body, version)
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)  # used now: the last to go
        if found is None:
            built = case_from_row(body, version)
            found = (built, audit.known_body(built))
            self._put(key, found)
        case, data = found
        copy = unshared(case)
        if data is not None and noted:
            audit.note_body(copy, data)
        return copy

    def cases(self, stored: Sequence[tuple[Any, int]]) -> list[Case]:
        """The cases stored as each body text and version of ``stored``, as :meth:`case`
        gives them to a query (not noted), with one look at the kept cases for all."""
        kept = self._kept
        with self._lock:
            found = [kept.get(key) if isinstance(key[0], str) else None for key in stored]
            for key, entry in zip(stored, found, strict=True):
                if entry is not None:
                    kept.move_to_end(key)  # used now: the last to go
        return [
            self.case(body, version, noted=False) if entry is None else unshared(entry[0])
            for (body, version), entry in zip(stored, found, strict=True)
        ]

    def by_row(
        self, database: object, stored: Sequence[tuple[int, int]], *, copied: bool = True
    ) -> list[tuple[Case, ReporterContact | None] | None]:
        """For each row id and version of ``stored`` in ``database`` (the store's
        engine), the case a query built from that row at that version, a copy of its
        own (without ``copied``: the kept case itself, which the caller copies before
        anyone else sees it), with the row's contact data; ``None`` where none is held
        (see :meth:`hold`)."""
        found: list[tuple[Case, ReporterContact | None] | None] = []
        with self._lock:
            rows = self._rows.get(database)
            if rows is None:
                return [None] * len(stored)
            for key in stored:
                held = rows.get(key)
                if held is not None:
                    rows.move_to_end(key)  # used now: the last to go
                found.append(held)
        if not copied:
            return found
        return [None if held is None else (unshared(held[0]), held[1]) for held in found]

    def hold(
        self,
        database: object,
        row_id: int,
        body: str,
        version: int,
        contact: ReporterContact | None,
    ) -> None:
        """Note that row ``row_id`` of ``database`` held ``body`` and ``contact`` at
        ``version``, just read, and its case was built and kept: :meth:`by_row` finds
        that case. A row's version is the whole of it: every change of a case's body or
        contact data writes a new one (an erasure too, which drops them all, see
        :meth:`clear`). At most :attr:`KEEP` rows per database; when full, the one used
        least recently goes."""
        with self._lock:
            built = self._kept.get((body, version))
            if built is None:  # not kept (it went already): not held either
                return
            rows = self._rows.get(database)
            if rows is None:
                rows = self._rows.setdefault(database, OrderedDict())
            rows[(row_id, version)] = (built[0], contact)
            rows.move_to_end((row_id, version))
            while len(rows) > self.KEEP:
                rows.popitem(last=False)

    def keep(self, body: str, case: Case, data: dict[str, Any]) -> bool:
        """Keep ``case``, whose stored body ``data`` a committed transaction of this
        process wrote as the text ``body`` (at the case's version), as the case that
        text builds, unless it might not build exactly that case: it holds contact
        data, which a body never holds, or a value that would read back as another
        (:func:`~closedloop.adapters.readback.reads_back`: an instant not in UTC, a
        list where the model has a tuple, ``1`` for ``True``). ``case`` is
        :func:`as_read`'s copy, made when it was written: nobody else holds it.

        The parts ``case`` shares with the case kept at the version before (the very
        same objects: the command read that one and changed some of its fields) read
        back as they are already, and are not checked again. Whether it was kept."""
        if case.contact is not None:
            return False
        with self._lock:
            before = self._by_version.get((case.id, case.version - 1))
        if not reads_back(case, before):
            return False
        self._put((body, case.version), (case, data))
        return True

    def kept(self) -> dict[tuple[str, int], Case]:
        """The cases kept now, by stored text and version (for checks)."""
        with self._lock:  # other threads add
            return {key: case for key, (case, _) in self._kept.items()}

    def clear(self) -> None:
        """Drop every kept case (after an erasure: their bodies may hold erased text)."""
        with self._lock:
            self._kept.clear()
            self._by_version.clear()
            self._rows.clear()

    def _put(self, key: tuple[str, int], entry: tuple[Case, dict[str, Any] | None]) -> None:
        case = entry[0]
        with self._lock:
            self._kept[key] = entry
            self._kept.move_to_end(key)
            self._by_version[(case.id, case.version)] = case
            while len(self._kept) > self.KEEP:
                _, (gone, _) = self._kept.popitem(last=False)  # the least recently used
                version = (gone.id, gone.version)
                if self._by_version.get(version) is gone:
                    del self._by_version[version]


def as_read(case: Case, data: Mapping[str, Any]) -> Case:
    """A copy of ``case``, whose stored body is ``data``, as reading that body makes it:
    its mutable values its own (the writer's caller holds ``case``, and may change them
    after writing it), and its fields counted as given as validation counts them (those
    the body names, the records found in its attributes, the version)."""
    copy = unshared(case)
    given = {*data, "version"}
    attributes = data.get("attributes")
    if isinstance(attributes, Mapping):
        given.update(name for name in RECORD_FIELDS if name in attributes)
    object.__setattr__(copy, "__pydantic_fields_set__", given)
    return copy


built_cases = BuiltCases()
"""The cases the SQL stores' queries built lately (one for the process: a key names
the whole stored value, whichever database it came from)."""


def event_values(event: AuditEvent) -> dict[str, Any]:
    """The ``case_events`` row of ``event`` (without ``sealed`` when it has no seals, as
    events were stored before seals existed)."""
    hashed = audit.hashed_json(event)
    if hashed is not None:  # JSON fields as the hash encoded them: the same data
        values: dict[str, Any] = {name: getattr(event, name) for name in _EVENT_PLAIN}
        values["payload"] = hashed["payload"]
        values["changes"] = hashed["changes"]
        return values
    if not event.sealed:
        values = _with_json(event, "payload", "changes")
        del values["sealed"]
        return values
    return _with_json(event, "payload", "changes", "sealed")


_EVENT_PLAIN = tuple(
    name for name in AuditEvent.model_fields if name not in ("payload", "changes", "sealed")
)
"""The event's fields stored as they are (the others are JSON columns)."""


def erased_event_values(event: AuditEvent) -> dict[str, Any]:
    """The parameters of ``ERASE_EVENT`` for ``event``."""
    values = event_values(event)
    return {
        "e_case": event.case_id,
        "e_seq": event.seq,
        **{name: values[name] for name in ("payload", "reason", "changes", "sealed")},
    }


def erased_outbox_values(message: OutboxMessage) -> dict[str, Any]:
    """The parameters of ``ERASE_OUTBOX`` for ``message``."""
    values = outbox_values(message)
    return {"m_id": message.id, "payload": values["payload"], "last_error": message.last_error}


def event_from_row(row: RowMapping) -> AuditEvent:
    """The audit event stored in ``row``.

    Raises:
        DamagedRecord: the row does not hold an audit event; the error names its case
            and sequence number.
    """
    with damaged_row(row, "event"):
        return AuditEvent.model_validate(dict(row))


def contact_values(case_id: str, contact: ReporterContact) -> dict[str, Any]:
    """The ``reporter_contacts`` row of a case's reporter."""
    return {"case_id": case_id, **contact.model_dump()}


def contact_from_row(row: RowMapping) -> ReporterContact:
    """The contact data stored in ``row``."""
    return ReporterContact.model_validate({k: v for k, v in row.items() if k != "case_id"})


def joined_contact(row: RowMapping) -> ReporterContact | None:
    """The contact data in a case row joined with its contact row (``None`` if none)."""
    if row["case_id"] is None:
        return None
    return ReporterContact(name=row["name"], phone=row["phone"], email=row["email"])


def idempotency_values(record: IdempotencyRecord) -> dict[str, Any]:
    """The ``idempotency_keys`` row of ``record``."""
    return record.model_dump()


def idempotency_from_row(row: RowMapping) -> IdempotencyRecord:
    """The record stored in ``row``."""
    return IdempotencyRecord.model_validate(dict(row))


def outbox_values(message: OutboxMessage) -> dict[str, Any]:
    """The ``outbox`` row of ``message``."""
    return _with_json(message, "payload")


def outbox_from_row(row: RowMapping) -> OutboxMessage:
    """The message stored in ``row``."""
    return OutboxMessage.model_validate(dict(row))


def _with_json(model: AuditEvent | OutboxMessage, *json_fields: str) -> dict[str, Any]:
    # Instants stay datetimes for their typed columns; JSON columns get JSON data, so a
    # value pydantic can encode (an instant inside a payload) is stored as it encodes.
    fields = set(json_fields)
    values = model.model_dump(exclude=fields)
    values.update(_json_data(model, include=fields))
    return values


def _stored_case(case: Case) -> dict[str, Any]:
    try:
        return audit.body(case)
    except PydanticSerializationError as exc:
        raise StoreError(f"cannot store a value that is not JSON data: {exc}") from None


def _json_text(data: dict[str, Any]) -> str:
    """``data`` as the engine's JSON serializer writes it."""
    try:
        return to_json(data).decode("utf-8")
    except PydanticSerializationError as exc:
        raise StoreError(f"cannot store a value that is not JSON data: {exc}") from None


def _json_data(model: BaseModel, **fields: Any) -> dict[str, Any]:
    try:
        return model.model_dump(mode="json", **fields)
    except PydanticSerializationError as exc:
        raise StoreError(f"cannot store a value that is not JSON data: {exc}") from None
