"""How the rates are defined where practice differs between cities: a frozen config.

The defaults follow common 12345 hotline practice; every choice is spelled out with
its formula in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from closedloop.engine.hierarchy import covers

Weight = Annotated[float, Field(ge=0.0, le=1.0)]
"""How much one answer counts towards a rate: 1 fully, 0 not at all, between: partly."""

STANDARD_RATINGS: Mapping[str, float] = MappingProxyType(
    {"satisfied": 1.0, "basically_satisfied": 1.0, "dissatisfied": 0.0}
)
"""The standard workflow's satisfaction answers (``rating``), with 基本满意 counting in
full; a city that counts it partly sets its own weight."""

STANDARD_RESOLUTION: Mapping[str, float] = MappingProxyType({"yes": 1.0, "no": 0.0})
"""The standard workflow's answers to "was it resolved?" (``resolved``)."""


class ThreeRates(BaseModel):
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

    def assessed(self, category: str | None, channel: str | None) -> bool:
        """Whether a case of this category and channel counts in the three rates."""
        if channel is not None and channel in self.excluded_channels:
            return False
        return category is None or not any(covers(c, category) for c in self.excluded_categories)


class MetricsConfig(BaseModel):
    """The choices behind the rates; the defaults are documented in ``docs/metrics.md``.

    Attributes:
        exclude_suspended: Leave cases whose handling is suspended (挂账, approved) at
            the reporting instant out of the denominators of the closure rate and the
            on-time closure rate.
        three_rates: The definitions of the response, resolution and satisfaction
            rates.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exclude_suspended: bool = False
    three_rates: ThreeRates = ThreeRates()
