"""Who an actor is to a case: the roles they hold on it, and what they may see."""

from __future__ import annotations

from typing import Any

from closedloop.engine.definition import TransitionSpec, Workflow
from closedloop.engine.model import Actor, AuditEvent, Case, ReporterContact
from closedloop.engine.privacy import masked

HIDDEN = "[hidden]"
"""What a citizen is shown in place of another reporter's id (see :func:`shown_as`)."""


def roles_on(workflow: Workflow, case: Case, actor: Actor) -> frozenset[str]:
    """The workflow roles ``actor`` holds with respect to ``case``."""
    names = workflow.role_names
    held = names["global"] & actor.roles
    if actor.id == case.reporter_id:
        held |= names["reporter"]
    if case.lead_unit is not None and case.lead_unit in actor.units:
        held |= names["lead_unit"]
    if not actor.units.isdisjoint(case.co_units):
        held |= names["co_unit"]
    return held


def party_units(case: Case, actor: Actor) -> frozenset[str]:
    """The units through which ``actor`` is party to ``case``: those of its units that
    are the case's lead unit or one of its co-units, or, while a routing dispute leaves
    the case without a lead unit, one of the units the list named for it."""
    units: set[str | None] = {case.lead_unit, *case.co_units}
    if case.lead_unit is None and case.routing is not None:
        units.update(case.routing.candidates)
    return frozenset(actor.units & units)


def usable_roles(
    workflow: Workflow, case: Case, actor: Actor, transition: TransitionSpec
) -> tuple[frozenset[str], frozenset[str]]:
    """The roles ``actor`` may fire ``transition`` through on ``case``, and those they
    hold but may not use because they are party to the case (its ``not_party`` rules)."""
    held = roles_on(workflow, case, actor)
    barred = workflow.barred_to_parties(transition) & held
    if not barred or not party_units(case, actor):
        return held, frozenset()
    return held - barred, barred


def can_see(workflow: Workflow, case: Case, actor: Actor) -> bool:
    """Whether ``actor`` may see ``case`` at all.

    Holders of a ``sees_all`` global role see every case; everyone else sees the cases
    they are related to (as reporter, lead unit or co-unit member), and the reporter of
    a duplicate sees the case it was merged into.
    """
    return sees_through(workflow, case, actor, roles_on(workflow, case, actor))


def sees_through(workflow: Workflow, case: Case, actor: Actor, held: frozenset[str]) -> bool:
    """:func:`can_see`, given the roles ``actor`` holds on ``case`` (:func:`roles_on`)."""
    if any((workflow.role(name).kind != "global") or workflow.role(name).sees_all for name in held):
        return True
    return any(duplicate.reporter == actor.id for duplicate in case.duplicates)


def contact_for(
    workflow: Workflow, case: Case, viewer: Actor, contact: ReporterContact | None
) -> ReporterContact | None:
    """The contact data as ``viewer`` may see it: in full or masked."""
    if contact is None:
        return None
    return contact_as(workflow, roles_on(workflow, case, viewer), contact)


def contact_as(
    workflow: Workflow, held: frozenset[str], contact: ReporterContact | None
) -> ReporterContact | None:
    """:func:`contact_for`, given the roles the viewer holds on the case."""
    if contact is None:
        return None
    return contact if held & workflow.full_contact_roles else masked(contact)


def sees_reporters(workflow: Workflow, held: frozenset[str]) -> bool:
    """Whether a viewer holding ``held`` on a case is shown who reported it and who
    reported its duplicates: a role that sees the case other than as its reporter (a
    ``sees_all`` global role, the lead unit, a co-unit). A citizen is not: they see
    their own reports, and a case their report was merged into, as themselves only."""
    for name in held:
        role = workflow.role(name)
        if role.sees_all or role.kind not in ("global", "reporter"):
            return True
    return False


def shown_as(
    workflow: Workflow, case: Case, viewer: Actor, contact: ReporterContact | None
) -> dict[str, Any]:
    """The fields of ``case`` that ``viewer`` is shown differently from the stored case:
    its ``contact`` in full or masked (:func:`contact_as`), and, to a viewer that does
    not see other reporters (:func:`sees_reporters`), no other reporter's identity: a
    case merged into by their report shows its ``reporter_id`` as ``[hidden]`` and no
    contact, and ``duplicates`` keeps only the viewer's own entries."""
    return shown_with(workflow, case, viewer, roles_on(workflow, case, viewer), contact)


def shown_with(
    workflow: Workflow,
    case: Case,
    viewer: Actor,
    held: frozenset[str],
    contact: ReporterContact | None,
) -> dict[str, Any]:
    """:func:`shown_as`, given the roles ``viewer`` holds on ``case``."""
    shown = contact_as(workflow, held, contact)
    if sees_reporters(workflow, held):
        return {"contact": shown}
    update: dict[str, Any] = {"contact": shown}
    if case.reporter_id != viewer.id:
        update["reporter_id"] = HIDDEN
        update["contact"] = None
    if any(entry.reporter != viewer.id for entry in case.duplicates):
        update["duplicates"] = tuple(e for e in case.duplicates if e.reporter == viewer.id)
    return update


def events_shown(
    workflow: Workflow, case: Case, viewer: Actor, events: list[AuditEvent]
) -> list[AuditEvent]:
    """The case's audit events as ``viewer`` is shown them: to a viewer that does not
    see other reporters (:func:`sees_reporters`), every other reporter's id (an event's
    ``actor``, the ``reporter_id`` and ``duplicates`` an event records) reads
    ``[hidden]`` or is left out, as :func:`shown_as` shows the case. The events so
    changed no longer hash to their ``hash``: :meth:`~closedloop.Engine.verify` checks
    the stored trail."""
    if sees_reporters(workflow, roles_on(workflow, case, viewer)):
        return events
    others = {case.reporter_id, *(entry.reporter for entry in case.duplicates)} - {viewer.id}
    return [_event_shown(event, others, viewer.id) for event in events]


def _event_shown(event: AuditEvent, others: set[str], own: str) -> AuditEvent:
    update: dict[str, Any] = {}
    if event.actor in others:
        update["actor"] = HIDDEN
    changes = event.changes
    if changes.get("reporter_id", own) != own:
        changes = {**changes, "reporter_id": HIDDEN}
    attributes = changes.get("attributes")
    if isinstance(attributes, dict) and isinstance(attributes.get("duplicates"), list):
        entries = [
            entry
            for entry in attributes["duplicates"]
            if isinstance(entry, dict) and entry.get("reporter") == own
        ]
        if entries != attributes["duplicates"]:
            changes = {**changes, "attributes": {**attributes, "duplicates": entries}}
    if changes is not event.changes:
        update["changes"] = changes
    return event.model_copy(update=update) if update else event
