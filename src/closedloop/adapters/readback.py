"""Whether a case reads back from its stored JSON as it is, told without encoding it.

A database hands back what it parsed from a row, never the object that was written.
A store that keeps a case it wrote (the in-memory store's rows, the SQL stores' kept
cases) may keep that object itself, without the JSON round trip, only when every part
of it already is what reading its JSON would give: text valid in UTF-8, finite floats,
instants in UTC, durations as written, tuples where the model has them, values of the
exact types the fields validate to, fields not given at their defaults, and dicts with
text keys, lists, text, numbers, booleans and ``None`` in free-form data.
:func:`reads_back` checks that against a plan made once per model from its fields'
annotations; a type it does not know fails the check (the store then takes the round
trip, or builds the case from its text).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from closedloop.engine.durations import Duration
from closedloop.engine.model import Case

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


def reads_back(case: Case, stored: Case | None = None) -> bool:
    """Whether ``case`` (its contact data aside) is what reading its stored JSON gives.

    ``stored`` is a case of the same id that passed this check before: the parts
    ``case`` shares with it (the very same objects) are not checked again, except its
    dicts, which are the only mutable parts of a case.
    """
    try:
        _check_case(case, stored)
    except _Unlike:
        return False
    return True


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
