"""The cases and events the in-memory store keeps: each as it reads back from its JSON row.

A database hands back what it parsed from a row, never the object that was written,
and refuses a value that is not JSON data. The in-memory store keeps a case the same
way without encoding it, when it can tell that every part of it already reads back from
JSON as it is (:func:`~closedloop.adapters.readback.reads_back`: the parts it shares
with the case stored before were checked when that one was kept, the others are
checked then). Such a case is kept as a copy of its own dicts and lists
(:func:`~closedloop.engine.model.unshared`); any other takes the JSON round trip, which
gives it back normalised (a tuple in its attributes as a list, an instant in UTC) or
fails on what is not JSON data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from closedloop.adapters.readback import reads_back
from closedloop.engine.audit import hashed_json, same_body
from closedloop.engine.model import AuditEvent, Case, built, unshared


def kept_case(case: Case, stored: Case | None) -> Case:
    """``case`` as it reads back from a row of its JSON without contact data and with
    only what was given, sharing no dict or list with ``case``; ``stored`` is the case
    of that id this store keeps (or ``None``).

    Raises:
        pydantic_core.PydanticSerializationError: a value is not JSON data.
    """
    if not reads_back(case, stored):
        return Case.model_validate_json(
            case.model_dump_json(exclude={"contact"}, exclude_unset=True)
        )
    copy = unshared(case)
    if copy.contact is not None or "contact" in copy.__pydantic_fields_set__:
        copy.__dict__["contact"] = None  # a new case, not seen by anyone yet
        copy.__pydantic_fields_set__.discard("contact")
    same_body(case, copy)
    return copy


def kept_event(event: AuditEvent) -> AuditEvent:
    """``event`` as it reads back from a row of its whole JSON: a copy of its own.

    An event the engine sealed lately comes with the JSON data its hash was computed
    over, while its payload and changes still hold those data
    (:func:`~closedloop.engine.audit.hashed_json`): encoding it checked that every value
    is JSON data, and its payload and changes are dicts and lists nobody else changes,
    JSON data as they read back from a row. Such an event is kept with those, without
    the round trip, when its other fields are of the exact types they read back as
    (text, an integer, an instant in UTC). An event changed since it was sealed is kept
    as it is now, as a SQL store writes it.

    Raises:
        pydantic_core.PydanticSerializationError: a value is not JSON data.
    """
    hashed = hashed_json(event)
    if hashed is None or not _plain_fields(event):
        return AuditEvent.model_validate_json(event.model_dump_json())
    fields = event.__dict__.copy()
    fields["payload"], fields["changes"] = hashed["payload"], hashed["changes"]
    return built(type(event), fields, None, set(_EVENT_FIELDS))


_EVENT_FIELDS = frozenset(AuditEvent.model_fields)


def _plain_fields(event: AuditEvent) -> bool:
    """Whether the fields of ``event`` other than its payload and changes read back from
    JSON as they are, and it has no sealed fields."""
    at, role, source, reason = event.at, event.role, event.from_state, event.reason
    return (
        not event.sealed
        and type(at) is datetime
        and at.tzinfo is UTC
        and type(event.seq) is int
        and type(event.case_id) is str
        and type(event.actor) is str
        and type(event.trigger) is str
        and type(event.to_state) is str
        and (role is None or type(role) is str)
        and (source is None or type(source) is str)
        and (reason is None or type(reason) is str)
        and type(event.prev_hash) is str
        and type(event.hash) is str
    )
