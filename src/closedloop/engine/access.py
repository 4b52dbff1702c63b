"""Who an actor is to a case: the roles they hold on it, and what they may see."""

from __future__ import annotations

from closedloop.engine.definition import TransitionSpec, Workflow
from closedloop.engine.model import Actor, Case, ReporterContact
from closedloop.engine.privacy import masked


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
