"""The audit trail: hash-chained events, their verification, and replay.

Each event carries the changes it made to the case body; folding the changes of a
case's events from the first rebuilds the case exactly (:func:`replay`). Each event's
hash covers its canonical JSON including the previous event's hash, so a changed,
removed or reordered event breaks the chain (:func:`verify_chain`).

Canonical JSON: keys sorted, no insignificant whitespace, UTF-8, instants in UTC.

Two formats of event exist. An event without sealed fields (format 1, every event
written before personal fields were sealed) hashes its canonical JSON as it is. An
event with sealed fields (format 2) hashes it with each sealed field's value replaced
by ``{"kind": ..., "sealed": <digest>}`` and ``"format": 2`` added, so its personal
values can be erased later without changing its hash (see
:mod:`closedloop.engine.personal`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError, to_json

from closedloop.engine.clock import utc
from closedloop.engine.model import (
    BODY_EXCLUDE,
    JSON,
    RECORD_FIELDS,
    AuditEvent,
    Case,
    Deadline,
    Seal,
    assembled,
    from_stored,
    thawed,
    to_stored,
)
from closedloop.errors import StoreError

if TYPE_CHECKING:
    from closedloop.engine.ports import CaseTransaction

GENESIS = "0" * 64
"""The ``prev_hash`` of a case's first event."""

SEALED_FORMAT = 2
"""The format number hashed into an event that has sealed fields."""

SEP = "/"
"""Separates the steps of a sealed field's path (``changes/location/address``)."""


def chain_head(tx: CaseTransaction, case_id: str) -> str:
    """The hash the case's next audit event chains to (its latest event's hash).

    Raises:
        StoreError: the stored case has no audit events: its trail is damaged.
    """
    head = tx.get_head(case_id)
    if head is None:
        raise StoreError(f"case {case_id!r} has no audit events; its audit trail is damaged")
    return head


