"""Deadlines: when a waiting case is due, when it warns, and the timers that fire.

A case waiting in a state has a :class:`~closedloop.engine.model.Deadline` for that
state's clock. The limit comes from the clock (refined by its SLA rows for the case's
category and urgency) plus approved extensions, counted on the clock's calendar from
the moment the case entered the state. While ``case.paused`` is set
(awaiting information, suspended) the clock is paused: on resume the counted time spent
paused moves the due and warning instants by exactly that much.

From a deadline come the case's due points (durable timers): a yellow warning at
``warn_at`` (by default 70% of the allowed time), the breach (red) at ``due_at``, the
rungs of the escalation ladder counted from the breach, and an optional expiry action.
Everything here is pure: the points are a function of the case, and firing one changes
the case so that it is not derived again. The store keeps only the earliest instant
(:meth:`Timekeeper.next_timer_at`) on the case's row; ``tick`` claims the cases whose
instant has come and derives their points again.

A co-unit's active subtask has a clock of its own beside the case's (see "subtask
clocks" below): its due and warning instants are fixed when it starts, and it warns,
breaches and climbs the escalation ladder of the case's clock as a case does, with
timers of the ``subtask_*`` kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from closedloop.engine.calendars.working import NaturalCalendar, WorkingCalendar
from closedloop.engine.definition import ClockSpec, SlaRow, TransitionSpec, Workflow
from closedloop.engine.durations import Duration
from closedloop.engine.hierarchy import covers
from closedloop.engine.kinds import SUBTASK_TIMERS, EngineTrigger, TimerKind
from closedloop.engine.model import Case, Deadline, Subtask, assembled, built, given, replaced
from closedloop.engine.ports import DuePoint, WorkCalendar
from closedloop.errors import CalendarNotCovered, UnknownName, ValidationError

_Instants = tuple[WorkCalendar, tuple[object, ...], tuple[tuple[TimerKind, int, datetime], ...]]
"""The last timers after a breach the timekeeper counted, with the calendar and the
deadline's values it counted them from."""


