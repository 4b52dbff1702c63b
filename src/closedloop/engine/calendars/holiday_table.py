"""Holiday tables a host supplies: holidays and make-up working days as data.

A table is how a host adds what no package knows yet, typically next year's official
schedule once it is published. In YAML::

    name: cn-2027                 # optional; defaults to the file name
    weekend: [saturday, sunday]   # optional; this is the default
    years:
      2027:                       # the table covers every day of 2027
        holidays:                 # days off; single days or ranges a..b (both included)
          - 2027-01-01
          - 2027-02-05..2027-02-13
        workdays:                 # make-up working days (调休上班)
          - 2027-02-14

Put the table in front of a package source with ``table.over(ChineseHolidays())``: for
the years it covers (and any day it lists) the table answers; the package answers the
rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from closedloop.engine.calendars.sources import HolidaySource, LayeredHolidays
from closedloop.engine.loading import NotYAML, parse_yaml
from closedloop.errors import ValidationError

SATURDAY_SUNDAY: frozenset[int] = frozenset({5, 6})
"""The usual weekend, as :meth:`datetime.date.weekday` numbers (Monday is 0)."""

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TOP_KEYS = frozenset({"name", "weekend", "years"})
_YEAR_KEYS = frozenset({"holidays", "workdays"})

_Problems = list[tuple[str, str]]


class HolidayTable:
    """Working days given as data: covered years, holidays and make-up working days.

    A day listed in ``workdays`` is a working day and a day listed in ``holidays`` is
    not, whatever year they are in (an official schedule for one year may name days
    of the year before). Any other day of a year in ``years`` is a working day unless
    its weekday is in ``weekend``. Days of other years are not covered.

    Args:
        name: A short name for errors and records.
        years: The years the table covers completely.
        holidays: Days off that would otherwise be working days.
        workdays: Make-up working days (调休上班) that would otherwise be days off.
        weekend: Weekday numbers (Monday is 0) that are days off; Saturday and Sunday
            by default.

    Raises:
        ValidationError: a day is both a holiday and a working day, or a weekday
            number is not 0-6.
    """

    def __init__(
        self,
        *,
        name: str = "table",
        years: Iterable[int],
        holidays: Iterable[date] = (),
        workdays: Iterable[date] = (),
        weekend: Iterable[int] = SATURDAY_SUNDAY,
    ) -> None:
        self._name = name
        self._years = frozenset(years)
        self._holidays = frozenset(holidays)
        self._workdays = frozenset(workdays)
        self._weekend = frozenset(weekend)
        problems = [
            ("holidays", f"{day.isoformat()} is also listed as a working day")
            for day in sorted(self._holidays & self._workdays)
        ]
        problems += [
            ("weekend", f"{number!r} is not a weekday number 0-6 (Monday is 0)")
            for number in sorted(self._weekend)
            if number not in range(7)
        ]
        if problems:
            raise ValidationError(problems, subject=f"holiday table {name!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "table") -> HolidayTable:
        """Build a table from parsed YAML or JSON (the shape in the module docstring).

        Args:
            data: The mapping with ``years`` and optional ``name`` and ``weekend``.
            name: The name to use when ``data`` has none.

        Raises:
            ValidationError: the data does not have that shape; ``errors`` lists every
                problem with its path.
        """
        if not isinstance(data, Mapping):
            raise ValidationError([("", "a holiday table is a mapping")], subject="holiday table")
        problems: _Problems = [
            (str(key), f"unknown key; expected {', '.join(sorted(_TOP_KEYS))}")
            for key in data
            if key not in _TOP_KEYS
        ]
        table_name = data.get("name", name)
        if not isinstance(table_name, str) or not table_name:
            problems.append(("name", "must be a non-empty string"))
            table_name = name
        weekend = _parse_weekend(data.get("weekend", list(_WEEKDAYS[5:])), problems)
        years, holidays, workdays = _parse_years(data.get("years"), problems)
        if problems:
            raise ValidationError(problems, subject=f"holiday table {table_name!r}")
        return cls(
            name=table_name, years=years, holidays=holidays, workdays=workdays, weekend=weekend
        )

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> HolidayTable:
        """Load a table from a YAML file the host names; its name defaults to the file's.

        Raises:
            OSError: the file cannot be read.
            ValidationError: the file is not YAML or not a holiday table.
        """
        file = Path(path)
        try:
            data = parse_yaml(
                file.read_text(encoding="utf-8"), dates_as_text=True, source=str(file)
            )
        except NotYAML as exc:
            raise ValidationError(
                [("", f"not valid YAML: {exc}")], subject=f"holiday table {str(file)!r}"
            ) from exc
        return cls.from_dict(data, name=file.stem)

    @property
    def name(self) -> str:
        """The table's name."""
        return self._name

    @property
    def years(self) -> frozenset[int]:
        """The years covered completely."""
        return self._years

    @property
    def coverage(self) -> str:
        """The covered years."""
        shown = ", ".join(str(year) for year in sorted(self._years)) or "no whole year"
        return f"{shown} ({self._name})"

    def is_working_day(self, day: date) -> bool | None:
        """See :meth:`~closedloop.engine.calendars.sources.HolidaySource.is_working_day`."""
        if day in self._workdays:
            return True
        if day in self._holidays:
            return False
        if day.year in self._years:
            return day.weekday() not in self._weekend
        return None

    def over(self, *sources: HolidaySource) -> LayeredHolidays:
        """This table in front of ``sources``: where it has data, it answers."""
        return LayeredHolidays(self, *sources)


