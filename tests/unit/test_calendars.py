"""Working-time calendars: the acceptance scenarios of issue 4 with exact instants."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from closedloop.engine.calendars import NaturalCalendar, WorkingCalendar
from closedloop.engine.calendars.holiday_table import HolidayTable
from closedloop.engine.calendars.sources import ChineseHolidays, CountryHolidays, LayeredHolidays
from closedloop.engine.durations import Duration
from closedloop.engine.ports import WorkCalendar
from closedloop.errors import (
    CalendarNotCovered,
    ClosedLoopError,
    DefinitionError,
    NaiveDatetime,
    ValidationError,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
OFFICE_HOURS = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
# The last year the installed chinesecalendar has data for, read from its own tables.
LAST_DATA_YEAR = max(chinese_calendar.holidays).year


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, zone: ZoneInfo = SHANGHAI
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def end_of(day: date, zone: ZoneInfo = SHANGHAI) -> datetime:
    """24:00 local of ``day``: the due time of a working day counted whole."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)


@pytest.fixture(scope="module")
def china_days() -> WorkingCalendar:
    return WorkingCalendar("cn", timezone="Asia/Shanghai", days=ChineseHolidays())


@pytest.fixture(scope="module")
def china_hours() -> WorkingCalendar:
    return WorkingCalendar(
        "cn-office", timezone="Asia/Shanghai", days=ChineseHolidays(), windows=OFFICE_HOURS
    )


def calendar_every_day_working(zone: str) -> WorkingCalendar:
    """Every day a working day (an empty weekend), 2020-2030, for daylight-saving edges."""
    table = HolidayTable(years=range(2020, 2031), weekend=())
    return WorkingCalendar("every-day", timezone=zone, days=table)


# -- acceptance scenarios 1-4 and the 70 % warning -------------------------------------


@pytest.mark.parametrize("clock", [time(0, 0), time(9, 15), time(23, 59, 59)])
def test_five_working_days_skip_national_day_and_count_the_make_up_saturday(
    china_days: WorkingCalendar, clock: time
) -> None:
    start = datetime.combine(date(2026, 9, 30), clock, tzinfo=SHANGHAI)

    due = china_days.add(start, Duration.parse("5 working days"))

    assert due == end_of(date(2026, 10, 13))


def test_working_days_with_windows_end_at_the_last_window_of_the_day(
    china_hours: WorkingCalendar,
) -> None:
    due = china_hours.add(at(2026, 9, 30, 10), Duration.parse("5 working days"))

    assert due == at(2026, 10, 13, 17, 30)


def test_three_working_days_over_spring_festival_count_the_make_up_saturday(
    china_days: WorkingCalendar,
) -> None:
    due = china_days.add(at(2026, 2, 13, 16), Duration.parse("3 working days"))

    assert due == end_of(date(2026, 2, 25))


def test_four_working_hours_from_friday_afternoon_are_due_monday_morning(
    china_hours: WorkingCalendar,
) -> None:
    due = china_hours.add(at(2026, 11, 20, 16, 30), Duration.parse("4 working hours"))

    assert due == at(2026, 11, 23, 11, 30)


@pytest.mark.parametrize("calendar_name", ["natural", "cn-office"])
def test_natural_two_hours_from_sunday_night_ignore_working_time(
    china_hours: WorkingCalendar, calendar_name: str
) -> None:
    calendar: WorkCalendar = NaturalCalendar() if calendar_name == "natural" else china_hours

    due = calendar.add(at(2026, 11, 22, 23), Duration.parse("2 hours"))

    assert due == at(2026, 11, 23, 1)


def test_seventy_percent_of_ten_working_days_is_seven_working_days(
    china_days: WorkingCalendar,
) -> None:
    start = at(2026, 9, 30, 10)
    limit = Duration.parse("10 working days")

    warning = china_days.add(start, limit.scaled(0.7))

    assert warning == china_days.add(start, Duration.parse("7 working days"))
    assert warning == end_of(date(2026, 10, 15))
    assert warning < china_days.add(start, limit) == end_of(date(2026, 10, 20))