class Timekeeper:
    """Computes deadlines and due points for one workflow on named calendars.

    Args:
        workflow: Whose clocks to keep.
        calendars: Calendars by name; clocks and SLA rows refer to these names.
        default: The name of the calendar for clocks that name none.

    Raises:
        UnknownName: a clock or SLA row names a calendar that is not given.
    """

    def __init__(
        self, workflow: Workflow, calendars: Mapping[str, WorkCalendar], default: str
    ) -> None:
        self._workflow = workflow
        self._calendars = dict(calendars)
        self._default = default
        self._last_instants: _Instants | None = None
        for clock in workflow.clocks:
            for name in [clock.calendar, *(row.calendar for row in clock.sla)]:
                self.calendar(name)

    def copy(self) -> Timekeeper:
        """A timekeeper on the calendars as they are now: a later :meth:`use` of this
        one leaves it counting as before (what the timers were before a correction)."""
        return Timekeeper(self._workflow, self._calendars, self._default)

    def calendar(self, name: str | None) -> WorkCalendar:
        """The calendar called ``name`` (the default one for ``None``)."""
        try:
            return self._calendars[name or self._default]
        except KeyError:
            raise UnknownName("calendar", str(name), self._calendars) from None

    # -- deadlines -------------------------------------------------------------------------

    def start(self, case: Case, now: datetime) -> Deadline | None:
        """The deadline of a case that has just entered its state (``None`` if final)."""
        state = self._workflow.state(case.state)
        if state.final or state.clock is None:
            return None
        clock = self._workflow.clock(state.clock)
        limit, calendar = _limit(clock, case)
        draft = _draft(clock.name, calendar or self._default, now, limit, now)
        return self._scheduled(draft, now)

    def after(
        self, old: Case, new: Case, transition: TransitionSpec, now: datetime
    ) -> Deadline | None:
        """The deadline of ``new``, reached from ``old`` by ``transition`` at ``now``."""
        state = self._workflow.state(new.state)
        if state.final:
            return None
        deadline = old.deadline
        if new.state != old.state or deadline is None or deadline.clock != state.clock:
            deadline = self._entered(old, new, transition, now)
        else:
            expiry = self._expiry(deadline, transition, now)
            if expiry is not None:
                # The clock's expiry action led back into its own state, and the clock
                # runs on: this expiry has happened and must not be derived again.
                deadline = replaced(deadline, {"expired_at": expiry})
        if transition.extends_clock:
            extension = _lookup(old.recorded(), transition.extends_clock)
            deadline = self._extended(deadline, extension, now)
        return self._paused_or_resumed(deadline, bool(new.paused), now)

    def _expiry(
        self, deadline: Deadline, transition: TransitionSpec, now: datetime
    ) -> datetime | None:
        """The instant of the clock's expiry when ``transition`` at ``now`` is its action
        and that instant has come (``None`` otherwise)."""
        expiry = self._workflow.clock(deadline.clock).on_expiry
        if expiry is None or expiry.trigger != transition.name:
            return None
        pending = self._pending(deadline)
        due = [at for kind, _, at in pending if kind == TimerKind.EXPIRY and at <= now]
        return due[0] if due else None

    def _entered(self, old: Case, new: Case, transition: TransitionSpec, now: datetime) -> Deadline:
        """The deadline on entering ``new.state``: a resumed clock, or a fresh one."""
        left = old.deadline
        kept = replaced(left, {"previous": None}) if left is not None else None
        resumed = left.previous if left is not None else None
        clock = self._workflow.state(new.state).clock
        if transition.restores_clock and resumed is not None and resumed.clock == clock:
            return self._scheduled(replaced(resumed, {"previous": kept}), now)
        fresh = self.start(new, now)
        assert fresh is not None  # non-final states have clocks
        begun = self._begun(fresh, old)
        if begun is not None:
            fresh = self._scheduled(replaced(fresh, {"started_at": begun}), now)
        beside = self._beside(fresh, new, now)
        # ``fresh`` was made a moment ago for this case and nobody else holds it: its
        # links are set on it in place (as ``replaced`` would set them on a copy).
        given(fresh, "previous", kept)
        return given(fresh, "beside", beside)

    def _beside(self, fresh: Deadline, case: Case, now: datetime) -> Deadline | None:
        """The clock that ``starts`` on entering ``case.state`` and runs beside the
        state's own clock (the handling clock beside the sign-for clock), as it would
        stand if the case moved on to its state now."""
        for clock in self._workflow.clocks:
            if clock.starts is None or clock.name == fresh.clock:
                continue
            if self._workflow.transition(clock.starts).dest != case.state:
                continue
            limit, calendar = _limit(clock, case)
            draft = _draft(clock.name, calendar or self._default, fresh.started_at, limit, now)
            return self._scheduled(draft, now)
        return None

    def _begun(self, fresh: Deadline, old: Case) -> datetime | None:
        """When a clock that ``starts`` on an earlier transition began: the start of the
        clock of the state that transition leads to, when the case comes straight from
        it; ``None`` when the clock starts on entry."""
        starts = self._workflow.clock(fresh.clock).starts
        if starts is None or old.deadline is None:
            return None
        if self._workflow.transition(starts).dest != old.state:
            return None
        return old.deadline.started_at

    def _extended(self, deadline: Deadline, extension: Any, now: datetime) -> Deadline:
        if not isinstance(extension, str):
            raise ValidationError(
                [("extension", "no requested duration to grant")], subject="extension"
            )
        granted = Duration.parse(extension)
        extended = replaced(deadline, {"extensions": (*deadline.extensions, granted)})
        return self._scheduled(extended, now)

    def _paused_or_resumed(self, deadline: Deadline, paused: bool, now: datetime) -> Deadline:
        if paused and deadline.paused_at is None:
            return replaced(deadline, {"paused_at": now})
        if not paused and deadline.paused_at is not None:
            spent = self.calendar(deadline.calendar).working_time(deadline.paused_at, now)
            resumed = replaced(
                deadline,
                {
                    "paused_at": None,
                    "paused_seconds": deadline.paused_seconds + spent.total_seconds(),
                },
            )
            return self._scheduled(resumed, now)
        return deadline

    def _scheduled(self, deadline: Deadline, now: datetime) -> Deadline:
        """``deadline`` with due and warning instants computed, warning level adjusted,
        and marked provisional when a due point falls on days without holiday data."""
        base = _unmarked(deadline)
        try:
            return self._settled(self._timed(base, now))
        except CalendarNotCovered:
            stand_in = replaced(base, {"provisional": True})
            return self._settled(self._timed(stand_in, now))

    def _timed(self, deadline: Deadline, now: datetime) -> Deadline:
        allowed = _allowed(deadline)
        fraction = self._workflow.clock(deadline.clock).warn_at
        counting = self._counting(deadline)
        due = self._counted(deadline, allowed, counting)
        warn = self._counted(deadline, _scaled(allowed, fraction), counting)
        warning = deadline.warning
        if now < due and warning == "red":
            warning = "yellow" if warn <= now else "none"
        elif now < warn:
            warning = "none"
        fallback = (
            ()  # natural time needs no holiday data (its instants are aware ones)
            if type(counting) is NaturalCalendar
            else counting.fallback_days(deadline.started_at, due)
        )
        return replaced(
            deadline,
            {"due_at": due, "warn_at": warn, "warning": warning, "fallback_days": fallback},
        )

    def _settled(self, deadline: Deadline) -> Deadline:
        """``deadline`` marked provisional, with the reason, when one of its due points
        is counted over days its calendar has no data for; unmarked otherwise.

        Raises:
            CalendarNotCovered: the calendar has no data and no weekday stand-in (a
                calendar of the host's own).
        """
        try:
            return self._marked(deadline)
        except CalendarNotCovered:
            if deadline.provisional:
                raise
            return self._marked(replaced(deadline, {"provisional": True}))

    def _marked(self, deadline: Deadline) -> Deadline:
        calendar = self.calendar(deadline.calendar)
        if type(calendar) is NaturalCalendar:
            return _unmarked(deadline)  # natural time needs no holiday data
        horizon = max([deadline.due_at, *(at for _, _, at in self._instants(deadline))])
        stand_in = _stand_in(calendar)
        missing = () if stand_in is None else stand_in.fallback_days(deadline.started_at, horizon)
        if not missing:
            return _unmarked(deadline)
        reason = (
            f"calendar {deadline.calendar!r} has no holiday data for "
            f"{_days_text(missing)}: counted Monday to Friday until the data is supplied"
        )
        return replaced(deadline, {"provisional": True, "provisional_reason": reason})

    def _counting(self, deadline: Deadline) -> WorkCalendar:
        """The calendar the deadline counts on: its own, or for a provisional deadline
        its own with Monday to Friday standing in for days without data."""
        calendar = self.calendar(deadline.calendar)
        if deadline.provisional:
            return _stand_in(calendar) or calendar
        return calendar

    def _counted(
        self, deadline: Deadline, amount: Duration, calendar: WorkCalendar | None = None
    ) -> datetime:
        """``amount`` counted from the clock's start, shifted by the time spent paused
        (on ``calendar``, the one :meth:`_counting` gives, when the caller has it)."""
        if calendar is None:
            calendar = self._counting(deadline)
        if not deadline.paused_seconds and type(calendar) is NaturalCalendar:
            # Natural time advanced by nothing is the same instant; from a plain instant
            # in UTC, it is the natural length later (what the calendar's steps give).
            start, length = deadline.started_at, amount.as_timedelta()
            if type(start) is datetime and start.tzinfo is UTC and length >= _ZERO:
                return start + length
            return calendar.add(start, amount).astimezone(UTC)
        paused = timedelta(seconds=deadline.paused_seconds)
        counted = calendar.advance(calendar.add(deadline.started_at, amount), paused)
        return counted.astimezone(UTC)  # calendars answer in their zone; cases keep UTC

    def _after_breach(self, deadline: Deadline, after: str) -> datetime:
        """The instant ``after`` the breach. In the limit's own unit it is counted on from
        the start (so days after a due time at 24:00 begin with the next day); otherwise
        from the due instant."""
        extra = Duration.parse(after)
        try:
            allowed = _allowed(deadline)
            if (allowed.unit, allowed.working) == (extra.unit, extra.working):
                return self._counted(deadline, _summed(allowed, extra))
        except ValidationError:
            pass
        # Units differ: count from the due instant itself.
        return self._counting(deadline).add(deadline.due_at, extra).astimezone(UTC)

    # -- corrected calendars ---------------------------------------------------------------

    def use(self, calendar: WorkCalendar) -> None:
        """Count from now on with ``calendar`` in place of the one of the same name.

        Raises:
            UnknownName: no calendar of that name was given.
        """
        self.calendar(calendar.name)
        self._calendars[calendar.name] = calendar
        self._last_instants = None

    def touches(self, deadline: Deadline, since: date, calendar: str | None) -> bool:
        """Whether the deadline's computation counted days from ``since`` (local date)
        on ``calendar`` (any calendar when ``None``): it is provisional, or its start,
        due time or a due point still ahead lies on or after that day; or the clock
        running beside it (:attr:`Deadline.beside`) does."""
        if deadline.beside is not None and self.touches(deadline.beside, since, calendar):
            return True
        if calendar is not None and deadline.calendar != calendar:
            return False
        if deadline.provisional:
            return True
        zone = self.calendar(deadline.calendar).timezone
        try:
            latest = max([deadline.due_at, *(at for _, _, at in self._instants(deadline))])
        except CalendarNotCovered:
            return True  # stored before provisional deadlines: counted past its data
        return latest.astimezone(zone).date() >= since

    def recomputed(self, deadline: Deadline, now: datetime) -> Deadline:
        """The deadline counted again on the calendars as they are now, and the clock
        running beside it with it. Warnings fired and rungs climbed stay: nothing is
        taken back, and nothing fires twice."""
        again = self._scheduled(deadline, now)
        beside = deadline.beside
        if beside is not None:
            beside = replaced(self._scheduled(beside, now), {"warning": beside.warning})
        return replaced(again, {"warning": deadline.warning, "beside": beside})

    def timers(self, deadline: Deadline) -> dict[str, str]:
        """The deadline's pending timers, by name (``breach``, ``escalation.2``), as ISO
        instants: what a ``deadline_recomputed`` event records before and after."""
        return {
            kind if kind != TimerKind.ESCALATION else f"{kind}.{level}": at.isoformat()
            for kind, level, at in self._pending(deadline)
        }

    # -- due points ------------------------------------------------------------------------

    def due_points(self, case: Case, *, until: datetime | None = None) -> list[DuePoint]:
        """The timers the case needs now, earliest first (none while paused or final);
        only those due at ``until`` or before when it is given (a tick asks for what is
        due, and builds no point for the others)."""
        deadline = case.deadline
        if deadline is None or deadline.paused_at is not None:
            return []
        made = [
            _point(case.id, deadline, kind, level, at)
            for kind, level, at in self._pending(deadline)
            if until is None or at <= until
        ]
        if case.subtasks:
            made.extend(p for p in self.subtask_points(case) if until is None or p.due_at <= until)
        if len(made) < 2:
            return made  # a tick mostly finds one
        return sorted(made, key=lambda p: (p.due_at, p.id))

    def counts(self, deadline: Deadline) -> bool:
        """Whether these calendars count the deadline's timers as it was stored: a
        provisional one always; an unmarked one only if no timer of it reaches a day
        these calendars have no data for (then it was counted on corrected ones)."""
        if deadline.provisional:
            return True
        try:
            return not self._marked(deadline).provisional
        except CalendarNotCovered:
            return False

    def next_timer_at(self, case: Case) -> datetime | None:
        """The earliest ``due_at`` of :meth:`due_points` (``None`` when there is none):
        what the store keeps on the case's row for claims."""
        deadline = case.deadline
        if deadline is None or deadline.paused_at is not None:
            return None
        # The instants alone: every command asks, and only the earliest is kept.
        instants = [at for _, _, at in self._pending(deadline)]
        if case.subtasks:
            instants.extend(point.due_at for point in self.subtask_points(case))
        return min(instants).astimezone(UTC) if instants else None

    def _pending(self, deadline: Deadline) -> list[tuple[TimerKind, int, datetime]]:
        """The timers still to fire for the deadline's warning level and rung; counted
        provisionally for a clock stored unmarked whose next rung lacks holiday data."""
        try:
            return self._timers_of(deadline)
        except CalendarNotCovered:
            if deadline.provisional:
                raise
            return self._timers_of(replaced(deadline, {"provisional": True}))

    def _timers_of(self, deadline: Deadline) -> list[tuple[TimerKind, int, datetime]]:
        points: list[tuple[TimerKind, int, datetime]] = []
        if deadline.warning == "none" and deadline.warn_at < deadline.due_at:
            points.append((TimerKind.WARNING, 0, deadline.warn_at))
        if deadline.warning != "red":
            points.append((TimerKind.BREACH, 0, deadline.due_at))
        after_breach = self._instants(deadline)
        if deadline.expired_at is not None:
            # The expiry fired at this instant and the clock ran on: it is not due again
            # (a deadline moved since, by an extension or a recount, expires anew).
            fired = deadline.expired_at
            after_breach = [p for p in after_breach if p[0] != TimerKind.EXPIRY or p[2] != fired]
        return points + after_breach

    def _instants(self, deadline: Deadline) -> list[tuple[TimerKind, int, datetime]]:
        """The timers after the breach: the next rung of the ladder and the expiry.

        A command asks for them more than once for the same clock (to mark the deadline
        and to schedule its timers); the last answer is kept, by everything it is
        counted from, calendar included.
        """
        calendar = self._counting(deadline)
        key = (
            deadline.clock,
            deadline.started_at,
            deadline.limit,
            deadline.extensions,
            deadline.paused_seconds,
            deadline.due_at,
            deadline.escalation,
        )
        last = self._last_instants
        if last is not None and last[0] is calendar and last[1] == key:
            return list(last[2])
        found = self._counted_instants(deadline)
        self._last_instants = (calendar, key, tuple(found))
        return found

    def _counted_instants(self, deadline: Deadline) -> list[tuple[TimerKind, int, datetime]]:
        clock = self._workflow.clock(deadline.clock)
        points: list[tuple[TimerKind, int, datetime]] = []
        if deadline.escalation < len(clock.escalation):
            # Only the next rung: the ladder is climbed in order, one rung after another.
            level = deadline.escalation + 1
            after = clock.escalation[level - 1].after
            points.append((TimerKind.ESCALATION, level, self._after_breach(deadline, after)))
        if clock.on_expiry:
            points.append(
                (TimerKind.EXPIRY, 0, self._after_breach(deadline, clock.on_expiry.after))
            )
        return points

    def escalation_targets(self, case: Case, point: DuePoint) -> tuple[str, ...]:
        """Whom an escalation rung ``point`` notifies besides its rules' recipients."""
        if point.kind not in (TimerKind.ESCALATION, TimerKind.SUBTASK_ESCALATION):
            return ()
        clock = point.clock if point.kind in SUBTASK_TIMERS else None
        if clock is None and case.deadline is not None:
            clock = case.deadline.clock
        return self._workflow.clock(clock).escalation[point.level - 1].notify if clock else ()

    # -- subtask clocks --------------------------------------------------------------------

    def subtask_clocks(self, case: Case) -> Case:
        """``case`` with a clock started for every subtask that has just become active:
        due ``within`` of its start on the default calendar, else when the case's running
        clock is due; the warning at the same fraction of the allowed time as the case's
        clock (for a subtask due with the case: the case's own warning instant, if it is
        still ahead)."""
        deadline = case.deadline
        if deadline is None or not any(_unclocked(t) for t in case.subtasks):
            return case
        tasks = tuple(
            self._clocked(task, deadline) if _unclocked(task) else task for task in case.subtasks
        )
        return replaced(case, {"subtasks": tasks})

    def _clocked(self, task: Subtask, deadline: Deadline) -> Subtask:
        started = task.activated_at
        assert started is not None  # an active subtask has started
        fraction = self._workflow.clock(deadline.clock).warn_at
        calendar = self.calendar(None)
        if task.within is not None:
            due = calendar.add(started, task.within).astimezone(UTC)
            warn = calendar.add(started, _scaled(task.within, fraction)).astimezone(UTC)
        else:
            due, warn = deadline.due_at, deadline.warn_at
        update: dict[str, Any] = {"due_at": due, "clock": deadline.clock}
        if started < warn < due:
            update["warn_at"] = warn
        return replaced(task, update)

    def subtask_points(self, case: Case) -> list[DuePoint]:
        """The timers of the case's active subtasks (none once the case is final)."""
        if case.deadline is None:
            return []
        return [point for task in case.subtasks for point in self._task_points(case.id, task)]

    def _task_points(self, case_id: str, task: Subtask) -> list[DuePoint]:
        if task.status != "active" or task.due_at is None or task.clock is None:
            return []
        ladder = self._workflow.clock(task.clock).escalation
        points: list[tuple[TimerKind, int, datetime]] = []
        if task.warning == "none" and task.warn_at is not None:
            points.append((TimerKind.SUBTASK_WARNING, 0, task.warn_at))
        if task.warning != "red":
            points.append((TimerKind.SUBTASK_BREACH, 0, task.due_at))
        if task.escalation < len(ladder):
            # As for the case's clock: only the next rung, counted from the due instant.
            level = task.escalation + 1
            at = self.calendar(None).add(task.due_at, Duration.parse(ladder[level - 1].after))
            points.append((TimerKind.SUBTASK_ESCALATION, level, at))
        return [_subtask_point(case_id, task, kind, level, at) for kind, level, at in points]

    def _subtask_effect(
        self, case: Case, point: DuePoint
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """What a subtask timer does: the subtask's warning, breach or rung, recorded."""
        payload: dict[str, Any] = {}
        tasks = []
        for task in case.subtasks:
            if point.id in {p.id for p in self._task_points(case.id, task)}:
                payload["unit"] = task.unit
                if task.due_at is not None:
                    payload["subtask_due_at"] = task.due_at.isoformat()
                if point.kind == TimerKind.SUBTASK_WARNING:
                    task = replaced(task, {"warning": "yellow"})
                elif point.kind == TimerKind.SUBTASK_BREACH:
                    task = replaced(task, {"warning": "red"})
                else:
                    assert task.clock is not None
                    step = self._workflow.clock(task.clock).escalation[point.level - 1]
                    update: dict[str, Any] = {"escalation": point.level}
                    if step.supervise:
                        update["supervised"] = True
                    task = replaced(task, update)
                    payload.update(level=point.level, notify=list(step.notify))
            tasks.append(task)
        assert "unit" in payload  # the sweep fires only live points
        trigger = {
            TimerKind.SUBTASK_WARNING: _SUBTASK_WARN,
            TimerKind.SUBTASK_BREACH: _SUBTASK_BREACH,
        }.get(point.kind, _SUBTASK_ESCALATE)
        return trigger, {"subtasks": tuple(tasks)}, payload

    def effect(self, case: Case, point: DuePoint) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """What firing ``point`` does: the audit trigger (an :class:`EngineTrigger`'s
        value, as plain text), the case updates, the payload."""
        if point.kind in SUBTASK_TIMERS:
            return self._subtask_effect(case, point)
        deadline = case.deadline
        assert deadline is not None  # due_points() yields points only for running clocks
        clock = self._workflow.clock(deadline.clock)
        if point.kind == TimerKind.WARNING:
            return (
                _WARN,
                {"deadline": self._settled(replaced(deadline, {"warning": "yellow"}))},
                {},
            )
        if point.kind == TimerKind.BREACH:
            return (
                _BREACH,
                {"deadline": self._settled(replaced(deadline, {"warning": "red"}))},
                {},
            )
        step = clock.escalation[point.level - 1]
        climbed = self._settled(replaced(deadline, {"escalation": point.level}))
        updates: dict[str, Any] = {"deadline": climbed}
        if step.supervise:
            updates["supervised"] = True
        return _ESCALATE, updates, {"level": point.level, "notify": list(step.notify)}


def _draft(
    clock: str, calendar: str, started_at: datetime, limit: Duration, now: datetime
) -> Deadline:
    """A clock started at ``started_at``, due and warning at ``now`` until it is
    scheduled: ``Deadline(clock=..., calendar=..., started_at=..., limit=...,
    due_at=now, warn_at=now)``. Values of the exact types validation gives back as they
    are (text, a duration, instants in UTC) make it without validating them; any
    other is validated."""
    values = {
        "clock": clock,
        "calendar": calendar,
        "started_at": started_at,
        "limit": limit,
        "due_at": now,
        "warn_at": now,
    }
    if (
        type(clock) is str
        and type(calendar) is str
        and type(limit) is Duration
        and type(started_at) is datetime
        and started_at.tzinfo is UTC
        and type(now) is datetime
        and now.tzinfo is UTC
    ):
        fields = dict(_DRAFT)
        fields.update(values)
        return built(Deadline, fields, None, set(_DRAFT_GIVEN))
    return Deadline.model_validate(values)


_ZERO = timedelta(0)

# The triggers a timer records, as plain text: the event keeps its trigger as it is
# given, and the store's driver takes text as it is (a text enumeration's member it
# first tries to adapt).
_WARN = EngineTrigger.WARN.value
_BREACH = EngineTrigger.BREACH.value
_ESCALATE = EngineTrigger.ESCALATE.value
_SUBTASK_WARN = EngineTrigger.SUBTASK_WARN.value
_SUBTASK_BREACH = EngineTrigger.SUBTASK_BREACH.value
_SUBTASK_ESCALATE = EngineTrigger.SUBTASK_ESCALATE.value

_DRAFT_GIVEN = frozenset({"clock", "calendar", "started_at", "limit", "due_at", "warn_at"})
_DRAFT: dict[str, Any] = {
    name: None if name in _DRAFT_GIVEN else info.get_default(call_default_factory=True)
    for name, info in Deadline.model_fields.items()
}
"""Every field of a deadline in order, each not given at its default (all immutable)."""


@lru_cache(maxsize=256)
def _scaled(allowed: Duration, fraction: float) -> Duration:
    """The part of ``allowed`` at which a clock warns: the same few limits and fractions
    come back on every command, and scaling by a float's exact fraction is costly."""
    return allowed.scaled(fraction)


@lru_cache(maxsize=256)
def _summed(allowed: Duration, extra: Duration) -> Duration:
    """``allowed`` plus ``extra``, of the same unit: the same few limits and rungs come
    back on every command, and the sum keeps its natural length once counted."""
    return allowed.plus(extra)


def _unmarked(deadline: Deadline) -> Deadline:
    """``deadline`` without the provisional mark (itself when it has none)."""
    if not deadline.provisional and deadline.provisional_reason is None:
        return deadline
    return replaced(deadline, {"provisional": False, "provisional_reason": None})


def _stand_in(calendar: WorkCalendar) -> WorkCalendar | None:
    """The calendar with Monday to Friday standing in for days without data, or ``None``
    for a calendar that cannot say (a host's own, natural time needs none)."""
    if isinstance(calendar, WorkingCalendar):
        return calendar if calendar.fallback else calendar.with_fallback("weekdays")
    return None


def _days_text(days: tuple[date, ...]) -> str:
    first, last = days[0].isoformat(), days[-1].isoformat()
    return first if first == last else f"{first}..{last}"


def _allowed(deadline: Deadline) -> Duration:
    """The limit plus every approved extension."""
    allowed = deadline.limit
    for extension in deadline.extensions:
        allowed = allowed.plus(extension)
    return allowed


def _limit(clock: ClockSpec, case: Case) -> tuple[Duration, str | None]:
    """The limit and calendar for ``case``: the most specific matching SLA row, or the default."""
    best: SlaRow | None = None
    best_rank = (-1, -1)
    for row in clock.sla:
        if row.urgency is not None and row.urgency != case.urgency:
            continue
        if row.category is not None and (
            case.category is None or not covers(row.category, case.category)
        ):
            continue
        rank = (len(row.category or ""), int(row.urgency is not None))
        if rank > best_rank:
            best, best_rank = row, rank
    if best is None:
        return Duration.parse(clock.duration), clock.calendar
    return Duration.parse(best.duration), best.calendar or clock.calendar


def _lookup(attributes: Mapping[str, Any], path: str) -> Any:
    value: Any = attributes
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _point(case_id: str, deadline: Deadline, kind: TimerKind, level: int, at: datetime) -> DuePoint:
    # The instant is part of the id: a moved deadline is a new timer, the old one cancelled.
    at = at.astimezone(UTC)
    started, stamp = iso_text(deadline.started_at), iso_text(at)
    # Made from the case's own checked values (an aware instant, now in UTC): built
    # without validating them again, as every tick derives these for every case.
    return assembled(
        DuePoint,
        {
            "id": f"{case_id}/{deadline.clock}/{started}/{kind}/{level}/{stamp}",
            "case_id": case_id,
            "clock": deadline.clock,
            "kind": kind,
            "level": level,
            "due_at": at,
        },
    )


def iso_text(at: datetime) -> str:
    """``at.isoformat()``, put together from ready-made digits for an instant in UTC (a
    tick writes a few for every timer, and ``isoformat`` formats each number anew)."""
    year = _YEARS.get(at.year) if at.tzinfo is UTC and type(at) is datetime else None
    if year is None:
        return at.isoformat()
    two = _TWO_DIGITS
    text = f"{year}-{two[at.month]}-{two[at.day]}T{two[at.hour]}:{two[at.minute]}:{two[at.second]}"
    if at.microsecond:
        return f"{text}.{at.microsecond:06d}+00:00"
    return f"{text}+00:00"


_TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))
_YEARS = {year: str(year) for year in range(1970, 2200)}
"""The years :func:`iso_text` puts together (four digits each); others are formatted."""


def _unclocked(task: Subtask) -> bool:
    return task.status == "active" and task.activated_at is not None and task.clock is None


def _subtask_point(
    case_id: str, task: Subtask, kind: TimerKind, level: int, at: datetime
) -> DuePoint:
    # Ids of their own (``case/subtask/unit/...``): the case's timers keep theirs.
    at = at.astimezone(UTC)
    started = task.activated_at.isoformat() if task.activated_at else ""
    assert task.clock is not None
    return DuePoint(
        id=f"{case_id}/subtask/{task.unit}/{started}/{kind}/{level}/{at.isoformat()}",
        case_id=case_id,
        clock=task.clock,
        kind=kind,
        level=level,
        due_at=at,
    )
