"""Durations as workflows write them: ``2 hours``, ``4 working hours``, ``5 working days``.

A duration is either natural (elapsed wall time, whatever the calendar says) or
working (counted on a :class:`~closedloop.engine.ports.WorkCalendar`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from closedloop.errors import ValidationError

Unit = Literal["minutes", "hours", "days"]

_UNITS: dict[str, Unit] = {
    "minute": "minutes",
    "minutes": "minutes",
    "min": "minutes",
    "hour": "hours",
    "hours": "hours",
    "h": "hours",
    "day": "days",
    "days": "days",
    "d": "days",
}
_PATTERN = re.compile(
    r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<working>working\s+)?(?P<unit>[a-z]+)\s*$"
)
_SECONDS: dict[Unit, int] = {"minutes": 60, "hours": 3600, "days": 86400}


class _Computed:
    """Room for what a duration computes once: not fields, no part of its value."""

    __slots__ = ("_hash", "_natural")
    _hash: int
    _natural: timedelta


@dataclass(frozen=True, slots=True)
class Duration(_Computed):
    """An amount of time in one unit, natural or counted in working time.

    Args:
        amount: How many units; may be fractional (``0.7`` of a limit).
        unit: ``minutes``, ``hours`` or ``days``.
        working: Counted on a working calendar rather than in natural time.
    """

    amount: Fraction
    unit: Unit
    working: bool = False
    written: str | None = field(default=None, compare=False, repr=False)
    """The text it was parsed from, kept so that it is stored and shown as written."""

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``"2 hours"``, ``"4 working hours"``, ``"5 working days"``.

        Raises:
            ValidationError: the text is not a duration; the message lists the units.
        """
        if isinstance(text, str):
            return _parsed(text)  # deadlines parse the same few texts on every command
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> Duration:
        match = _PATTERN.match(text.lower()) if isinstance(text, str) else None
        unit = _UNITS.get(match["unit"]) if match else None
        if match is None or unit is None:
            raise ValidationError(
                [
                    (
                        "duration",
                        f"{text!r} is not a duration; write '<number> [working] "
                        "<minutes|hours|days>', for example '5 working days'",
                    )
                ],
                subject="duration",
            )
        return cls(Fraction(match["amount"]), unit, working=bool(match["working"]), written=text)

    def scaled(self, factor: Fraction | float) -> Duration:
        """This duration multiplied by ``factor`` (for warning fractions)."""
        return Duration(self.amount * Fraction(factor), self.unit, self.working)

    def plus(self, other: Duration) -> Duration:
        """The sum of two durations of the same kind (for approved extensions).

        Raises:
            ValidationError: the two differ in unit or in being working time.
        """
        if (other.unit, other.working) != (self.unit, self.working):
            raise ValidationError(
                [("duration", f"cannot add {other} to {self}: units differ")],
                subject="duration",
            )
        return Duration(self.amount + other.amount, self.unit, self.working)

    def as_timedelta(self) -> timedelta:
        """The natural length, counting a day as 24 hours."""
        # Kept once computed: a clock counts the same few durations on every command,
        # and computing the length from the fraction is costly.
        try:
            return self._natural
        except AttributeError:
            length = _length(self.amount, self.unit)
            object.__setattr__(self, "_natural", length)
            return length

    def __hash__(self) -> int:
        # As the dataclass hashes it (its compared fields), kept once computed.
        try:
            return self._hash
        except AttributeError:
            found = hash((self.amount, self.unit, self.working))
            object.__setattr__(self, "_hash", found)
            return found

    def as_written(self) -> str:
        """The text it was parsed from, or its normal form when it was computed."""
        return self.written if self.written is not None else str(self)

    def __str__(self) -> str:
        amount = (
            str(self.amount.numerator)
            if self.amount.denominator == 1
            else f"{float(self.amount):g}"
        )
        return f"{amount} {'working ' if self.working else ''}{self.unit}"


@lru_cache(maxsize=1024)
def _parsed(text: str) -> Duration:
    return Duration._parse(text)


@lru_cache(maxsize=1024)
def _length(amount: Fraction, unit: Unit) -> timedelta:
    return timedelta(seconds=float(amount * _SECONDS[unit]))


def _duration_value(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration text, got {type(value).__name__}")
    try:
        return Duration.parse(value)
    except ValidationError as exc:
        raise ValueError(exc.errors[0][1]) from None


DurationText = Annotated[
    Duration,
    PlainValidator(_duration_value),
    PlainSerializer(Duration.as_written, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["5 working days"]}),
]
"""A :class:`Duration` field of a pydantic model, read from and written as its text."""


def _natural_duration_value(value: object) -> Duration:
    if isinstance(value, str) and not isinstance(_parsed_or_none(value), Duration):
        raise ValueError(
            f"{value!r} is not a duration; write '<number> <minutes|hours|days>' in "
            "natural time, for example '180 days'"
        )
    return _duration_value(value)


def _parsed_or_none(text: str) -> Duration | None:
    try:
        return Duration.parse(text)
    except ValidationError:
        return None


NaturalDurationText = Annotated[
    Duration,
    PlainValidator(_natural_duration_value),
    PlainSerializer(Duration.as_written, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["180 days"]}),
]
"""A :class:`DurationText` field meant for natural time (a retention rule's ``after``):
a text that is no duration is refused with a natural-time example. (Working time that
parses is refused by the workflow's validation, with its own message.)"""
