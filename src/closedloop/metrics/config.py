"""How the rates are defined where practice differs between cities: a frozen config.

The defaults follow common 12345 hotline practice; every choice is spelled out with
its formula in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated

from pydantic import ConfigDict, Field

from closedloop.engine.definition import Workflow
from closedloop.engine.hierarchy import covers
from closedloop.errors import ValidationError
from closedloop.metrics.checked import Checked

Weight = Annotated[float, Field(ge=0.0, le=1.0)]
"""How much one answer counts towards a rate: 1 fully, 0 not at all, between: partly."""

STANDARD_RATINGS: Mapping[str, float] = MappingProxyType(
    {"satisfied": 1.0, "basically_satisfied": 1.0, "dissatisfied": 0.0}
)
"""The standard workflow's satisfaction answers (``rating``), with 基本满意 counting in
full; a city that counts it partly sets its own weight."""

STANDARD_RESOLUTION: Mapping[str, float] = MappingProxyType({"yes": 1.0, "no": 0.0})
"""The standard workflow's answers to "was it resolved?" (``resolved``)."""


class ThreeRates(Checked):
    """The hotline "three rates" (三率): response, resolution and satisfaction.

    Attributes:
        response_triggers: Triggers that count as the first response to a report:
            the lead unit signing for it, a direct answer, or a grid worker's fix on
            the spot.
        callback_triggers: The callbacks (回访): triggers whose payload carries the
            reporter's answers, both the one that closes the case (``confirm``) and
            those that send it back (``reject_result``, ``reopen``). Each callback in
            the period counts once in the resolution and satisfaction rates.
        resolution_field: The field of a callback's payload that says whether the
            matter was resolved (the standard workflow's ``resolved``: yes / no).
        resolution_weights: How much each answer in ``resolution_field`` counts as
            resolved. An answer not listed counts 0.
        unrated_resolution: The weight of a callback without that answer, and of a
            closure that was no callback (closed unconfirmed on expiry); ``None``
            leaves them out of the resolution rate.
        rating_field: The field of a callback's payload holding the satisfaction
            answer (the standard workflow's ``rating``).
        satisfaction_weights: How much each rating counts as satisfied; partial
            weights (``basically_satisfied: 0.8``) are allowed. A rating not listed
            counts 0.
        unrated_satisfaction: The weight of a callback without a rating, and of a
            closure that was no callback; ``None`` (the default) leaves them out of
            the satisfaction rate.
        excluded_states: Cases that end in these states are left out of the response
            rate (they needed no response: not a matter for the platform, duplicates,
            withdrawn reports).
        excluded_categories: Category codes left out of all three rates, with every
            code below them (matters a city does not assess, such as consultations).
        excluded_channels: Intake channels left out of all three rates.

    Raises:
        ValidationError: a setting is unknown or out of its range (a weight outside
            0 to 1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    response_triggers: frozenset[str] = frozenset({"accept", "answer", "resolve_on_spot"})
    callback_triggers: frozenset[str] = frozenset({"confirm", "reject_result", "reopen"})
    resolution_field: str = "resolved"
    resolution_weights: Mapping[str, Weight] = Field(
        default_factory=lambda: dict(STANDARD_RESOLUTION)
    )
    unrated_resolution: Weight | None = 0.0
    rating_field: str = "rating"
    satisfaction_weights: Mapping[str, Weight] = Field(
        default_factory=lambda: dict(STANDARD_RATINGS)
    )
    unrated_satisfaction: Weight | None = None
    excluded_states: frozenset[str] = frozenset({"rejected", "merged", "cancelled"})
    excluded_categories: frozenset[str] = frozenset()
    excluded_channels: frozenset[str] = frozenset()

    def check_fields(self, workflow: Workflow) -> None:
        """Refuse a ``resolution_field`` or ``rating_field`` that none of the
        workflow's callback triggers declares: the rate would silently be empty.

        A workflow that declares none of ``callback_triggers`` has no callbacks to
        count, and is not checked.

        Raises:
            ValidationError: a field no callback trigger declares, with the fields
                they do declare.
        """
        callbacks = [t for t in workflow.transitions if t.name in self.callback_triggers]
        if not callbacks:
            return
        declared = sorted({name for t in callbacks for name in t.fields})
        triggers = ", ".join(sorted({t.name for t in callbacks}))
        problems = [
            (
                setting,
                f"{field!r} is not a field of the callback triggers ({triggers}); "
                f"their fields: {', '.join(declared) or 'none'}",
            )
            for setting, field in (
                ("resolution_field", self.resolution_field),
                ("rating_field", self.rating_field),
            )
            if field not in declared
        ]
        if problems:
            raise ValidationError(problems, subject=f"ThreeRates for workflow {workflow.name!r}")

    def assessed(self, category: str | None, channel: str | None) -> bool:
        """Whether a case of this category and channel counts in the three rates."""
        if channel is not None and channel in self.excluded_channels:
            return False
        return category is None or not any(covers(c, category) for c in self.excluded_categories)


class MetricsConfig(Checked):
    """The choices behind the rates; the defaults are documented in ``docs/metrics.md``.

    Attributes:
        exclude_suspended: Leave cases whose handling is suspended (挂账, approved) at
            the reporting instant out of the denominators of the closure rate and the
            on-time closure rate.
        three_rates: The definitions of the response, resolution and satisfaction
            rates.

    Raises:
        ValidationError: a setting is unknown or of the wrong kind.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exclude_suspended: bool = False
    three_rates: ThreeRates = ThreeRates()


