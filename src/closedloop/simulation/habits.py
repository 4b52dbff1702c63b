"""How the people of a simulated district behave: rates, shares and waiting times.

Every number the simulation draws from lives here, in one frozen :class:`Habits`, so a
reader can see what "realistic" was taken to mean and a host can try other habits.
The defaults describe a small urban district of about 30,000 residents: some 16 reports
a day (citizens on the hotline and apps around the clock, grid workers on patrol in
office hours), most handled within a few working days, a few returned, extended,
late or reworked.

Waiting times are log-normal: ``(median, spread)`` with ``spread`` the standard
deviation of the logarithm, so about one draw in six exceeds ``median * e**spread``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

Wait = tuple[float, float]
"""A log-normal waiting time: (median, spread of its logarithm)."""

_CITIZENS_PER_HOUR = (
    0.1, 0.05, 0.02, 0.02, 0.02, 0.08, 0.2, 0.45, 0.8, 1.0, 1.0, 0.85,
    0.6, 0.65, 0.85, 0.9, 0.85, 0.75, 0.65, 0.65, 0.6, 0.45, 0.3, 0.18,
)  # fmt: skip
"""Citizen reports per hour of the local day, for the whole district (about 12 a day)."""

_CITIZEN_MIX = {
    "01.01": 4, "01.02": 4, "01.03": 3, "01.04": 1, "02.01": 12, "02.02": 5, "02.03": 5,
    "03.01": 9, "03.02": 7, "04.01": 4, "04.02": 4, "05.01": 8, "05.02": 9, "05.03": 7,
}  # fmt: skip
_PATROL_MIX = {
    "01.01": 2, "01.02": 2, "01.03": 3, "01.04": 1, "02.01": 14, "02.02": 6, "02.03": 6,
    "03.01": 3, "03.02": 4, "04.01": 2, "04.02": 6, "05.01": 6, "05.02": 8, "05.03": 12,
}  # fmt: skip


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Habits:
    """The behaviour of everyone in the simulation, as rates, shares and waits.

    Shares are probabilities per occasion; waits are :data:`Wait` pairs in hours
    (minutes where the name says so). "Office" waits count only office hours (the
    working calendar's windows); the others are elapsed time.
    """

    citizens_per_hour: Sequence[float] = _CITIZENS_PER_HOUR
    weekend_factor: float = 0.75
    patrol_per_office_hour: float = 0.3
    citizen_mix: Mapping[str, float] = field(default_factory=lambda: _frozen(_CITIZEN_MIX))
    patrol_mix: Mapping[str, float] = field(default_factory=lambda: _frozen(_PATROL_MIX))
    on_the_spot_categories: frozenset[str] = frozenset({"02.01", "02.03", "04.02", "05.03"})
    on_the_spot: float = 0.5
    urgencies: Mapping[str, float] = field(
        default_factory=lambda: _frozen({"normal": 0.86, "urgent": 0.11, "emergency": 0.03})
    )
    question: float = 0.05
    out_of_scope: float = 0.03
    duplicate: float = 0.04
    duplicate_spotted: float = 0.9
    withdraw: float = 0.01
    misclassify: float = 0.06
    triage_minutes: Wait = (15.0, 0.8)
    dispatch_minutes: Wait = (10.0, 0.7)
    return_if_misrouted: float = 0.85
    return_if_gap: float = 0.3
    return_again: float = 0.25
    return_otherwise: float = 0.025
    refer_to_arbitration: float = 0.05
    reject_return: float = 0.7
    return_decision: Wait = (1.5, 0.8)
    arbitration_office: Wait = (4.0, 0.6)
    sign_for_office: Wait = (1.1, 0.8)
    sign_for_emergency_minutes: Wait = (12.0, 0.6)
    handling_office: Mapping[str, Wait] = field(
        default_factory=lambda: MappingProxyType({"normal": (11.0, 0.8), "urgent": (5.0, 0.7)})
    )
    handling_emergency_minutes: Wait = (70.0, 0.4)
    rework_office: Wait = (5.0, 0.6)
    co_unit_office: Wait = (5.0, 0.7)
    ask_for_information: float = 0.07
    information: Wait = (4.0, 1.0)
    information_unanswered: float = 0.1
    extension_when_overrunning: float = 0.6
    extension_granted: float = 0.8
    extension_decision_office: Wait = (1.5, 0.6)
    send_back: float = 0.04
    review: Wait = (2.0, 0.8)
    reporter_silent: float = 0.12
    reporter_answer: Wait = (5.0, 0.9)
    verification_office: Wait = (2.0, 0.6)
    rework_on_time: float = 0.05
    rework_late: float = 0.12
    reopen_on_the_spot: float = 0.05
    ratings_on_time: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            {"satisfied": 0.8, "basically_satisfied": 0.14, "dissatisfied": 0.06}
        )
    )
    ratings_late: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            {"satisfied": 0.55, "basically_satisfied": 0.25, "dissatisfied": 0.2}
        )
    )
    resolved_on_time: float = 0.9
    resolved_late: float = 0.8
    resolved_rejecting: float = 0.05
    ratings_rejecting: Mapping[str, float] = field(
        default_factory=lambda: _frozen(
            {"satisfied": 0.1, "basically_satisfied": 0.3, "dissatisfied": 0.6}
        )
    )


class Dice:
    """The simulation's randomness: one seeded ``random.Random`` and the draws it needs.

    Args:
        seed: The seed; the same seed gives the same draws in the same order.
    """

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def chance(self, probability: float) -> bool:
        """True with the given probability."""
        return self._rng.random() < probability

    def wait(self, wait: Wait) -> float:
        """A log-normal waiting time with the given median and spread."""
        median, spread = wait
        return self._rng.lognormvariate(math.log(median), spread)

    def pick(self, weights: Mapping[str, float]) -> str:
        """A key of ``weights``, drawn in proportion to its weight."""
        keys = list(weights)
        return self._rng.choices(keys, weights=[weights[k] for k in keys])[0]

    def choice(self, items: Sequence[str]) -> str:
        """One of ``items``, uniformly."""
        return self._rng.choice(items)

    def fraction(self) -> float:
        """A uniform draw in ``[0, 1)``."""
        return self._rng.random()

    def count(self, mean: float) -> int:
        """A Poisson-distributed count with the given mean (Knuth's method)."""
        limit, product, count = math.exp(-mean), self._rng.random(), 0
        while product > limit:
            product *= self._rng.random()
            count += 1
        return count

    def digits(self, n: int) -> str:
        """``n`` random decimal digits."""
        return "".join(str(self._rng.randrange(10)) for _ in range(n))