def test_a_fraction_of_a_working_day_is_that_share_of_its_working_time(
    china_days: WorkingCalendar, china_hours: WorkingCalendar
) -> None:
    start = at(2026, 3, 2, 10)  # a Monday of an ordinary week

    assert china_days.add(start, Duration.parse("2.5 working days")) == at(2026, 3, 5, 12)
    # 3h45 of the 7h30 of Thursday's windows: 08:30-12:00, then 15 minutes after 13:30
    assert china_hours.add(start, Duration.parse("2.5 working days")) == at(2026, 3, 5, 13, 45)


def test_zero_working_days_is_the_start(china_days: WorkingCalendar) -> None:
    start = at(2026, 3, 2, 10)

    assert china_days.add(start, Duration.parse("0 working days")) == start


# -- paused time: working_time and advance ---------------------------------------------


@pytest.mark.parametrize(
    ("calendar_name", "three_days"),
    [("cn", timedelta(days=3)), ("cn-office", timedelta(hours=22, minutes=30))],
)
def test_pause_from_monday_to_thursday_moves_the_due_time_by_three_working_days(
    china_days: WorkingCalendar,
    china_hours: WorkingCalendar,
    calendar_name: str,
    three_days: timedelta,
) -> None:
    calendar = china_days if calendar_name == "cn" else china_hours
    start = at(2026, 3, 2, 9)
    due = calendar.add(start, Duration.parse("5 working days"))

    paused = calendar.working_time(at(2026, 3, 2, 10), at(2026, 3, 5, 10))
    moved = calendar.advance(due, paused)

    assert paused == three_days
    assert moved == calendar.add(start, Duration.parse("8 working days"))


def test_working_time_skips_days_off_and_time_outside_windows(
    china_hours: WorkingCalendar,
) -> None:
    # Friday 16:30 to Monday 11:30: one hour on Friday, three on Monday
    measured = china_hours.working_time(at(2026, 11, 20, 16, 30), at(2026, 11, 23, 11, 30))

    assert measured == timedelta(hours=4)
    assert china_hours.working_time(at(2026, 11, 23, 11), at(2026, 11, 20, 16)) == timedelta(0)


def test_advance_ends_at_the_end_of_a_window_not_at_the_next_start(
    china_hours: WorkingCalendar,
) -> None:
    assert china_hours.advance(at(2026, 11, 20, 16, 30), timedelta(hours=1)) == at(
        2026, 11, 20, 17, 30
    )
    assert china_hours.advance(at(2026, 11, 21, 3), timedelta(0)) == at(2026, 11, 21, 3)


# -- coverage: scenario 5, supplied tables, fallback -----------------------------------


def test_the_chinese_source_covers_exactly_the_years_of_the_installed_data() -> None:
    source = ChineseHolidays()

    assert (source.first_year, source.last_year) == (
        min(chinese_calendar.holidays).year,
        LAST_DATA_YEAR,
    )
    assert source.is_working_day(date(LAST_DATA_YEAR + 1, 1, 5)) is None


def test_a_count_past_the_last_year_of_data_is_not_covered(
    china_days: WorkingCalendar,
) -> None:
    with pytest.raises(CalendarNotCovered) as raised:
        china_days.add(at(LAST_DATA_YEAR, 12, 28, 9), Duration.parse("10 working days"))

    assert raised.value.calendar == "cn"
    assert raised.value.day == f"{LAST_DATA_YEAR + 1}-01-01"
    assert str(LAST_DATA_YEAR) in raised.value.covered


