"""Settings models whose refusals are closedloop's own ``ValidationError``.

pydantic checks the fields of :class:`~closedloop.metrics.Period` and of the metrics
configs; a refusal reaches the caller as :class:`~closedloop.errors.ValidationError`
(one ``(field, message)`` pair per problem), so that ``except ClosedLoopError`` catches
it as it catches every other error of the library.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from closedloop.errors import ClosedLoopError, ValidationError


class Checked(BaseModel):
    """A pydantic model that refuses bad fields with :class:`ValidationError`."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise refusal(exc, type(self)) from None


def require(value: object, kind: type[object], name: str, hint: str) -> None:
    """Refuse an argument ``name`` that is not a ``kind``.

    Raises:
        ValidationError: ``value`` is not a ``kind``; the message says what to pass
            (``hint``) and what was passed.
    """
    if not isinstance(value, kind):
        raise ValidationError(
            [(name, f"must be {hint}, not {type(value).__name__}")], subject="argument"
        )


def refusal(exc: PydanticValidationError, model: type[BaseModel]) -> ClosedLoopError:
    """``exc`` as closedloop's error: a validator's own closedloop error when it raised
    one (and only it failed), else a :class:`ValidationError` listing each field."""
    subject = model.__name__
    problems = exc.errors(include_url=False)
    if len(problems) == 1:
        raised = problems[0].get("ctx", {}).get("error")
        if isinstance(raised, ClosedLoopError):
            return raised
    errors = []
    for problem in problems:
        field = ".".join(str(part) for part in problem["loc"]) or subject
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden" and len(problem["loc"]) == 1:
            message = f"is not a setting of {subject}; settings: {', '.join(model.model_fields)}"
        errors.append((field, message))
    return ValidationError(errors, subject=subject)
