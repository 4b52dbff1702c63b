"""The engine's own names: the triggers it records by itself and the kinds of timers.

Both are string enums, so what is stored (an audit event's trigger, a due point's
kind) is the plain name, as it always was, and compares equal to it.
"""

from __future__ import annotations

from enum import StrEnum


class EngineTrigger(StrEnum):
    """Triggers the engine records on its own, besides the workflow's transitions;
    notification rules may name them as events."""

    REPORT = "report"
    """A report opened the case."""
    WARN = "warn"
    """The case's clock reached its warning point (yellow)."""
    BREACH = "breach"
    """The case's clock ran out (red)."""
    ESCALATE = "escalate"
    """A rung of the clock's escalation ladder was reached."""
    DUPLICATE = "duplicate"
    """A duplicate report was merged into the case (recorded on the master)."""
    MASTER_CLOSED = "master_closed"
    """The case this duplicate was merged into reached a final state (recorded on the
    duplicate, whose reporter is told the outcome)."""


class TimerKind(StrEnum):
    """What a due point does when it fires."""

    WARNING = "warning"
    """Records ``warn``."""
    BREACH = "breach"
    """Records ``breach``."""
    ESCALATION = "escalation"
    """Records ``escalate`` for one rung of the ladder."""
    EXPIRY = "expiry"
    """Fires the clock's ``on_expiry`` transition as the system."""