def test_a_supplied_table_for_the_next_year_answers_past_the_package(tmp_path: Path) -> None:
    year = LAST_DATA_YEAR + 1
    path = tmp_path / "next-year.yaml"
    path.write_text(
        f"""\
name: official-{year}
years:
  {year}:
    holidays:
      - {year}-01-01..{year}-01-09
    workdays:
      - {year}-01-10..{year}-01-12
""",
        encoding="utf-8",
    )
    days = HolidayTable.from_yaml(path).over(ChineseHolidays())
    calendar = WorkingCalendar("cn", timezone="Asia/Shanghai", days=days)

    due = calendar.add(at(year - 1, 12, 31, 9), Duration.parse("3 working days"))

    assert due == at(year, 1, 13)
    # the package still answers the years it covers
    assert calendar.add(at(2026, 9, 30, 9), Duration.parse("5 working days")) == end_of(
        date(2026, 10, 13)
    )
    with pytest.raises(CalendarNotCovered):
        calendar.add(at(year, 12, 30), Duration.parse("5 working days"))


def test_a_supplied_table_takes_precedence_over_the_package_for_its_years() -> None:
    # a host's table for 2026 that moves the make-up day from Saturday 10-10 to 10-11
    table = HolidayTable(
        name="cn-2026-local",
        years=[2026],
        holidays=[date(2026, 10, day) for day in range(1, 8)],
        workdays=[date(2026, 10, 11)],
    )
    calendar = WorkingCalendar(
        "cn", timezone="Asia/Shanghai", days=LayeredHolidays(table, ChineseHolidays())
    )

    due = calendar.add(at(2026, 9, 30, 9), Duration.parse("3 working days"))

    assert due == end_of(date(2026, 10, 11))


def test_the_weekdays_fallback_answers_uncovered_days_and_reports_them() -> None:
    calendar = WorkingCalendar(
        "cn", timezone="Asia/Shanghai", days=ChineseHolidays(), fallback="weekdays"
    )
    year = LAST_DATA_YEAR + 1
    start = at(year, 1, 1, 9)
    following = [date(year, 1, 2) + timedelta(days=n) for n in range(14)]
    mondays_to_fridays = [day for day in following if day.weekday() < 5]

    due = calendar.add(start, Duration.parse("5 working days"))

    assert due == end_of(mondays_to_fridays[4])
    assert calendar.fallback_days(start, due) == tuple(
        date(year, 1, 1) + timedelta(days=n) for n in range((due.date() - start.date()).days)
    )
    assert calendar.fallback_days(at(2026, 3, 2), at(2026, 3, 9)) == ()


def test_a_count_that_only_touches_an_uncovered_day_does_not_fail(
    china_days: WorkingCalendar,
) -> None:
    last_evening = at(LAST_DATA_YEAR, 12, 31, 23)
    year_end = end_of(date(LAST_DATA_YEAR, 12, 31))
    working = chinese_calendar.is_workday(date(LAST_DATA_YEAR, 12, 31))
    hour = timedelta(hours=1) if working else timedelta(0)

    assert china_days.working_time(last_evening, year_end) == hour
    if working:
        assert china_days.advance(last_evening, hour) == year_end


# -- other holiday sources -------------------------------------------------------------


def test_country_holidays_skip_that_countrys_public_holidays() -> None:
    bavaria = WorkingCalendar(
        "de-by", timezone="Europe/Berlin", days=CountryHolidays("DE", subdiv="BY")
    )

    due = bavaria.add(at(2026, 12, 23, 15, zone=BERLIN), Duration.parse("2 working days"))

    # Thursday 24th counts, Christmas (25th, 26th) and Sunday do not
    assert due == end_of(date(2026, 12, 28), BERLIN)


def test_country_holidays_cover_only_the_years_asked_for() -> None:
    calendar = WorkingCalendar(
        "de", timezone="Europe/Berlin", days=CountryHolidays("DE", years=range(2026, 2027))
    )

    with pytest.raises(CalendarNotCovered) as raised:
        calendar.add(at(2026, 12, 30, zone=BERLIN), Duration.parse("5 working days"))

    assert raised.value.day == "2027-01-01"


