"""The configurable definitions (three rates, exclusions), grouping, periods and as_of."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from closedloop import ClosedLoopError, ValidationError, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import CaseStore
from closedloop.metrics import MetricsConfig, Period, SignalConfig, ThreeRates, compute
from tests.unit.test_metrics_published import Stream
from tests.unit.test_metrics_units import WEEK, run_week


@pytest.fixture(scope="module")
def week_store() -> CaseStore:
    store = InMemoryStore()
    run_week(store)
    return store


def rates(**three_rates: object) -> MetricsConfig:
    return MetricsConfig(three_rates=ThreeRates.model_validate(three_rates))


def test_partial_weight_for_basically_satisfied(week_store: CaseStore) -> None:
    config = rates(satisfaction_weights={"satisfied": 1, "basically_satisfied": 0.8})
    water = compute(week_store, WEEK, by="unit", config=config).row("water")
    # Water's four callbacks: C1 satisfied 1 + C2 basically 0.8 + C5 twice dissatisfied
    # (not listed: 0), over 4.
    assert water.satisfaction_rate == pytest.approx(1.8 / 4)
    assert water.resolution_rate == 3 / 4  # its own weights are unchanged


def test_excluded_categories_and_channels_leave_the_three_rates(week_store: CaseStore) -> None:
    by_category = compute(week_store, WEEK, by="unit", config=rates(excluded_categories={"01"}))
    water = by_category.row("water")  # C1 C2 (01.01) and C5 (01.02) all lie under 01
    assert (water.response_base, water.response_rate, water.satisfaction_rate) == (0, None, None)
    assert water.due == 3  # the other metrics still count them
    by_channel = compute(week_store, WEEK, config=rates(excluded_channels={"app"})).total
    # C4, C5 and C6 came by app: response over C1 C2 C3; satisfaction over the
    # callbacks of C1 C2 C8.
    assert (by_channel.response_base, by_channel.rated) == (3, 3)


def test_closures_without_a_rating() -> None:
    start = WEEK.start + timedelta(hours=9)
    unconfirmed = Stream("U1", start)
    unconfirmed.add(start, "answer", "awaiting_confirmation")
    unconfirmed.add(start + timedelta(days=3), "close_unconfirmed", "closed", {"reason": "r"})
    rated = Stream("R1", start)
    rated.add(start, "answer", "awaiting_confirmation")
    answers = {"resolved": "yes", "rating": "satisfied"}
    rated.add(start + timedelta(days=1), "confirm", "closed", answers)
    streams = [unconfirmed.events, rated.events]
    # Defaults: no answer counts as not resolved, and is left out of satisfaction.
    default = compute(streams, WEEK).total
    assert (default.resolution_base, default.resolution_rate) == (2, 0.5)
    assert (default.rated, default.satisfaction_rate) == (1, 1.0)
    # A city that counts silence as satisfied ("默认满意"), and leaves it out of resolution.
    silent = rates(unrated_satisfaction=1.0, unrated_resolution=None)
    total = compute(streams, WEEK, config=silent).total
    assert (total.rated, total.satisfaction_rate) == (2, 1.0)
    assert (total.resolution_base, total.resolution_rate) == (1, 1.0)


def test_weights_must_lie_between_zero_and_one() -> None:
    with pytest.raises(ValidationError) as weight:
        ThreeRates(satisfaction_weights={"satisfied": 1.5})
    assert weight.value.errors == (
        ("satisfaction_weights.satisfied", "Input should be less than or equal to 1"),
    )
    with pytest.raises(ValidationError) as unknown:
        MetricsConfig(exclude_suspended=True, unknown=1)  # type: ignore[call-arg]
    assert unknown.value.errors == (
        ("unknown", "is not a setting of MetricsConfig; settings: exclude_suspended, three_rates"),
    )


def test_a_negative_signal_threshold_is_refused_naming_its_range() -> None:
    with pytest.raises(ValidationError) as refused:
        SignalConfig(hugging_share=-1, min_base=0)
    assert refused.value.errors == (
        ("min_base", "Input should be greater than or equal to 1"),
        ("hugging_share", "Input should be greater than or equal to 0"),
    )


def test_a_window_of_no_time_or_less_is_refused_as_it_would_check_nothing() -> None:
    with pytest.raises(ValidationError) as refused:
        SignalConfig(rework_window=timedelta(days=-1), repeat_window=timedelta(0))
    assert refused.value.errors == (
        ("rework_window", "Input should be greater than 0 seconds"),
        ("repeat_window", "Input should be greater than 0 seconds"),
    )


def test_a_rating_field_no_callback_declares_is_refused_with_the_fields_there_are(
    week_store: CaseStore,
) -> None:
    typo = MetricsConfig(three_rates=ThreeRates(rating_field="ratng"))
    with pytest.raises(ValidationError) as refused:
        compute(week_store, WEEK, config=typo, workflow=workflows.standard())
    ((field, message),) = refused.value.errors
    assert field == "rating_field"
    assert message.startswith(
        "'ratng' is not a field of the callback triggers (confirm, reject_result, reopen); "
        "their fields: "
    )
    assert "rating" in message.rpartition(": ")[2].split(", ")
    # The standard definitions fit the standard workflow.
    checked = compute(week_store, WEEK, workflow=workflows.standard())
    assert checked.total == compute(week_store, WEEK).total


def test_every_refused_argument_of_compute_is_a_closedloop_error(week_store: CaseStore) -> None:
    with pytest.raises(ValidationError) as by:
        compute(week_store, WEEK, by="units")  # type: ignore[arg-type]
    assert by.value.errors == (
        ("by", "cannot group by 'units'; choose one of unit, category, area, urgency, channel"),
    )
    with pytest.raises(ValidationError) as depth:
        compute(week_store, WEEK, by="area", depth=0)
    assert depth.value.errors == (
        ("depth", "must be a whole number of code segments, at least 1, not 0"),
    )
    with pytest.raises(ValidationError) as source:
        compute(None, WEEK)  # type: ignore[arg-type]
    assert source.value.errors == (
        ("source", "must be a CaseStore or an iterable of each case's events, not NoneType"),
    )
    with pytest.raises(ValidationError) as period:
        compute(week_store, None)  # type: ignore[arg-type]
    assert period.value.errors == (
        ("period", "must be a Period (Period.week or Period.days), not NoneType"),
    )


def test_grouping_by_area_and_category_at_a_depth(week_store: CaseStore) -> None:
    streets = compute(week_store, WEEK, by="area", depth=2)
    # Areas: C1 C2 C3 C5 in D1.S1.C1.G02, C8 in D1.S1.C1.G01, C4 in D1.S2.C1.G01; C6 C7 none.
    # C8 was reported the week before but falls due in this one: D1.S1 has 4 reports, 5 due.
    assert [(r.group, r.reported, r.due) for r in streets.rows] == [
        ("(none)", 2, 0), ("D1.S1", 4, 5), ("D1.S2", 1, 1),
    ]  # fmt: skip
    kinds = compute(week_store, WEEK, by="category", depth=1)
    # C1 C2 C3 (01.01) C5 (01.02); C8 (02.01); C4 (03.01); C6 C7 never classified.
    assert [(r.group, r.due) for r in kinds.rows] == [
        ("(none)", 0),
        ("01", 4),
        ("02", 1),
        ("03", 1),
    ]
    with pytest.raises(ValueError, match="cannot group by"):
        compute(week_store, WEEK, by="colour")  # type: ignore[arg-type]


def test_as_of_within_the_period_counts_the_week_so_far(week_store: CaseStore) -> None:
    wednesday = datetime(2026, 1, 7, tzinfo=UTC)
    so_far = compute(week_store, WEEK, as_of=wednesday)
    # By Wednesday 00:00: seven reports; closed C6 (Mon) and C8 (Tue); nothing due yet.
    assert (so_far.total.reported, so_far.total.closures, so_far.total.due) == (7, 2, 0)
    assert so_far.total.closure_rate is None
    assert so_far.as_of == wednesday
    before = compute(week_store, WEEK, as_of=WEEK.start - timedelta(days=1))
    assert before.total.reported == 0


def test_periods_are_half_open_and_zoned() -> None:
    week = Period.week(date(2026, 3, 2), timezone="Asia/Shanghai")
    assert week.start == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert week.end - week.start == timedelta(days=7)
    assert week.start in week
    assert week.end not in week
    assert len(list(week.local_days())) == 7
    with pytest.raises(ValidationError, match="a period must end after it starts"):
        Period(start=week.end, end=week.start)
    with pytest.raises(ValidationError) as naive:
        Period(start=datetime(2026, 3, 2), end=datetime(2026, 3, 9))
    assert naive.value.fields == ("start", "end")
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        Period.week(date(2026, 3, 2), timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        Period(start=week.start, end=week.end, timezone="Mars/Olympus")


def test_a_misspelt_zone_is_refused_with_the_closest_names() -> None:
    with pytest.raises(ClosedLoopError) as refused:
        Period.week(date(2026, 3, 2), timezone="Asia/Shangai")
    assert isinstance(refused.value, ValidationError)
    ((field, message),) = refused.value.errors
    assert field == "timezone"
    assert message.startswith(
        "unknown time zone 'Asia/Shangai'; use an IANA zone name (closest: Asia/Shanghai"
    )


def test_reversed_days_are_refused_as_reversed() -> None:
    with pytest.raises(ValidationError) as refused:
        Period.days(date(2026, 3, 8), date(2026, 3, 2))
    assert refused.value.errors == (
        (
            "last",
            "2026-03-02 is before first 2026-03-08: the range is reversed; "
            "write the earlier day first",
        ),
    )
    assert "pydantic" not in str(refused.value)


def test_the_example_in_the_metrics_docs_runs() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/metrics.md", "exec"), {"__name__": "docs"})
