"""The one path that writes a change to a case: :class:`CaseWriter`.

Every change goes through it inside the caller's transaction, whoever asked for it:
a report (``Engine.report``), a trigger (``Engine.trigger``), a timer that fires
(the sweep behind ``Engine.tick``). For a trigger the writer hands the command to the
compiled machine, which refuses a trigger not declared from the case's state, has the
writer admit the command (authorisation, payload, guards) and chooses the destination;
the writer then computes the new case and its sealed audit event, stores both with
an optimistic version check, reschedules the case's timers and queues the
notifications the change calls for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo

from closedloop.engine import audit, inputs, notifications
from closedloop.engine.access import roles_on
from closedloop.engine.commands import apply_transition, check_guards, open_case, record
from closedloop.engine.context import Context, Services
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import TransitionSpec, Workflow
from closedloop.engine.machine import CompiledMachine
from closedloop.engine.model import JSON, SYSTEM, Actor, AuditEvent, Case, ReporterContact
from closedloop.engine.ports import CaseTransaction
from closedloop.errors import PermissionDenied


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
        tx.add_case(case, contact, event)
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
    ) -> Case:
        """Fire ``trigger`` on ``case`` as ``by`` and write the result.

        Args:
            role: The role to fire as without asking who ``by`` is (the engine's own
                actions, such as a clock's expiry); by default ``by`` must hold one of
                the roles that may fire the transition.

        Raises:
            TransitionNotAllowed: ``trigger`` is not declared from the case's state.
            PermissionDenied: ``by`` holds none of the roles that may fire it.
            ValidationError: the payload is malformed; the error names each field.
            GuardRejected: a guard refused, with its reason.
            ConcurrentModification: another writer changed the case first.
        """

        def admit(transition: TransitionSpec) -> tuple[Context, str]:
            held = role if role is not None else self.authorise(case, transition, by)
            checked = inputs.payload(transition, dict(payload))
            self.check_codes(
                {"category": _as_code(checked.get(transition.sets.get("category", "")))},
                f"payload of {transition.name!r}",
            )
            ctx = Context(case, by, checked, now, transition, self._services)
            check_guards(ctx, self._workflow)
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
        tx.update_case(new, case.version, event)
        self._save_side_effects(tx, new, event)
        return new

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
    ) -> Case:
        """Record a change the engine makes on its own (a warning, a breach, an
        escalation) as the system, with ``notify`` added to the recipients of its rules."""
        new, event = record(
            case,
            case.model_copy(update=dict(updates)),
            actor=SYSTEM.id,
            now=now,
            payload=payload,
            trigger=trigger,
            role="system",
            reason=None,
            prev_hash=audit.chain_head(tx, case.id),
        )
        tx.update_case(new, case.version, event)
        self._save_side_effects(tx, new, event, notify)
        return new

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

        Raises:
            PermissionDenied: the actor holds none of them.
        """
        roles = self._workflow.roles_for(transition, case.counters)
        held = roles_on(self._workflow, case, actor)
        role = next((r for r in roles if r in held), None)
        if role is None:
            raise PermissionDenied(case.id, transition.name, actor.id, roles)
        return role

    def allowed(self, case: Case, actor: Actor, now: datetime) -> tuple[str, ...]:
        """The triggers ``actor`` may fire on ``case`` at ``now`` (roles and guards pass)."""
        held = roles_on(self._workflow, case, actor)
        result = []
        for transition in self._workflow.transitions_from(case.state):
            if held.isdisjoint(self._workflow.roles_for(transition, case.counters)):
                continue
            ctx = Context(case, actor, {}, now, transition, self._services)
            if all(self._workflow.registry.guard(g)(ctx) is None for g in transition.guards):
                result.append(transition.name)
        return tuple(result)

    def _save_side_effects(
        self, tx: CaseTransaction, case: Case, event: AuditEvent, notify: tuple[str, ...] = ()
    ) -> None:
        """Reschedule the case's timers and write the notifications its change calls for."""
        tx.replace_due_points(case.id, self._timekeeper.due_points(case))
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


def _as_code(value: object) -> str | None:
    return value if isinstance(value, str) else None