def test_a_holiday_table_from_a_mapping_reads_ranges_and_weekend_names() -> None:
    table = HolidayTable.from_dict(
        {
            "name": "gulf",
            "weekend": ["Friday", "sat"],
            "years": {2027: {"holidays": ["2027-03-01..2027-03-03"], "workdays": []}},
        }
    )

    assert table.name == "gulf"
    assert [table.is_working_day(date(2027, 3, d)) for d in range(1, 8)] == [
        False,  # Monday, holiday
        False,
        False,
        True,  # Thursday
        False,  # Friday, weekend
        False,  # Saturday, weekend
        True,  # Sunday
    ]
    assert table.is_working_day(date(2028, 1, 3)) is None


# -- natural calendar ------------------------------------------------------------------


def test_natural_time_counts_every_day_and_keeps_the_start_zone() -> None:
    natural = NaturalCalendar()
    start = at(2026, 10, 1, 9)

    due = natural.add(start, Duration.parse("2 working days"))

    assert due == at(2026, 10, 3, 9)
    assert due.tzinfo is SHANGHAI
    assert natural.working_time(start, due) == timedelta(days=2)
    assert natural.advance(start, timedelta(hours=5)) == at(2026, 10, 1, 14)


def test_natural_time_counts_elapsed_hours_across_daylight_saving() -> None:
    # Europe/Berlin moves from +01:00 to +02:00 at 2026-03-29 02:00
    natural = NaturalCalendar()
    start = at(2026, 3, 29, 0, zone=BERLIN)

    assert natural.add(start, Duration.parse("3 hours")) == at(2026, 3, 29, 4, zone=BERLIN)
    assert natural.working_time(start, at(2026, 3, 30, zone=BERLIN)) == timedelta(hours=23)


# -- daylight saving on a working calendar ---------------------------------------------


def test_a_working_day_counts_24_hours_on_daylight_saving_days() -> None:
    calendar = calendar_every_day_working("Europe/Berlin")

    spring = calendar.working_time(at(2026, 3, 29, zone=BERLIN), at(2026, 3, 30, zone=BERLIN))
    autumn = calendar.working_time(at(2026, 10, 25, zone=BERLIN), at(2026, 10, 26, zone=BERLIN))

    assert spring == autumn == timedelta(hours=24)


def test_a_count_ending_in_the_skipped_hour_ends_when_the_clock_jumps() -> None:
    calendar = calendar_every_day_working("Europe/Berlin")

    due = calendar.advance(at(2026, 3, 29, zone=BERLIN), timedelta(hours=2, minutes=30))

    assert due.astimezone(UTC) == datetime(2026, 3, 29, 1, tzinfo=UTC)  # 03:00 CEST


def test_a_count_in_the_repeated_hour_never_goes_back_in_time() -> None:
    calendar = calendar_every_day_working("Europe/Berlin")
    # 02:30 for the second time on 2026-10-25 (CET, +01:00)
    second_pass = datetime(2026, 10, 25, 1, 30, tzinfo=UTC).astimezone(BERLIN)

    due = calendar.add(second_pass, Duration.parse("10 working minutes"))

    assert due.astimezone(UTC) == datetime(2026, 10, 25, 1, 40, tzinfo=UTC)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["add", "working_time", "advance", "fallback_days"])
@pytest.mark.parametrize("calendar_name", ["natural", "cn"])
def test_naive_datetimes_are_refused(
    china_days: WorkingCalendar, method: str, calendar_name: str
) -> None:
    calendar = NaturalCalendar() if calendar_name == "natural" else china_days
    naive = datetime(2026, 3, 2, 9)
    aware = at(2026, 3, 2, 9)
    calls: dict[str, Callable[[], object]] = {
        "add": lambda: calendar.add(naive, Duration.parse("1 working day")),
        "working_time": lambda: calendar.working_time(aware, naive),
        "advance": lambda: calendar.advance(naive, timedelta(hours=1)),
        "fallback_days": lambda: calendar.fallback_days(naive, aware),
    }

    with pytest.raises(NaiveDatetime):
        calls[method]()