def _parse_weekend(value: Any, problems: _Problems) -> frozenset[int]:
    if not isinstance(value, list):
        problems.append(("weekend", "must be a list of weekday names"))
        return SATURDAY_SUNDAY
    numbers: set[int] = set()
    for index, item in enumerate(value):
        word = item.lower() if isinstance(item, str) else ""
        matches = [n for n, full in enumerate(_WEEKDAYS) if word in (full, full[:3])]
        if matches:
            numbers.add(matches[0])
        else:
            problems.append((f"weekend[{index}]", f"{item!r} is not a weekday name"))
    return frozenset(numbers)


def _parse_years(value: Any, problems: _Problems) -> tuple[set[int], set[date], set[date]]:
    years: set[int] = set()
    holidays: set[date] = set()
    workdays: set[date] = set()
    if not isinstance(value, Mapping) or not value:
        problems.append(("years", "must map each covered year to its holidays and workdays"))
        return years, holidays, workdays
    for year, block in value.items():
        path = f"years.{year}"
        if not isinstance(year, int) or isinstance(year, bool) or not 1 <= year <= 9998:
            problems.append((path, "a year must be a number such as 2027"))
            continue
        years.add(year)
        if block is None:
            continue
        if not isinstance(block, Mapping):
            problems.append((path, "must be a mapping with holidays and workdays"))
            continue
        problems.extend(
            (f"{path}.{key}", "unknown key; expected holidays, workdays")
            for key in block
            if key not in _YEAR_KEYS
        )
        holidays.update(_parse_days(block.get("holidays"), f"{path}.holidays", problems))
        workdays.update(_parse_days(block.get("workdays"), f"{path}.workdays", problems))
    return years, holidays, workdays


def _parse_days(value: Any, path: str, problems: _Problems) -> list[date]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append((path, "must be a list of dates or ranges a..b"))
        return []
    days: list[date] = []
    for index, item in enumerate(value):
        parsed = _parse_day_or_range(item)
        if isinstance(parsed, str):
            problems.append((f"{path}[{index}]", parsed))
        else:
            days.extend(parsed)
    return days


def _parse_day_or_range(item: Any) -> list[date] | str:
    """The days ``item`` names, or a message saying why it names none."""
    if isinstance(item, date) and not isinstance(item, datetime):
        return [item]
    if not isinstance(item, str):
        return f"{item!r} is not a date (YYYY-MM-DD) or a range YYYY-MM-DD..YYYY-MM-DD"
    first_text, _, last_text = item.partition("..")
    try:
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if last_text else first
    except ValueError:
        return f"{item!r} is not a date (YYYY-MM-DD) or a range YYYY-MM-DD..YYYY-MM-DD"
    if last < first:
        return f"{item!r} ends before it starts"
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
