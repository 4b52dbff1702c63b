"""The read side's copies of frozen values, made for one caller at a fraction of what
pydantic's own ways cost.

A page of cases shows each case as a copy of its own (a store may hand out the cases
it keeps), and each masked contact as a new value. Made as
:func:`~closedloop.engine.model.unshared` and
:func:`~closedloop.engine.model.assembled` make them, a copy sets each of its four
slots (``__dict__``, the fields given, the extra fields, the private attributes)
through ``object.__setattr__``, a call through a slot wrapper that costs more than the
rest of the copy together: a frozen model refuses plain assignment.

Here a copy is made as an instance of :class:`_Blank`, a model class of the very same
layout whose attributes are set as a plain object's are, then given its class
(``__class__`` assignment, which Python allows between classes of one layout). What
comes out is the value those functions make, field for field, given for given; should
a class ever not share the layout (Python refuses the assignment), the copy is made
their way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from closedloop.engine.model import Case, assembled, thawed, unshared


class _Blank(BaseModel):
    """A model without fields whose attributes are set as a plain object's: the shape
    a copy is made in before it becomes an instance of its class."""

    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__


_new = object.__new__

M = TypeVar("M", bound=BaseModel)


def handed(case: Case, update: Mapping[str, Any]) -> Case:
    """``unshared(case, update)``: a copy of ``case`` holding copies of its mutable
    values (counters, attributes, a pending request's extra fields), the fields of
    ``update`` replaced and counted as given."""
    fields = case.__dict__.copy()
    if fields["extension_request"] is not None or fields["suspension_request"] is not None:
        return unshared(case, update)  # a pending request: its extra fields copied there
    counters = fields["counters"]
    fields["counters"] = dict(counters) if counters else {}
    attributes = fields["attributes"]
    fields["attributes"] = thawed(attributes) if attributes else {}
    fields.update(update)
    made = _new(_Blank)
    made.__dict__ = fields
    extra = case.__pydantic_extra__
    made.__pydantic_extra__ = None if extra is None else dict(extra)
    made.__pydantic_fields_set__ = case.__pydantic_fields_set__ | update.keys()
    made.__pydantic_private__ = None
    try:
        made.__class__ = type(case)  # type: ignore[assignment]
    except TypeError:  # not of the layout: made as unshared makes it
        return unshared(case, update)
    return made  # type: ignore[return-value]


def made(kind: type[M], fields: dict[str, Any]) -> M:
    """``assembled(kind, fields)``: a ``kind`` holding ``fields`` (every field of the
    model, in its order, each of its type; nothing is validated), each counted as
    given. ``fields`` becomes the value's own."""
    value = _new(_Blank)
    value.__dict__ = fields
    value.__pydantic_extra__ = None
    value.__pydantic_fields_set__ = set(fields)
    value.__pydantic_private__ = None
    try:
        value.__class__ = kind  # type: ignore[assignment]
    except TypeError:  # not of the layout: made as assembled makes it
        return assembled(kind, fields)
    return value  # type: ignore[return-value]