def test_negative_amounts_are_refused(china_days: WorkingCalendar) -> None:
    with pytest.raises(ValidationError, match="negative"):
        china_days.advance(at(2026, 3, 2), timedelta(hours=-1))
    with pytest.raises(ValidationError, match="negative"):
        china_days.add(at(2026, 3, 2), Duration.parse("2 working days").scaled(-1))


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"timezone": "Asia/Shangai"}, "timezone", "not an IANA time zone"),
        ({"windows": ((time(12), time(8, 30)),)}, "windows[0]", "not after it starts"),
        ({"windows": ((time(9), time(9)),)}, "windows[0]", "not after it starts"),
        ({"days": "chinesecalendar"}, "days", "not a holiday source"),
        (
            {"windows": ((time(8), time(12)), (time(11), time(17)))},
            "windows",
            "overlaps",
        ),
        ({"windows": ()}, "windows", "at least one window"),
        ({"fallback": "guess"}, "fallback", "not a policy"),
    ],
)
def test_bad_calendar_options_name_the_problem(
    options: dict[str, object], field: str, message: str
) -> None:
    arguments: dict[str, object] = {"timezone": "Asia/Shanghai", "days": ChineseHolidays()}
    arguments.update(options)

    with pytest.raises(ValidationError, match=message) as raised:
        WorkingCalendar("cn", **arguments)  # type: ignore[arg-type]

    assert field in raised.value.fields


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("years: [2027", "", "not valid YAML"),
        ("- 2027-01-01\n", "", "is a mapping"),
        ("years:\n  2027:\n    holidays: [2027-02-30]\n", "years.2027.holidays[0]", "not a date"),
        (
            "years:\n  2027:\n    holidays: ['2027-02-09..2027-02-01']\n",
            "years.2027.holidays[0]",
            "ends before it starts",
        ),
        ("years:\n  next: {}\n", "years.next", "a year must be a number"),
        ("years:\n  2027:\n    holiday: []\n", "years.2027.holiday", "unknown key"),
        ("year: {2027: {}}\n", "year", "unknown key"),
        ("years: {}\n", "years", "must map each covered year"),
        ("weekend: [caturday]\nyears: {2027: {}}\n", "weekend[0]", "not a weekday name"),
        (
            "years:\n  2027:\n    holidays: [2027-02-14]\n    workdays: [2027-02-14]\n",
            "holidays",
            "also listed as a working day",
        ),
    ],
)
def test_a_malformed_holiday_file_names_the_problem(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    path = tmp_path / "table.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ValidationError, match=message) as raised:
        HolidayTable.from_yaml(path)

    assert field in raised.value.fields
    assert isinstance(raised.value, ClosedLoopError)


@pytest.mark.parametrize(
    ("module", "make", "extra"),
    [
        ("chinese_calendar", ChineseHolidays, "closedloop[cn]"),
        ("holidays", lambda: CountryHolidays("DE"), "closedloop[holidays]"),
    ],
)
def test_a_missing_optional_package_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, module: str, make: Callable[[], object], extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail

    with pytest.raises(DefinitionError, match=re.escape(extra)):
        make()


def test_an_unknown_country_is_refused() -> None:
    with pytest.raises(ValidationError, match="XX"):
        CountryHolidays("XX")


def test_the_holiday_table_in_the_docs_loads(tmp_path: Path) -> None:
    docs = Path(__file__).parents[2] / "docs" / "calendars.md"
    example = docs.read_text(encoding="utf-8").split("```yaml cn-2027.yaml\n")[1].split("```")[0]
    path = tmp_path / "cn-2027.yaml"
    path.write_text(example, encoding="utf-8")

    table = HolidayTable.from_yaml(path)

    assert table.name == "cn-2027"
    assert table.is_working_day(date(2027, 2, 14)) is True  # a Sunday, made a working day
    assert table.is_working_day(date(2027, 2, 8)) is False  # a Monday of Spring Festival


def test_the_natural_calendars_display_zone_must_be_a_real_zone() -> None:
    assert str(NaturalCalendar().timezone) == "UTC"
    with pytest.raises(ValidationError, match="Mars/Base"):
        NaturalCalendar(timezone="Mars/Base")
