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
    SUBTASK_WARN = "subtask_warn"
    """A co-unit's subtask reached its warning point (yellow); the payload names the unit."""
    SUBTASK_BREACH = "subtask_breach"
    """A co-unit's subtask ran out (red)."""
    SUBTASK_ESCALATE = "subtask_escalate"
    """A rung of the ladder was reached by a co-unit's overdue subtask."""
    DEADLINE_RECOMPUTED = "deadline_recomputed"
    """The clock's due points were counted again on a corrected calendar."""
    PURGED = "purged"
    """Personal data was erased from the case (by a retention rule or on request); the
    payload names the kinds of data and the rule, never the data."""


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
    SUBTASK_WARNING = "subtask_warning"
    """Records ``subtask_warn`` for one co-unit's subtask."""
    SUBTASK_BREACH = "subtask_breach"
    """Records ``subtask_breach`` for one co-unit's subtask."""
    SUBTASK_ESCALATION = "subtask_escalation"
    """Records ``subtask_escalate`` for one rung, for one co-unit's subtask."""


SUBTASK_TIMERS = frozenset(
    {TimerKind.SUBTASK_WARNING, TimerKind.SUBTASK_BREACH, TimerKind.SUBTASK_ESCALATION}
)
"""The timers of co-units' subtasks, beside the case's own clock."""
SUBTASK_TRIGGERS = frozenset(
    {EngineTrigger.SUBTASK_WARN, EngineTrigger.SUBTASK_BREACH, EngineTrigger.SUBTASK_ESCALATE}
)
"""What the subtask timers record; the payload names the co-unit (``unit``)."""
