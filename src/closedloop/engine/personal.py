"""Personal fields inside audit events: which they are, how events commit to them, and
how they are erased without breaking the hash chain.

A workflow with a ``retention`` policy seals the personal fields of every event it
writes: each is committed to by a salted digest (:class:`~closedloop.engine.model.Seal`)
kept beside the value, and the event's hash covers the digest instead of the value. A
purge replaces the value by :data:`REDACTED` and drops the salt: the digest stays, so
every hash in the trail still verifies, and nothing of the value is left to test
guesses against.

The kinds of personal data (:data:`KINDS`):

- ``contact``: the reporter's name, phone and email, kept apart from the trail;
- ``description``: the report's free-text description;
- ``location``: the report's street address (coordinates and the area code stay: they
  place the problem, and the metrics of repeated reports compare them);
- ``media``: references to photos and files (a report's or a payload's ``media``
  fields, and the case attributes a transition the reporter may fire sets from one);
- ``inputs``: the reporter's own words in later commands (the text fields and reason
  of transitions fired as the reporter, and the case attributes they set).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from closedloop.engine.audit import SEP, digest, event_hash, get, put
from closedloop.engine.model import JSON, AuditEvent, Case, Seal

if TYPE_CHECKING:
    from closedloop.engine.definition import Workflow
    from closedloop.engine.specs import TransitionSpec

Kind = Literal["contact", "description", "location", "media", "inputs"]
KINDS: tuple[Kind, ...] = ("contact", "description", "location", "media", "inputs")
"""Every kind of personal data a retention rule may name."""

REDACTED = "[purged]"
"""What a purged field holds afterwards."""


def personal_attributes(workflow: Workflow) -> dict[str, frozenset[Kind]]:
    """The case attributes that hold a reporter's words or files, with their kinds: those
    a transition the reporter may fire sets from one of its text fields (``inputs``) or
    media fields (``media``)."""
    reporters = {r.name for r in workflow.roles if r.kind == "reporter"}
    kinds: dict[str, set[Kind]] = {}
    for transition in workflow.transitions:
        if reporters.isdisjoint(workflow.roles_named(transition)):
            continue
        for target, source in transition.sets.items():
            kind = _field_kind(transition, source)
            if kind is not None:
                kinds.setdefault(target, set()).add(kind)
    return {name: frozenset(found) for name, found in kinds.items()}


def _field_kind(transition: TransitionSpec, name: str) -> Kind | None:
    spec = transition.fields.get(name)
    if spec is None:
        return None
    return "media" if spec.type == "media" else "inputs" if spec.type == "text" else None


def _attribute_kind(transition: TransitionSpec | None, name: str, kinds: frozenset[Kind]) -> Kind:
    """The kind of attribute ``name`` as ``transition`` sets it: that of the field it
    copies, else the attribute's own (``inputs`` when it is set from both kinds)."""
    source = None if transition is None else transition.sets.get(name)
    own = None if transition is None or source is None else _field_kind(transition, source)
    return own or ("inputs" if "inputs" in kinds else "media")


def personal_paths(workflow: Workflow, event: AuditEvent) -> dict[str, Kind]:
    """The path and kind of each personal field ``event`` holds (a value that is
    ``None`` holds nothing)."""
    found: dict[str, Kind] = {}
    changes = event.changes
    if changes.get("description") is not None:
        found[f"changes{SEP}description"] = "description"
    location = changes.get("location")
    if isinstance(location, dict) and location.get("address") is not None:
        found[f"changes{SEP}location{SEP}address"] = "location"
    attributes = changes.get("attributes")
    transition = _transition(workflow, event.trigger)
    if isinstance(attributes, dict):
        for name, kinds in personal_attributes(workflow).items():
            if attributes.get(name) is not None:
                kind = _attribute_kind(transition, name, kinds)
                found[f"changes{SEP}attributes{SEP}{name}"] = kind
    for name, value in event.payload.items():
        if value is None:
            continue
        spec = None if transition is None else transition.fields.get(name)
        if name == "media" or (spec is not None and spec.type == "media"):
            found[f"payload{SEP}{name}"] = "media"
        elif event.role == "reporter" and spec is not None and spec.type == "text":
            found[f"payload{SEP}{name}"] = "inputs"
    if event.role == "reporter" and event.reason is not None:
        found["reason"] = "inputs"
    return found


def _transition(workflow: Workflow, trigger: str) -> TransitionSpec | None:
    try:
        return workflow.transition(trigger)
    except KeyError:
        return None  # the report, or an engine event


def sealed(workflow: Workflow, event: AuditEvent) -> AuditEvent:
    """``event`` with its personal fields sealed and its hash computed again (the event
    as it is when it holds none)."""
    paths = personal_paths(workflow, event)
    if not paths:
        return event
    doc = _doc(event)
    seals: dict[str, Seal] = {}
    for path, kind in paths.items():
        salt = secrets.token_hex(16)
        seals[path] = Seal(kind=kind, digest=digest(salt, get(doc, path)), salt=salt)
    draft = event.model_copy(update={"sealed": seals})
    return draft.model_copy(update={"hash": event_hash(draft)})


def redacted(event: AuditEvent, kinds: Iterable[str]) -> AuditEvent:
    """``event`` with its sealed fields of these kinds erased: value replaced, salt
    dropped, digest and hash kept. The same event when it holds none."""
    wanted = set(kinds)
    due = {p: s for p, s in event.sealed.items() if s.kind in wanted and s.salt is not None}
    if not due:
        return event
    doc = _doc(event)
    seals = dict(event.sealed)
    for path, seal in due.items():
        put(doc, path, REDACTED)
        seals[path] = seal.model_copy(update={"salt": None})
    return AuditEvent.model_validate({**doc, "sealed": seals, "hash": event.hash})


def values_of(event: AuditEvent, kinds: Iterable[str]) -> list[JSON]:
    """The values of the still-unerased sealed fields of these kinds in ``event``."""
    wanted = set(kinds)
    doc = _doc(event)
    return [
        get(doc, path)
        for path, seal in event.sealed.items()
        if seal.kind in wanted and seal.salt is not None
    ]


def erased_case(case: Case, kinds: Iterable[str], workflow: Workflow) -> Case:
    """``case`` with the personal data of these kinds replaced, and the kinds noted in
    ``purged``."""
    wanted = set(kinds)
    purged = tuple(k for k in KINDS if k in wanted or k in case.purged)
    update: dict[str, object] = {"purged": purged}
    if "description" in wanted:
        update["description"] = REDACTED
    if "location" in wanted and case.location.address is not None:
        update["location"] = case.location.model_copy(update={"address": REDACTED})
    names = {n for n, k in personal_attributes(workflow).items() if k & wanted}
    if names:
        attributes = {
            k: (REDACTED if k in names and v is not None else v) for k, v in case.attributes.items()
        }
        update["attributes"] = attributes
    return case.model_copy(update=update)


def text_values(value: JSON) -> Iterable[str]:
    """Every text inside a JSON value (the strings a purged value leaves in other rows)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from text_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from text_values(item)


def _doc(event: AuditEvent) -> dict[str, JSON]:
    return event.model_dump(mode="json", exclude={"sealed"})
