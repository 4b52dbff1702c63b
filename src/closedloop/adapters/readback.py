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
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from closedloop.engine.durations import Duration
from closedloop.engine.model import Case, Deadline

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

    ``stored`` is a case of the same id that passed this check before (or was read
    from its JSON): the parts ``case`` shares with it (the very same objects) are not
    checked again, except its dicts, which are the only mutable parts of a case.
    """
    try:
        _check_case(case, stored)
    except _Unlike:
        return False
    return True


def _check_case(case: Case, stored: Case | None) -> None:
    checks, defaults = _CASE
    given = case.__pydantic_fields_set__
    before = {} if stored is None else stored.__dict__
    for name, value in case.__dict__.items():
        if name == "contact":
            continue
        if name not in given:
            if value is not defaults.get(name, _NONE):
                _check_default(name, value, defaults)
        elif name in _MUTABLE:
            checks[name](value)
        elif value is not (was := before.get(name, _NONE)):
            if name == "deadline" and type(was) is Deadline and type(value) is Deadline:
                _check_clock(value, was)
            else:
                checks[name](value)


def _check_clock(clock: Deadline, was: Deadline) -> None:
    """Check ``clock``, a case's new clock, against ``was``, a clock of the case stored
    before (which passed this check when that case was kept): the parts ``clock`` holds
    in a field given in both that are the very same objects as ``was`` holds there
    (every part of a clock is immutable) are not checked again, the others are. The
    clock ``clock`` resumes is checked so against ``was`` (the clock a case leaves is
    kept as it was, without the one it resumed), the clock beside it against the one
    beside ``was``."""
    if clock.__pydantic_extra__:
        _CLOCK(clock)  # refused there: a clock has no extra fields
        return
    given = clock.__pydantic_fields_set__
    known = was.__dict__
    known_given = was.__pydantic_fields_set__
    checks, defaults = _CLOCK_PLAN
    for name, value in clock.__dict__.items():
        if name not in given:
            if value is not defaults.get(name, _NONE):
                _check_default(name, value, defaults)
            continue
        held = known[name]
        if value is held and name in known_given:
            continue
        if type(value) is Deadline:
            if name == "previous":
                _check_clock(value, was)
                continue
            if type(held) is Deadline:
                _check_clock(value, held)
                continue
        checks[name](value)


def _check_default(name: str, value: Any, defaults: dict[str, Any]) -> None:
    """A field left out of a row reads back as its default."""
    if name not in defaults:
        raise _Unlike
    default = defaults[name]
    if value is not default and (type(value) is not type(default) or value != default):
        raise _Unlike


Check = Callable[[Any], None]
"""Checks that a value reads back as it is (raises :class:`_Unlike` otherwise)."""

Plan = tuple[dict[str, Check], dict[str, Any]]
"""The check of each field of a model, and the default of each field that has one."""


def _model_check(kind: type[BaseModel], plans: dict[type, Plan]) -> Check:
    """The check of a model of ``kind``: each field it was given checked against its
    annotation, each other field its default, and extra fields as free-form data.
    ``plans`` holds the plans made so far (a model may hold one of its own kind)."""
    if kind not in plans:
        checks: dict[str, Check] = {}
        fields = kind.model_fields
        defaults = {
            name: info.get_default(call_default_factory=True)
            for name, info in fields.items()
            if not info.is_required()
        }
        plans[kind] = (checks, defaults)
        checks.update(
            {name: _compiled(_spec(info.annotation), plans) for name, info in fields.items()}
        )
    checks, defaults = plans[kind]

    def check(model: BaseModel) -> None:
        given = model.__pydantic_fields_set__
        for name, value in model.__dict__.items():
            if name in given:
                checks[name](value)
            elif value is not defaults.get(name, _NONE):
                _check_default(name, value, defaults)
        extra = model.__pydantic_extra__
        if extra:
            if not given.issuperset(extra):
                raise _Unlike
            for key, item in extra.items():
                _check_key(key)
                _check_data(item)

    return check


def _compiled(spec: Spec, plans: dict[type, Plan]) -> Check:
    """The check of a value of ``spec``: of one of its exact types, each part checked."""
    if spec is _ANY:
        return _check_data
    parts = {kind: _part(kind, sub, plans) for kind, sub in spec.items()}
    optional = types.NoneType in parts  # ``None`` reads back as it is
    kinds = [kind for kind in parts if kind is not types.NoneType]
    if len(kinds) == 1:  # most fields: one type, or it or ``None``
        (kind,) = kinds
        part = parts[kind]
        if part is _CHECKS.get(kind) and (kind, optional) in _LEAVES:
            return _LEAVES[kind, optional]
        return _one(kind, part, optional)

    def check(value: Any) -> None:
        part = parts.get(type(value), _refused)
        if part is not None:
            part(value)

    return check


def _part(kind: type, spec: Spec | None, plans: dict[type, Plan]) -> Check | None:
    """The check of a value of exactly ``kind`` (``None``: it reads back as it is)."""
    if kind in _CHECKS:
        return _CHECKS[kind]
    if kind is tuple and spec is not None:
        item_check = _compiled(spec, plans)

        def items(value: tuple[Any, ...]) -> None:
            for item in value:
                item_check(item)

        return items
    if kind is dict and spec is not None:
        value_check = _compiled(spec, plans)

        def entries(value: dict[Any, Any]) -> None:
            for key, item in value.items():
                _check_key(key)
                value_check(item)

        return entries
    if issubclass(kind, BaseModel):
        return _model_check(kind, plans)
    return None  # integers, booleans, None and dates read back as they are


def _one(kind: type, part: Check | None, optional: bool) -> Check:
    """The check of a value of exactly ``kind`` (or ``None``, when ``optional``)."""
    if part is None:
        if optional:

            def plain_or_none(value: Any) -> None:
                if value is not None and type(value) is not kind:
                    raise _Unlike

            return plain_or_none

        def plain(value: Any) -> None:
            if type(value) is not kind:
                raise _Unlike

        return plain
    checked = part
    if optional:

        def checked_or_none(value: Any) -> None:
            if value is not None:
                if type(value) is not kind:
                    raise _Unlike
                checked(value)

        return checked_or_none

    def checked_kind(value: Any) -> None:
        if type(value) is not kind:
            raise _Unlike
        checked(value)

    return checked_kind


def _refused(value: Any) -> None:
    raise _Unlike


# The checks of the most common fields, each in one call.


def _a_text(value: Any) -> None:
    if type(value) is not str:
        raise _Unlike
    if not value.isascii():
        _text(value)


def _a_text_or_none(value: Any) -> None:
    if value is not None:
        if type(value) is not str:
            raise _Unlike
        if not value.isascii():
            _text(value)


def _an_instant(value: Any) -> None:
    if type(value) is not datetime or value.tzinfo is not UTC:
        raise _Unlike


def _an_instant_or_none(value: Any) -> None:
    if value is not None and (type(value) is not datetime or value.tzinfo is not UTC):
        raise _Unlike


def _a_float(value: Any) -> None:
    if type(value) is not float or not math.isfinite(value):
        raise _Unlike


def _a_float_or_none(value: Any) -> None:
    if value is not None and (type(value) is not float or not math.isfinite(value)):
        raise _Unlike


def _a_duration(value: Any) -> None:
    if type(value) is not Duration or value.written is None:
        raise _Unlike


def _a_duration_or_none(value: Any) -> None:
    if value is not None and (type(value) is not Duration or value.written is None):
        raise _Unlike


_LEAVES: dict[tuple[type, bool], Check] = {
    (str, False): _a_text,
    (str, True): _a_text_or_none,
    (datetime, False): _an_instant,
    (datetime, True): _an_instant_or_none,
    (float, False): _a_float,
    (float, True): _a_float_or_none,
    (Duration, False): _a_duration,
    (Duration, True): _a_duration_or_none,
}
"""The check of a value of exactly one of these types (or ``None``), as the generic
check of its spec makes it."""


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


def _plans() -> dict[type, Plan]:
    plans: dict[type, Plan] = {}
    _model_check(Case, plans)
    return plans


_PLANS = _plans()
_CASE = _PLANS[Case]
"""The check of each field of a case (and, within them, of the models they hold), made
once from the fields' annotations."""
_CLOCK_PLAN = _PLANS[Deadline]
"""The check of each field of a clock."""
_CLOCK = _model_check(Deadline, _PLANS)
"""The check of a whole clock."""