def canonical_json(value: Any) -> bytes:
    """The canonical JSON encoding that hashes are computed over."""
    if type(value) is dict and _WRITES_ALIKE:
        try:
            return to_json(_in_order(value))
        except (_NotPlain, TypeError, PydanticSerializationError):
            pass  # encoded (or refused) as below
    return _CANONICAL.encode(value).encode("utf-8")


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""What ``json.dumps`` builds for these options on every call, built once."""


class _NotPlain(Exception):
    """A value :func:`_in_order` does not copy: it is encoded by :data:`_CANONICAL`."""


def _in_order(data: dict[str, Any]) -> dict[str, JSON]:
    """A copy of the JSON data ``data`` whose dicts (its own and those in it) hold their
    keys in sorted order: pydantic-core's ``to_json`` writes it as :data:`_CANONICAL`
    writes ``data``, byte for byte, in a fraction of the time (the same escapes and
    UTF-8 text, the same digits for integers, and for floats in the range where Python
    writes them without an exponent; dicts in the order they hold their keys). Every
    part is of exactly one of the types checked here; a float outside that range, a
    NaN or an infinity, a key that is not text, or any other value raises
    :class:`_NotPlain` (keys of several types may raise ``TypeError`` as they are
    sorted), and the data is encoded by :data:`_CANONICAL` instead.
    """
    copy: dict[str, JSON] = {}
    for key in sorted(data):
        if type(key) is not str:
            raise _NotPlain
        value = data[key]
        copy[key] = value if type(value) in _SCALARS else _ordered(value)
    return copy


def _ordered(value: Any) -> JSON:
    """:func:`_in_order` for a value that is not text, a whole number, a boolean or
    ``None``."""
    kind = type(value)
    if kind is dict:
        return _in_order(value)
    if kind is list:
        return [item if type(item) in _SCALARS else _ordered(item) for item in value]
    if kind is not float or not (value == 0.0 or 1e-4 <= abs(value) < 1e16):
        raise _NotPlain
    return value


_SCALARS = frozenset({str, int, bool, type(None)})
"""The types of the values :func:`_in_order` takes as they are."""


def _writes_alike() -> bool:
    """Whether the installed pydantic-core writes, as :data:`_CANONICAL` does, values of
    each kind :func:`_in_order` lets through, at the edges of their ranges (else every
    event is encoded by :data:`_CANONICAL`)."""
    probe: dict[str, JSON] = {
        "floats": [0.0, -0.0, 1e-4, -0.00015, 0.1, 2.5, 100.0, 1234567890123456.0, 9.99e15],
        "integers": [0, -1, 2**53 + 1, 2**64, -(10**30)],
        "text": ["", '"\\/\b\f\n\r\t\x00\x1f\x7f\x85', "é中\u2028\u2029\ufeff\U0001f600"],
        "others": [True, False, None, {}, [], {"b": 1, "a": {"d": [], "c": None}}],
    }
    try:
        return to_json(_in_order(probe)) == _CANONICAL.encode(probe).encode("utf-8")
    except (_NotPlain, TypeError, ValueError, PydanticSerializationError):
        return False


_WRITES_ALIKE = _writes_alike()
"""Whether :func:`canonical_json` and :func:`seal` may have pydantic-core write."""


def body(case: Case) -> dict[str, JSON]:
    """The case as audit events see it: JSON data, without contact data or version.

    A command needs the body of the case it changes and of the case it makes (for the
    event's changes, and the SQL store for the row), so the bodies of the last cases
    asked about are kept: the same (frozen) case gives the same dict, which callers
    read and never change.
    """
    found = _kept(case)
    if found is not None:
        return found
    data = to_stored(case, exclude=BODY_EXCLUDE)
    _keep(case, data)
    return data


def read_body(case: Case, data: Mapping[str, JSON]) -> None:
    """Note that a store read ``case`` from the stored body ``data``.

    When ``data`` equals the body computed lately for the case of that id and version
    (the one a command wrote), it is ``case``'s body too: a stored body reads back into
    a case whose body is that body again. The next command then compares with it
    instead of computing it from ``case``.
    """
    known = _WRITTEN.get((case.id, case.version))
    if known is not None and _same(known, data):
        _keep(case, known)


def same_body(case: Case, copy: Case) -> None:
    """Note that ``copy`` holds what ``case`` holds, apart from its contact data and as
    copies of its dicts and lists (a store's own copy of a case it keeps): when the body
    of ``case`` was computed lately, it is ``copy``'s body too."""
    data = known_body(case)
    if data is not None:
        _keep(copy, data)


def known_body(case: Case) -> dict[str, JSON] | None:
    """The body of ``case`` when it is known already (computed, or noted by
    :func:`read_body` or :func:`note_body`); ``None`` otherwise. Nothing is computed."""
    return _kept(case)


def note_body(case: Case, data: dict[str, JSON]) -> None:
    """Note that ``data`` is the body of ``case``, known to be (a store hands out a copy
    of a case whose body it is): the next command compares with it instead of
    computing it. ``data`` is never changed afterwards."""
    _keep(case, data)


def differs(one: object, other: object) -> bool:
    """Whether two JSON values differ, types and signs included: ``==`` holds ``1``,
    ``1.0`` and ``True`` equal, and ``0.0`` and ``-0.0`` (in dicts and lists too), yet
    their JSON differs, and a change from one to another is a change to record and to
    write. Values that are the same object, or unequal, are told at once; only equal
    values of other objects are compared part by part. (A NaN, unequal to itself, would
    count as changed; none reaches here: payloads refuse it and a body holds ``null``
    for it.)"""
    return one is not other and (one != other or not _same(one, other))


def _same(one: object, other: object) -> bool:
    """Whether two JSON values are the same, types and signs included (``==`` holds
    ``1``, ``1.0`` and ``True`` equal, and ``0.0`` and ``-0.0``, and a body holding one
    must not pass for the other)."""
    if one is other:
        return True
    kind = type(one)
    if kind is not type(other):
        return False
    if kind in _PLAIN:
        return one == other
    # The parts of a copy are mostly the very same objects (text, numbers): told apart
    # from the others here, without a call each.
    if isinstance(one, dict):
        assert isinstance(other, dict)
        if one.keys() != other.keys():
            return False
        for key, value in one.items():
            item = other[key]
            if value is not item and not _same(value, item):
                return False
        return True
    if isinstance(one, list):
        assert isinstance(other, list)
        if len(one) != len(other):
            return False
        for value, item in zip(one, other, strict=True):
            if value is not item and not _same(value, item):
                return False
        return True
    if isinstance(one, float):
        assert isinstance(other, float)
        return one == other and (one != 0.0 or math.copysign(1.0, one) == math.copysign(1.0, other))
    return one == other


_PLAIN = frozenset({str, int, bool, type(None), datetime})
"""Types whose equal values are the same (no parts to compare, no sign of zero)."""


def _keep(case: Case, data: dict[str, JSON]) -> None:
    """Keep ``data`` as the body of ``case``; when full, the body used least recently
    goes (with its entry by case id and version, unless a later body took that)."""
    key = id(case)
    _BODIES[key] = (case, data)
    _BODIES.move_to_end(key)
    _WRITTEN[(case.id, case.version)] = data
    if len(_BODIES) > _keep_limit:
        _drop_oldest_body()


def _drop_oldest_body() -> None:
    """Drop the body used least recently (with its entry by case id and version, unless
    a later body took that)."""
    _, (gone, body_gone) = _BODIES.popitem(last=False)
    written = (gone.id, gone.version)
    if _WRITTEN.get(written) is body_gone:
        del _WRITTEN[written]


def _kept(case: Case) -> dict[str, JSON] | None:
    """The body kept for ``case`` (now the last to go), or ``None``."""
    key = id(case)
    found = _BODIES.get(key)
    if found is None or found[0] is not case:
        return None
    _BODIES.move_to_end(key)
    return found[1]


_KEPT_BODIES = 64
"""How many bodies, and hashed events, are kept while no tick's batch needs more (see
:func:`keeping`): a command needs a few. Every body kept is garbage the collector walks
through, so more would slow commands down."""
_keep_limit = _KEPT_BODIES
"""How many are kept now."""
_asked: list[int] = []
"""The numbers the batches running now asked to keep (see :func:`keeping`)."""


@contextmanager
def keeping(count: int) -> Iterator[None]:
    """Keep at least ``count`` bodies and hashed events while the block runs: a tick
    reads its batch's cases before it changes the first, and sends their events after
    the last, so a batch needs twice its size. Once no batch asks for more, the least
    recently used go again, down to the usual number (ticks in other threads keep
    theirs while they run)."""
    global _keep_limit
    _asked.append(count)
    _keep_limit = max([_KEPT_BODIES, *_asked])
    try:
        yield
    finally:
        _asked.remove(count)
        _keep_limit = max([_KEPT_BODIES, *_asked])
        while len(_BODIES) > _keep_limit:
            _drop_oldest_body()
        while len(_HASHED) > _keep_limit:
            del _HASHED[next(iter(_HASHED))]


_BODIES: OrderedDict[int, tuple[Case, dict[str, JSON]]] = OrderedDict()
"""The bodies of recent cases by the case's id(), least recently used first; the case is
kept with its body so the id cannot be reused while the entry lives."""
_WRITTEN: dict[tuple[str, int], dict[str, JSON]] = {}
"""The same bodies by case id and version (at most one for each entry above)."""


def changes(before: Case | None, after: Case) -> dict[str, JSON]:
    """The body fields of ``after`` that differ from ``before`` (all of them if new),
    types included: a value changed from ``1`` to ``True`` or ``1.0`` is a change."""
    if before is None:
        return body(after)
    old = body(before)
    new = _body_after(before, old, after)
    # Most values are the very same objects as before: told apart without a call.
    found = old.get
    return {
        key: value
        for key, value in new.items()
        if value is not (was := found(key)) and differs(was, value)
    }


def _body_after(before: Case, old: dict[str, JSON], after: Case) -> dict[str, JSON]:
    """The body of ``after``, a case made from ``before`` (whose body is ``old``) by
    replacing some of its fields: the fields it shares with ``before`` (the very same
    values) are taken from ``old``, only the others encoded."""
    found = _kept(after)
    if found is not None:
        return found
    was = before.__dict__.get
    kept = {name for name, value in after.__dict__.items() if was(name, _NONE) is value}
    kept &= _BODY_FIELDS
    encoded = None
    if not kept.issuperset(RECORD_FIELDS):
        kept.discard("attributes")  # the records are written inside the attributes
    if "attributes" not in kept:
        # The records ``after`` shares with ``before`` are written as ``old`` has them.
        written = old.get("attributes")
        if isinstance(written, dict):
            encoded = {name: written[name] for name in _FROZEN_RECORDS & kept if name in written}
    kept.difference_update(RECORD_FIELDS)
    # A clock that only warned or climbed a rung: its stored form is the one before with
    # those values, taken as they are (text, a whole number), not encoded again.
    deadline = _marked_deadline(before.deadline, after.deadline, old.get("deadline"))
    if deadline is not None:
        kept.add("deadline")
    data = dict(old)
    data.update(to_stored(after, exclude=BODY_EXCLUDE | kept, encoded=encoded))
    if deadline is not None:
        data["deadline"] = deadline
    _keep(after, data)
    return data


def _marked_deadline(
    before: Deadline | None, after: Deadline | None, stored: JSON
) -> dict[str, JSON] | None:
    """The stored form of ``after`` when it is ``before`` (stored as ``stored``) with
    only its warning level or rung changed; ``None`` otherwise (it is encoded then)."""
    if before is None or after is None or before is after or type(stored) is not dict:
        return None
    if type(after) is not Deadline or type(before) is not Deadline:
        return None
    was = before.__dict__
    marked: dict[str, JSON] = {}
    for name, value in after.__dict__.items():
        if value is not was[name]:
            if name not in _MARKS or type(value) is not _MARKS[name] or name not in stored:
                return None
            marked[name] = value
    return {**stored, **marked}


_MARKS: dict[str, type] = {"warning": str, "escalation": int}
"""The fields of a deadline its timers change, with the exact type each is stored as."""


_BODY_FIELDS = frozenset(Case.model_fields) - BODY_EXCLUDE
_NONE = object()
"""Held by no field."""
_FROZEN_RECORDS = frozenset(RECORD_FIELDS) - {"extension_request", "suspension_request"}
"""The records whose stored form never changes while the record is the same object (a
request's extra fields are a dict)."""


def seal(
    *,
    case_id: str,
    seq: int,
    at: datetime,
    actor: str,
    role: str | None,
    trigger: str,
    from_state: str | None,
    to_state: str,
    payload: dict[str, JSON],
    reason: str | None,
    changes: dict[str, JSON],
    prev_hash: str,
    sealed: Mapping[str, Seal] | None = None,
    written_at_once: bool = False,
) -> AuditEvent:
    """Build an event and compute its hash (``sealed``: the seals of its personal
    fields, see :mod:`closedloop.engine.personal`).

    ``written_at_once``: the caller writes the event in the transaction that sealed it
    before anyone else holds it (the engine's commands do), so a store may take the
    data its hash was computed over without checking that the event still holds them
    (:func:`hashed_json`); any other caller may change the event first.

    The engine made every value (its instant, its payload checked, its changes from
    the bodies), so the event is assembled as validation would give it, without
    validating: ``at`` in UTC, and dicts of its own: its changes share no dict or list
    with the bodies kept for the next command, nor with the data :func:`hashed_json`
    gives a store, so that what a holder of the event changes in it reaches neither.
    """
    fields: dict[str, Any] = {
        "case_id": case_id,
        "seq": seq,
        "at": utc(at, "at"),
        "actor": actor,
        "role": role,
        "trigger": trigger,
        "from_state": from_state,
        "to_state": to_state,
        "payload": dict(payload),
        "reason": reason,
        "changes": dict(changes),
        "prev_hash": prev_hash,
        "hash": "",
        "sealed": dict(sealed or {}),
    }
    if not sealed and _WRITES_ALIKE:
        made = _plain_event(fields, written_at_once)
        if made is not None:
            return made
    event = assembled(AuditEvent, fields)
    data = _hashed(event)
    # Not shown to anyone before its hash is in: set in place, not copied.
    fields["hash"] = hashlib.sha256(canonical_json(data)).hexdigest()
    if event.sealed:
        fields["changes"] = thawed(fields["changes"])
        return event
    # ``changes`` holds values of the bodies kept for the next command (see
    # :func:`changes`), which nothing done to the event may change: the event takes the
    # copy encoding made of them (JSON data as they are), the kept data the values.
    fields["changes"], data["changes"] = data["changes"], fields["changes"]
    _hashed_lately(event, data, written_at_once)
    return event


def _plain_event(fields: dict[str, Any], written_at_once: bool) -> AuditEvent | None:
    """:func:`seal`'s event of ``fields`` (none of them sealed), its canonical JSON
    written by pydantic-core from copies of its payload and changes with their keys in
    order (see :func:`_in_order`), when every value is of a type that writes so: exactly
    text, a whole number, an instant in UTC, or JSON data that :func:`_in_order`
    copies. ``None`` otherwise (:func:`seal` then hashes the event as validation dumps
    it).

    The event takes the ordered copy of its changes (its dicts hold their keys in
    sorted order); the data :func:`hashed_json` gives a store keeps the changes as they
    came, in the order the body holds its fields, and a copy of the payload in its own
    order, of its own when it holds dicts or lists.
    """
    at, role, source, reason = fields["at"], fields["role"], fields["from_state"], fields["reason"]
    payload, changes = fields["payload"], fields["changes"]
    if not (
        type(fields["case_id"]) is str
        and type(fields["seq"]) is int
        and type(at) is datetime
        and at.tzinfo is UTC
        and type(fields["actor"]) is str
        and (role is None or type(role) is str)
        and type(fields["trigger"]) is str
        and (source is None or type(source) is str)
        and type(fields["to_state"]) is str
        and (reason is None or type(reason) is str)
        and type(fields["prev_hash"]) is str
    ):
        return None
    try:
        ordered = _in_order(changes)
        text = to_json(
            {
                "actor": fields["actor"],
                "at": at,
                "case_id": fields["case_id"],
                "changes": ordered,
                "from_state": source,
                "payload": _in_order(payload),
                "prev_hash": fields["prev_hash"],
                "reason": reason,
                "role": role,
                "seq": fields["seq"],
                "to_state": fields["to_state"],
                "trigger": fields["trigger"],
            }
        )
    except (_NotPlain, TypeError, PydanticSerializationError):
        return None
    fields["changes"] = ordered
    fields["hash"] = hashlib.sha256(text).hexdigest()
    event = assembled(AuditEvent, fields)
    nested = any(type(value) is dict or type(value) is list for value in payload.values())
    stored = {"payload": thawed(payload) if nested else dict(payload), "changes": changes}
    _hashed_lately(event, stored, written_at_once)
    return event


def _hashed_lately(event: AuditEvent, data: dict[str, JSON], written_at_once: bool) -> None:
    """Keep the data ``event``'s hash was computed over for :func:`hashed_json`."""
    if len(_HASHED) >= _keep_limit:
        del _HASHED[next(iter(_HASHED))]  # the oldest: a batch's first events stay
    _HASHED[id(event)] = (event, data, written_at_once)


def hashed_json(event: AuditEvent) -> dict[str, JSON] | None:
    """The JSON data of ``event``'s payload and changes (under those keys) as its hash
    was computed over them, for an event without sealed fields that :func:`seal` made
    lately and whose payload and changes still hold those data, types and signs
    included (:func:`differs`); ``None`` otherwise. A store writing the event reads its
    JSON fields from it rather than encoding them again, so every store writes an event
    as it is when written, changed since it was sealed or not; callers never change
    it."""
    found = _HASHED.get(id(event))
    if found is None or found[0] is not event:
        return None
    data = found[1]
    if found[2]:  # written in the transaction that sealed it: nobody else held it
        return data
    if differs(event.changes, data["changes"]) or differs(event.payload, data["payload"]):
        return None
    return data


_HASHED: dict[int, tuple[AuditEvent, dict[str, JSON], bool]] = {}
"""The hashed JSON data of recent events by the event's id(), kept as bodies are, and
whether each is written in the transaction that sealed it (``written_at_once``)."""


def event_hash(event: AuditEvent) -> str:
    """The SHA-256 over the event's canonical JSON, ``hash`` field excluded; each sealed
    field counted by its digest, not its value (see the module's formats)."""
    return hashlib.sha256(canonical_json(_hashed(event))).hexdigest()


def _hashed(event: AuditEvent) -> dict[str, JSON]:
    """The data :func:`event_hash` encodes."""
    data = event.model_dump(mode="json", exclude={"hash", "sealed"})
    if event.sealed:
        for path, seal in event.sealed.items():
            put(data, path, {"kind": seal.kind, "sealed": seal.digest})
        data["format"] = SEALED_FORMAT
    return data


def digest(salt: str, value: JSON) -> str:
    """The SHA-256 of the salt's bytes followed by the value's canonical JSON."""
    return hashlib.sha256(bytes.fromhex(salt) + canonical_json(value)).hexdigest()


def seal_problems(event: AuditEvent) -> list[str]:
    """The sealed fields of ``event`` whose value no longer matches its digest (an erased
    field, without its salt, is not checked)."""
    data = event.model_dump(mode="json", exclude={"hash", "sealed"})
    return [
        path
        for path, seal in event.sealed.items()
        if seal.salt is not None and digest(seal.salt, get(data, path)) != seal.digest
    ]


def get(doc: Mapping[str, JSON], path: str) -> JSON:
    """The value at ``path`` in ``doc`` (``None`` when a step is missing)."""
    node: JSON = doc
    for step in path.split(SEP):
        if not isinstance(node, Mapping):
            return None
        node = node.get(step)
    return node


def put(doc: dict[str, JSON], path: str, value: JSON) -> None:
    """Set the value at ``path`` in ``doc``, making the steps that are missing."""
    *steps, last = path.split(SEP)
    node = doc
    for step in steps:
        child = node.get(step)
        if not isinstance(child, dict):
            child = {}
            node[step] = child
        node = child
    node[last] = value


def replay(events: Sequence[AuditEvent]) -> Case:
    """The case rebuilt from its events, oldest first.

    Raises:
        ValueError: there are no events, or their changes do not make a case.
    """
    if not events:
        raise ValueError("cannot replay a case without events")
    data: dict[str, JSON] = {}
    for event in events:
        data.update(event.changes)
    return from_stored({**data, "version": events[-1].seq})


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of verifying one case's audit trail.

    ``ok`` is true when the chain is intact, complete up to the case's version, and
    replaying it gives the stored case. ``problems`` says what is wrong otherwise.
    """

    case_id: str
    ok: bool
    events: int
    problems: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


def verify_chain(case_id: str, events: Sequence[AuditEvent], stored: Case | None) -> AuditReport:
    """Check hashes, links, sequence and replay of ``events`` against ``stored``."""
    problems: list[str] = []
    previous = GENESIS
    for position, event in enumerate(events, start=1):
        where = f"event {position}"
        if event.case_id != case_id:
            problems.append(f"{where}: belongs to case {event.case_id!r}")
        if event.seq != position:
            problems.append(f"{where}: has sequence {event.seq} (an event was removed or moved)")
        if event.prev_hash != previous:
            problems.append(f"{where}: does not link to the previous event's hash")
        if event_hash(event) != event.hash:
            problems.append(f"{where}: content does not match its hash (it was changed)")
        for path in seal_problems(event):
            problems.append(f"{where}: the personal field {path} does not match its digest")
        previous = event.hash
    problems += _against_stored(events, stored)
    return AuditReport(case_id, not problems, len(events), tuple(problems))


def _against_stored(events: Sequence[AuditEvent], stored: Case | None) -> list[str]:
    if stored is None:
        return ["no stored case to compare with"]
    if len(events) != stored.version:
        return [f"the case is at version {stored.version} but {len(events)} events are stored"]
    try:
        rebuilt = replay(events)
    except (ValueError, PydanticValidationError) as exc:
        return [f"replaying the events fails: {exc}"]
    if differs(body(rebuilt), body(stored)):
        return ["replaying the events does not give the stored case"]
    return []
