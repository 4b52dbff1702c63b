"""Who an actor is to a case: the roles they hold on it, and what they may see."""

from __future__ import annotations

from typing import Any

from closedloop.engine.definition import RoleKind, TransitionSpec, Workflow
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
    return _shown(case, viewer, shown, reporters=sees_reporters(workflow, held))


def _shown(
    case: Case, viewer: Actor, contact: ReporterContact | None, *, reporters: bool
) -> dict[str, Any]:
    """:func:`shown_with`, given the contact data as the viewer may see it and whether
    they see other reporters (:func:`sees_reporters`)."""
    if reporters:
        return {"contact": contact}
    update: dict[str, Any] = {"contact": contact}
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


class Viewing:
    """What one viewer is shown of each case of a page, as :func:`roles_on`,
    :func:`sees_through` and :func:`shown_with` work it out, with what depends only on
    how the viewer relates to a case (its reporter, a member of its lead unit, of a
    co-unit) worked out once per relation: the roles held, whether they see the case,
    its contact data in full, its other reporters. A page's cases mostly share one
    relation; per case there are three comparisons left, and a case merged into by
    reports is checked against the viewer's own."""

    __slots__ = ("_by_relation", "_names", "_own", "_viewer", "_workflow")

    def __init__(self, workflow: Workflow, viewer: Actor) -> None:
        self._workflow = workflow
        self._viewer = viewer
        self._names = workflow.role_names
        self._own = self._names["global"] & viewer.roles
        self._by_relation: dict[
            tuple[bool, bool, bool], tuple[frozenset[str], bool, bool, bool]
        ] = {}

    def sees(self, case: Case) -> bool:
        """:func:`can_see`."""
        viewer = self._viewer
        return self.relation(case)[1] or any(d.reporter == viewer.id for d in case.duplicates)

    def shown(self, case: Case, contact: ReporterContact | None) -> dict[str, Any] | None:
        """:func:`shown_with` of ``case`` and its stored ``contact``, or ``None`` when the
        viewer may not see the case (:func:`can_see`)."""
        viewer = self._viewer
        # As relation() has it, looked up here: this runs for every case of a page, and
        # the fields are read as they are held (an attribute of a model costs more).
        fields, units = case.__dict__, viewer.units
        lead = fields["lead_unit"]
        key = (
            viewer.id == fields["reporter_id"],
            lead is not None and lead in units,
            not units.isdisjoint(fields["co_units"]),
        )
        found = self._by_relation.get(key)
        _, sees, full, reporters = self.relation(case) if found is None else found
        if not sees and not any(entry.reporter == viewer.id for entry in case.duplicates):
            return None
        if contact is not None and not full:
            contact = masked(contact)
        if reporters:
            return {"contact": contact}
        return _shown(case, viewer, contact, reporters=False)

    def relation(self, case: Case) -> tuple[frozenset[str], bool, bool, bool]:
        """The roles the viewer holds on ``case`` (:func:`roles_on`); whether they see
        it through them (:func:`sees_through` but for its duplicates); whether they are
        shown its contact data in full (:func:`contact_as`) and its other reporters
        (:func:`sees_reporters`)."""
        viewer = self._viewer
        lead = case.lead_unit
        key = (
            viewer.id == case.reporter_id,
            lead is not None and lead in viewer.units,
            not viewer.units.isdisjoint(case.co_units),
        )
        found = self._by_relation.get(key)
        if found is None:
            names, workflow = self._names, self._workflow
            held = self._own
            kinds: tuple[RoleKind, ...] = ("reporter", "lead_unit", "co_unit")
            for related, kind in zip(key, kinds, strict=True):
                if related:
                    held = held | names[kind]
            sees = any(
                workflow.role(name).kind != "global" or workflow.role(name).sees_all
                for name in held
            )
            full = bool(held & workflow.full_contact_roles)
            found = (held, sees, full, sees_reporters(workflow, held))
            self._by_relation[key] = found
        return found
