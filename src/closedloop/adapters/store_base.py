"""What every shipped CaseStore adapter checks alike before it touches its rows.

The checks on claim arguments live here, so the in-memory and SQL stores refuse the
same arguments with the same errors.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from closedloop.engine.clock import utc
from closedloop.errors import ValidationError


def check_claim(now: datetime, lease: timedelta, limit: int) -> datetime:
    """Validate the arguments of a claim; returns ``now`` in UTC.

    Raises:
        NaiveDatetime: ``now`` has no time zone.
        ValidationError: ``lease`` is not positive or ``limit`` is below 1.
    """
    errors = [] if lease > timedelta(0) else [("lease", "must be positive")]
    if limit < 1:
        errors.append(("limit", "must be at least 1"))
    if errors:
        raise ValidationError(errors, subject="claim")
    return utc(now, "now")
