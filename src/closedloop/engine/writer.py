"""The one path that writes a change to a case: :class:`CaseWriter`.

Every change goes through it inside the caller's transaction, whoever asked for it:
a report (``Engine.report``), a trigger (``Engine.trigger``), a timer that fires
(the sweep behind ``Engine.tick``). For a trigger the writer hands the command to the
compiled machine, which refuses a trigger not declared from the case's state, has the
writer admit the command (authorisation, payload, guards) and chooses the destination;
the writer then computes the new case and its sealed audit event, stores both with
an optimistic version check and the earliest instant of the case's timers (the
store keeps no timers of its own: they are derived from the case), and queues the
notifications the change calls for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, tzinfo
from typing import Any

from closedloop.engine import audit, inputs, notifications, personal
from closedloop.engine.access import can_see, party_units, usable_roles
from closedloop.engine.commands import apply_transition, check_guards, open_case, record
from closedloop.engine.context import Context, Services
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import TransitionSpec, Workflow
from closedloop.engine.kinds import EngineTrigger
from closedloop.engine.machine import CompiledMachine
from closedloop.engine.model import (
    JSON,
    SYSTEM,
    Actor,
    AuditEvent,
    Case,
    Duplicate,
    ReporterContact,
    replaced,
)
from closedloop.engine.ports import CaseTransaction, TimerClaim
from closedloop.errors import ConflictOfInterest, MergeRefused, PermissionDenied


class CaseWriter:
    """Applies decided changes to cases of one workflow, inside a transaction.

    Args:
        workflow: The workflow the cases follow.
        timekeeper: Starts, moves and schedules the cases' clocks.
        services: What guards and effects may use (routing, directory, calendar).
    """

    def __init__(self, workflow: Workflow, timekeeper: Timekeeper, services: Services) -> None:
        self._workflow = workflow
        self._machine = CompiledMachine(workflow)
        self._timekeeper = timekeeper
        self._services = services
        self._seals = workflow.retention is not None
        self._scheduled: tuple[Case, datetime | None] | None = None  # the last write's

    def open(
        self,
        tx: CaseTransaction,
        report: inputs.NewReport,
        contact: ReporterContact | None,
        now: datetime,
    ) -> Case:
        """Add the case a checked report opens, with its first event, timers and messages.

        Raises:
            UnknownCode: the category or area is not in the configured catalogue or
                directory.
        """
        self.check_codes(
            {"category": report.category, "location.area": report.location.area}, "report"
        )
        case, event = open_case(self._workflow, self._timekeeper, report, now)
        event = self.sealed(event)
        tx.add_case(case, contact, event, next_timer_at=self._timekeeper.next_timer_at(case))
        self._save_side_effects(tx, case, event)
        return case

    def fire(
        self,
        tx: CaseTransaction,
        case: Case,
        trigger: str,
        *,
        by: Actor,
        payload: Mapping[str, object],
        now: datetime,
        role: str | None = None,
        claim: TimerClaim | None = None,
    ) -> Case:
        """Fire ``trigger`` on ``case`` as ``by`` and write the result.

        Args:
            role: The role to fire as without asking who ``by`` is (the engine's own
                actions, such as a clock's expiry); by default ``by`` must hold one of
                the roles that may fire the transition.
            claim: A ticker's claim on the case, checked and ended by the write.

        Raises:
            TransitionNotAllowed: ``trigger`` is not declared from the case's state.
            PermissionDenied: ``by`` holds none of the roles that may fire it.
            ValidationError: the payload is malformed; the error names each field.
            GuardRejected: a guard refused, with its reason.
            ConcurrentModification: another writer changed the case first.
            LeaseLost: ``claim`` no longer holds the case.
        """

        masters: list[Case] = []

        def admit(transition: TransitionSpec) -> tuple[Context, str]:
            held = role if role is not None else self.authorise(case, transition, by)
            checked = inputs.payload(transition, dict(payload), channel=case.channel)
            self.check_codes(
                {"category": _as_code(checked.get(transition.sets.get("category", "")))},
                f"payload of {transition.name!r}",
            )
            ctx = Context(case, by, checked, now, transition, self._services)
            check_guards(ctx, self._workflow)
            if transition.merges_into is not None:
                target = checked[transition.merges_into]
                masters.append(self._merge_target(tx, case, str(target), by))
            return ctx, held

        firing = self._machine.fire(case, trigger, admit)
        new, event = apply_transition(
            self._workflow,
            self._timekeeper,
            firing.ctx,
            firing.state,
            role=firing.role,
            prev_hash=audit.chain_head(tx, case.id),
        )
        event = self.sealed(event)
        self._update(tx, new, case.version, event, claim)
        self._save_side_effects(tx, new, event)
        for master in masters:
            self._add_duplicate(tx, master, new, by=by, role=firing.role, now=now)
        if new.duplicates and self._workflow.state(new.state).final:
            self._tell_duplicates(tx, new, now)
        return new

    def _merge_target(self, tx: CaseTransaction, case: Case, target: str, by: Actor) -> Case:
        """The open case ``case`` may be merged into.

        Raises:
            MergeRefused: ``case`` has duplicates of its own (their reporters follow it
                and are told its outcome, so it stays a master), or ``target`` does not
                exist (or ``by`` may not see it), is the case itself, is itself merged,
                or is final.
        """
        if case.duplicates:
            named = ", ".join(repr(entry.case) for entry in case.duplicates)
            raise MergeRefused(
                case.id,
                target,
                f"it is the master of {named}, whose reporters follow it; merge {target!r} "
                "into it instead, or handle both",
            )
        if target == case.id:
            raise MergeRefused(case.id, target, "it is the case itself")
        master = tx.get_case(target)
        if master is None or master.workflow != case.workflow:
            raise MergeRefused(case.id, target, "no such case")
        if not can_see(self._workflow, master, by):
            raise MergeRefused(case.id, target, "no such case")
        if master.merged_into is not None:
            raise MergeRefused(case.id, target, f"it is merged into {master.merged_into!r}")
        if self._workflow.state(master.state).final:
            raise MergeRefused(case.id, target, f"it is {master.state!r}, no longer open")
        return master

    def _add_duplicate(
        self,
        tx: CaseTransaction,
        master: Case,
        duplicate: Case,
        *,
        by: Actor,
        role: str,
        now: datetime,
    ) -> None:
        """Record on ``master`` that ``duplicate`` was merged into it (its own event)."""
        entry = Duplicate(case=duplicate.id, reporter=duplicate.reporter_id, at=now)
        new, event = record(
            master,
            replaced(master, {"duplicates": (*master.duplicates, entry)}),
            actor=by.id,
            now=now,
            payload={"duplicate": duplicate.id},
            trigger=EngineTrigger.DUPLICATE.value,
            role=role,
            reason=None,
            prev_hash=audit.chain_head(tx, master.id),
        )
        event = self.sealed(event)
        self._update(tx, new, master.version, event)
        self._save_side_effects(tx, new, event)

    def _tell_duplicates(self, tx: CaseTransaction, master: Case, now: datetime) -> None:
        """Record on each duplicate of ``master``, now final, the outcome it reached (the
        duplicate's reporter is told by the workflow's rules for ``master_closed``)."""
        for entry in master.duplicates:
            duplicate = tx.get_case(entry.case)
            if duplicate is None:
                continue
            attributes = {**duplicate.attributes, "master_outcome": master.state}
            new, event = record(
                duplicate,
                replaced(duplicate, {"attributes": attributes}),
                actor=SYSTEM.id,
                now=now,
                payload={"master": master.id, "outcome": master.state},
                trigger=EngineTrigger.MASTER_CLOSED.value,
                role="system",
                reason=None,
                prev_hash=audit.chain_head(tx, duplicate.id),
            )
            event = self.sealed(event)
            self._update(tx, new, duplicate.version, event)
            self._save_side_effects(tx, new, event)

    def mark(
        self,
        tx: CaseTransaction,
        case: Case,
        *,
        trigger: str,
        updates: Mapping[str, object],
        payload: Mapping[str, JSON],
        now: datetime,
        notify: tuple[str, ...] = (),
        claim: TimerClaim | None = None,
    ) -> Case:
        """Record a change the engine makes on its own (a warning, a breach, an
        escalation) as the system, with ``notify`` added to the recipients of its rules
        (``claim``: a ticker's claim on the case, checked and ended by the write)."""
        new, event = record(
            case,
            replaced(case, dict(updates)),
            actor=SYSTEM.id,
            now=now,
            payload=payload,
            trigger=trigger,
            role="system",
            reason=None,
            prev_hash=audit.chain_head(tx, case.id),
        )
        event = self.sealed(event)
        self._update(tx, new, case.version, event, claim)
        self._save_side_effects(tx, new, event, notify)
        return new

    def purge(
        self,
        tx: CaseTransaction,
        case: Case,
        kinds: tuple[str, ...],
        *,
        rule: str,
        by: Actor,
        role: str,
        now: datetime,
    ) -> Case:
        """Record on ``case`` that its personal data of these kinds is erased under
        ``rule``: the case's copy is replaced (see :func:`personal.erased_case`) and a
        ``purged`` event names the kinds and the rule, never the data. The case's
        ``updated_at`` stays: erasing data is not handling the case."""
        erased = personal.erased_case(case, kinds, self._workflow)
        new = replaced(erased, {"version": case.version + 1})
        event = audit.seal(
            case_id=case.id,
            seq=new.version,
            at=now,
            actor=by.id,
            role=role,
            trigger=EngineTrigger.PURGED.value,
            from_state=case.state,
            to_state=case.state,
            payload={"data": list(kinds), "rule": rule},
            reason=None,
            changes=audit.changes(case, new),
            prev_hash=audit.chain_head(tx, case.id),
            written_at_once=True,
        )
        self._update(tx, new, case.version, event)
        self._save_side_effects(tx, new, event)
        return new

    def sealed(self, event: AuditEvent) -> AuditEvent:
        """``event`` with its personal fields sealed when the workflow has a retention
        policy (see :mod:`closedloop.engine.personal`); as it is otherwise."""
        return personal.sealed(self._workflow, event) if self._seals else event

    def check_codes(self, codes: Mapping[str, str | None], subject: str) -> None:
        """Refuse codes the catalogue (the list's) or the directory does not list.

        Raises:
            UnknownCode: a code is not listed, with the closest valid ones.
        """
        duties = self._services.responsibilities
        catalog = duties.categories if duties is not None else None
        directory = self._services.directory
        inputs.known_codes(
            codes,
            categories=catalog.codes() if catalog is not None else None,
            areas=directory.areas() if directory is not None else None,
            subject=subject,
        )

    def authorise(self, case: Case, transition: TransitionSpec, actor: Actor) -> str:
        """The role ``actor`` fires ``transition`` as on ``case``: the first of the roles
        that may fire it (for the case's counters) that the actor holds.

        A member of the case's lead unit or a co-unit never fires it through a role the
        transition's ``not_party`` rules bar to parties.

        Raises:
            ConflictOfInterest: the actor holds such a role but is party to the case.
            PermissionDenied: the actor holds none of them.
        """
        roles = self._workflow.roles_for(transition, case.counters)
        usable, barred = usable_roles(self._workflow, case, actor, transition)
        role = next((r for r in roles if r in usable), None)
        if role is None:
            if not barred.isdisjoint(roles):
                units = party_units(case, actor)
                raise ConflictOfInterest(case.id, transition.name, actor.id, roles, units)
            raise PermissionDenied(case.id, transition.name, actor.id, roles)
        return role

    def allowed(self, case: Case, actor: Actor, now: datetime) -> tuple[str, ...]:
        """The triggers ``actor`` may fire on ``case`` at ``now`` (roles and guards pass).

        No payload exists yet, so each guard runs with an empty one. A guard that
        refuses after looking for one of the trigger's own ``fields`` is not decided
        until the actor fills them in (``dispatch`` refuses no ``unit`` only while no
        responsibility list names one): such a trigger is offered, and the guard
        decides when it is fired.
        """
        result = []
        for transition in self._workflow.transitions_from(case.state):
            usable, _ = usable_roles(self._workflow, case, actor, transition)
            if usable.isdisjoint(self._workflow.roles_for(transition, case.counters)):
                continue
            if all(
                self._undecided_or_passes(g, case, actor, now, transition)
                for g in transition.guards
            ):
                result.append(transition.name)
        return tuple(result)

    def _undecided_or_passes(
        self, guard: str, case: Case, actor: Actor, now: datetime, transition: TransitionSpec
    ) -> bool:
        payload = _Unfilled()
        ctx = Context(case, actor, payload, now, transition, self._services)
        if self._workflow.registry.guard(guard)(ctx) is None:
            return True
        return not payload.looked_for.isdisjoint(transition.fields)

    def _update(
        self,
        tx: CaseTransaction,
        case: Case,
        expected: int,
        event: AuditEvent,
        claim: TimerClaim | None = None,
    ) -> None:
        """Store the new version of a case with its event and its timers' earliest instant."""
        next_at = self._timekeeper.next_timer_at(case)
        tx.update_case(case, expected, event, next_timer_at=next_at, claim=claim)
        self._scheduled = (case, next_at)

    def next_timer_at(self, case: Case) -> datetime | None:
        """The earliest instant of ``case``'s timers: as the last write stored it when
        ``case`` is the case it wrote (a tick asks after each timer), derived otherwise."""
        last = self._scheduled
        if last is not None and last[0] is case:
            return last[1]
        return self._timekeeper.next_timer_at(case)

    def _save_side_effects(
        self, tx: CaseTransaction, case: Case, event: AuditEvent, notify: tuple[str, ...] = ()
    ) -> None:
        """Write the notifications the case's change calls for."""
        duties = self._services.responsibilities
        tx.add_outbox(
            notifications.messages(
                self._workflow,
                case,
                event,
                now=event.at,
                directory=self._services.directory,
                categories=duties.categories if duties is not None else None,
                extra_targets=notify,
                zone=self._display_zone(case),
            )
        )

    def _display_zone(self, case: Case) -> tzinfo:
        """The zone of the case's calendar, to show its due time in (UTC if it has none)."""
        return self._timekeeper.calendar(case.deadline.calendar if case.deadline else None).timezone


class _Unfilled(Mapping[str, Any]):
    """The empty payload of a trigger not yet filled in; it notes the keys a guard
    looked for."""

    def __init__(self) -> None:
        self.looked_for: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.looked_for.add(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.looked_for.add(key)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _as_code(value: object) -> str | None:
    return value if isinstance(value, str) else None
