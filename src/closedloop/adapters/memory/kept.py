"""The cases and events the in-memory store keeps: each as it reads back from its JSON row.

A database hands back what it parsed from a row, never the object that was written,
and refuses a value that is not JSON data. The in-memory store keeps a case the same
way without encoding it, when it can tell that every part of it already reads back from
JSON as it is: the parts it shares with the case stored before (checked when that one
was kept; cases are immutable but for their dicts) and the others, checked here (text
valid in UTF-8, finite floats, instants in UTC, durations as written, tuples where the
model has them, and dicts with text keys, lists, text, numbers, booleans and ``None`` in
free-form data). Such a case is kept as a copy of its own dicts and lists
(:func:`~closedloop.engine.model.unshared`); any other takes the JSON round trip, which
gives it back normalised (a tuple in its attributes as a list, an instant in UTC) or
fails on what is not JSON data.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from closedloop.engine.audit import hashed_json, same_body
from closedloop.engine.durations import Duration
from closedloop.engine.model import AuditEvent, Case, replaced, unshared

Spec = dict[type, Any]
"""The exact types a field may hold to read back as it is, each with the spec of its
parts (a tuple's items, a dict's values) or ``None``."""

_ANY: Spec = {}
"""The spec of free-form JSON data (told apart by identity)."""

_MUTABLE = frozenset({"counters", "attributes", "extension_request", "suspension_request"})
"""The fields of a case that hold dicts (its own or a request's extra fields): checked
whenever it is kept, whatever the case stored before held."""


_NONE = object()
"""Held by no field."""


class _Unlike(Exception):
    """A part of a value would not read back from JSON as it is."""


def kept_case(case: Case, stored: Case | None) -> Case:
    """``case`` as it reads back from a row of its JSON without contact data and with
    only what was given, sharing no dict or list with ``case``; ``stored`` is the case
    of that id this store keeps (or ``None``).

    Raises:
        pydantic_core.PydanticSerializationError: a value is not JSON data.
    """
    try:
        _check_case(case, stored)
    except _Unlike:
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
    over: encoding it checked that every value is JSON data, and its payload and
    changes are new dicts and lists, JSON data as they read back from a row. Such an
    event is kept with those, without the round trip, when its other fields are of the
    exact types they read back as (text, an integer, an instant in UTC) and its payload
    and changes still equal those data.

    Raises:
        pydantic_core.PydanticSerializationError: a value is not JSON data.
    """
    hashed = hashed_json(event)
    if (
        hashed is None
        or not _plain_fields(event)
        or event.payload != hashed["payload"]
        or event.changes != hashed["changes"]  # changed since it was sealed, or tuples
    ):
        return AuditEvent.model_validate_json(event.model_dump_json())
    payload, changes = hashed["payload"], hashed["changes"]
    kept = replaced(event, {"payload": payload, "changes": changes})
    object.__setattr__(kept, "__pydantic_fields_set__", set(_EVENT_FIELDS))
    return kept


_EVENT_FIELDS = frozenset(AuditEvent.model_fields)


def _plain_fields(event: AuditEvent) -> bool:
    """Whether the fields of ``event`` other than its payload and changes read back from
    JSON as they are, and it has no sealed fields."""
    at = event.at
    return (
        not event.sealed
        and type(at) is datetime
        and at.tzinfo is UTC
        and type(event.seq) is int
        and all(
            type(text) is str
            for text in (event.case_id, event.actor, event.trigger, event.to_state)
        )
        and all(
            text is None or type(text) is str
            for text in (event.role, event.from_state, event.reason)
        )
        and type(event.prev_hash) is str
        and type(event.hash) is str
    )


def _check_case(case: Case, stored: Case | None) -> None:
    specs, defaults = _plan(Case)
    given = case.__pydantic_fields_set__
    before = {} if stored is None else stored.__dict__
    for name, value in case.__dict__.items():
        if name == "contact":
            continue
        if name not in given:
            _check_default(name, value, defaults)
        elif name in _MUTABLE or value is not before.get(name, _NONE):
            _check(value, specs[name], True)


def _check_default(name: str, value: Any, defaults: dict[str, Any]) -> None:
    """A field left out of a row reads back as its default."""
    if name not in defaults:
        raise _Unlike
    default = defaults[name]
    if value is not default and (type(value) is not type(default) or value != default):
        raise _Unlike


def _check_model(model: BaseModel, given_only: bool) -> None:
    specs, defaults = _plan(type(model))
    given = model.__pydantic_fields_set__
    for name, value in model.__dict__.items():
        if given_only and name not in given:
            _check_default(name, value, defaults)
        else:
            _check(value, specs[name], given_only)
    extra = model.__pydantic_extra__
    if extra:
        if given_only and not given.issuperset(extra):
            raise _Unlike
        for key, item in extra.items():
            _check_key(key)
            _check_data(item)


def _check(value: Any, spec: Spec, given_only: bool) -> None:
    if spec is _ANY:
        _check_data(value)
        return
    kind = type(value)
    if kind not in spec:
        raise _Unlike
    check = _CHECKS.get(kind)
    if check is not None:
        check(value)
    elif kind is tuple:
        for item in value:
            _check(item, spec[tuple], given_only)
    elif kind is dict:
        for key, item in value.items():
            _check_key(key)
            _check(item, spec[dict], given_only)
    elif issubclass(kind, BaseModel):
        _check_model(value, given_only)
    # integers, booleans, None and dates read back as they are


def _check_data(value: Any) -> None:
    """Check free-form JSON data: dicts with text keys, lists, text, booleans, integers,
    finite floats and ``None``."""
    kind = type(value)
    if kind is str:
        _text(value)
    elif kind is dict:
        for key, item in value.items():
            _check_key(key)
            _check_data(item)
    elif kind is list:
        for item in value:
            _check_data(item)
    elif kind is float:
        _finite(value)
    elif not (kind is int or kind is bool or value is None):
        raise _Unlike


def _check_key(key: object) -> None:
    if type(key) is not str:
        raise _Unlike
    _text(key)


def _text(value: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Unlike from None


def _finite(value: float) -> None:
    if not math.isfinite(value):
        raise _Unlike


def _in_utc(value: datetime) -> None:
    if value.tzinfo is not UTC:
        raise _Unlike


def _as_written(value: Duration) -> None:
    if value.written is None:
        raise _Unlike  # a computed duration reads back from its text as a parsed one


_CHECKS: dict[type, Callable[[Any], None]] = {
    str: _text,
    float: _finite,
    datetime: _in_utc,
    Duration: _as_written,
}


@cache
def _plan(kind: type[BaseModel]) -> tuple[dict[str, Spec], dict[str, Any]]:
    """The spec of each field of ``kind``, and the default of each field that has one."""
    fields = kind.model_fields
    specs = {name: _spec(info.annotation) for name, info in fields.items()}
    defaults = {
        name: info.get_default(call_default_factory=True)
        for name, info in fields.items()
        if not info.is_required()
    }
    return specs, defaults


def _spec(annotation: Any) -> Spec:
    if annotation is Any:
        return _ANY
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _spec(args[0])
    if origin is Union or origin is types.UnionType:
        parts = [_spec(arg) for arg in args]
        if any(part is _ANY for part in parts):
            return _ANY
        return {kind: sub for part in parts for kind, sub in part.items()}
    if origin is Literal:
        return {type(arg): None for arg in args}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {tuple: _spec(args[0])}
    if origin is dict and args[0] is str:
        return {dict: _spec(args[1])}
    if annotation is None or annotation is types.NoneType:
        return {types.NoneType: None}
    if origin is None and isinstance(annotation, type) and annotation is not object:
        return {annotation: None}
    return {}  # anything else takes the round trip
