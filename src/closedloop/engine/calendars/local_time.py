"""Instants and the local wall clock of a time zone, including daylight-saving edges.

Working time is counted on the local wall clock (a working day is 00:00 to 24:00 local,
a window is 08:30 to 12:00 local). This module turns instants into naive local wall
times and back. Two edges need a rule:

* the hour the clock repeats in autumn: both instants read the same wall time; going
  back, the earlier one is chosen unless it lies before a given instant;
* the hour the clock skips in spring: no instant reads those wall times; going back,
  the instant the clock jumps is chosen (the first instant at or after that wall time).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from closedloop.engine.clock import aware

require_aware = aware
"""``value`` itself if it is timezone-aware (:func:`closedloop.engine.clock.aware`)."""


class LocalTimeline:
    """Converts between instants and naive wall times of one zone.

    Args:
        zone: The time zone whose wall clock is read.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def wall(self, instant: datetime) -> datetime:
        """The naive local wall time that ``instant`` (timezone-aware) reads in the zone."""
        return instant.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None)

    def instant(self, wall: datetime, *, not_before: datetime) -> datetime:
        """The earliest instant, not before ``not_before``, that reads ``wall`` or later.

        ``wall`` must not be earlier than ``not_before``'s wall time. The result is in
        the zone.
        """
        earlier = wall.replace(tzinfo=self.zone, fold=0)
        if self.wall(earlier) != wall:
            return self._clock_jump(wall)
        if earlier.astimezone(UTC) >= not_before.astimezone(UTC):
            return earlier
        return wall.replace(tzinfo=self.zone, fold=1)

    def _clock_jump(self, wall: datetime) -> datetime:
        """The instant the clock jumps over ``wall``, a wall time it skips."""
        readings = (
            wall.replace(tzinfo=self.zone, fold=0).timestamp(),
            wall.replace(tzinfo=self.zone, fold=1).timestamp(),
        )
        # Invariant: the clock reads before ``wall`` at ``low`` and after it at ``high``;
        # tz database transitions fall on whole seconds.
        low, high = math.floor(min(readings)), math.ceil(max(readings))
        while high - low > 1:
            middle = (low + high) // 2
            if self.wall(datetime.fromtimestamp(middle, UTC)) >= wall:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC).astimezone(self.zone)