Share = Annotated[float, Field(ge=0.0, le=1.0)]
"""A share of a base, between 0 and 1."""

SYSTEM_TRIGGERS = frozenset(
    {
        "warn",
        "breach",
        "escalate",
        "subtask_warn",
        "subtask_breach",
        "subtask_escalate",
        "purged",
    }
)
"""The events the engine records on its own while nobody acts: warnings, breaches and
escalations of the case's clock and of co-units' subtasks, and purges of personal data."""


class SignalConfig(Checked):
    """The thresholds of the supervision signals (:mod:`closedloop.metrics.signals`).

    A signal flags a subject (a unit, a pair of units, a dispatcher and category) when
    its figure reaches the threshold and, for a share, its base is at least
    ``min_base``. The formulas are in ``docs/metrics.md``.

    Attributes:
        min_base: The smallest base a share is judged on (fewer results, requests or
            decisions say nothing either way).
        hugging_from: Where "the last stretch" of the allowed time begins, as a
            fraction of it (0.9: the last 10 %).
        hugging_share: Deadline hugging: the share of results in the last stretch.
        extensions_per_result: Extension habit: approved extensions per result.
        last_day: A request for an extension made this close to the deadline or
            closer is a late one.
        late_extension_share: Extension habit: the share of requests that were late.
        ping_pong_returns: Returns that make a case bounce.
        ping_pong_cases: Bounced cases a unit returned, or a pair of units bounced
            between them, that flag it.
        unresolved_answers: The answers to ``resolution_field`` that say "not
            resolved".
        resolution_field: The callback's field that says whether it was resolved.
        rework_window: A result sent back within this time after it was submitted is
            hollow (more than zero).
        repeat_window: A new report of the same category at the same place within this
            time after a closure makes the closure hollow (more than zero); ``None``
            checks no repeats
            (where reports are too coarse to place, a later report of the area is no
            repeat).
        repeat_radius_m: The same place: within this many metres when both reports
            carry coordinates; otherwise the same area code.
        hollow_share: Hollow closures: the share of a unit's results.
        misrouting_share: Misrouting: the share of a dispatcher's decisions in a
            category that were overturned.
        silent_working_days: Working days without anybody acting that make an open
            case silent.
        working_weekdays: The weekdays counted as working days (Monday is 0); holidays
            are not known to the metrics.
        system_triggers: The events nobody acted in.
        silent_cases: Silent cases of a unit that flag it.
        not_silent_states: States where a case waits on nobody who could act (the
            reporter's confirmation); a case with a paused clock (information asked,
            suspended) is not silent either. Both still count among the open cases
            of the signal's base.

    Raises:
        ValidationError: a setting is unknown or out of its range (a share outside 0
            to 1, a negative rate, a base below 1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_base: int = Field(default=3, ge=1)
    hugging_from: Share = 0.9
    hugging_share: Share = 0.5
    extensions_per_result: float = Field(default=0.5, ge=0.0)
    last_day: timedelta = timedelta(days=1)
    late_extension_share: Share = 0.5
    ping_pong_returns: int = Field(default=2, ge=2)
    ping_pong_cases: int = Field(default=2, ge=1)
    unresolved_answers: frozenset[str] = frozenset({"no"})
    resolution_field: str = "resolved"
    rework_window: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))
    repeat_window: timedelta | None = Field(default=timedelta(days=30), gt=timedelta(0))
    repeat_radius_m: float = Field(default=100.0, gt=0)
    hollow_share: Share = 0.3
    misrouting_share: Share = 0.3
    silent_working_days: int = Field(default=3, ge=1)
    working_weekdays: frozenset[Annotated[int, Field(ge=0, le=6)]] = frozenset(range(5))
    system_triggers: frozenset[str] = SYSTEM_TRIGGERS
    silent_cases: int = Field(default=1, ge=1)
    not_silent_states: frozenset[str] = frozenset({"awaiting_confirmation"})
