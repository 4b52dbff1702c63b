"""Notification rules: which event tells whom, through which channel, in which words.

A workflow's ``notifications`` rules are turned into outbox messages in the same
transaction as the change that caused them, so a message exists if and only if the
change committed. Texts are rendered with ``string.Template`` (no code execution);
a template in ``html`` format has every value HTML-escaped. A reporter's contact data
is never rendered or stored: the ``reporter`` recipient is resolved when delivering.

Recipients (``to``): ``lead_unit``, ``co_units``, ``supervising_unit`` (from the
case's routing), ``parent_unit`` (the lead unit's parent in the directory),
``reporter``, ``subtask_unit`` (the co-unit whose subtask a ``subtask_*`` event is
about), or ``role:<name>``. An escalation rung's ``notify`` adds to the recipients of
the rules for ``escalate`` and ``subtask_escalate``.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from string import Template
from typing import Any

from closedloop.engine.definition import NotificationRule, Workflow
from closedloop.engine.kinds import SUBTASK_TRIGGERS, EngineTrigger
from closedloop.engine.model import AuditEvent, Case
from closedloop.engine.ports import MessageBody, OutboxMessage
from closedloop.errors import ClosedLoopError


def messages(
    workflow: Workflow,
    case: Case,
    event: AuditEvent,
    *,
    now: datetime,
    directory: Any = None,
    categories: Any = None,
    extra_targets: Sequence[str] = (),
    zone: tzinfo = UTC,
) -> list[OutboxMessage]:
    """The outbox messages that ``event`` on ``case`` calls for, by the workflow's rules.

    ``${due_at}`` in a text shows the due time to the minute in ``zone`` (the zone of
    the case's calendar), with the zone's name; the message's ``data`` keeps the exact
    instant in ISO 8601.
    """
    result: list[OutboxMessage] = []
    values: dict[str, str] | None = None
    for index, rule in workflow.notifications_on(event.trigger):
        escalating = event.trigger in (EngineTrigger.ESCALATE, EngineTrigger.SUBTASK_ESCALATE)
        targets = [*rule.to, *(extra_targets if escalating else ())]
        for recipient in dict.fromkeys(_recipients(case, event, targets, directory)):
            values = values or _values(case, event, categories, zone)  # only when sent
            result.append(_message(workflow, rule, index, case, event, recipient, values, now))
    return result


def _message(
    workflow: Workflow,
    rule: NotificationRule,
    index: int,
    case: Case,
    event: AuditEvent,
    recipient: str,
    values: Mapping[str, str],
    now: datetime,
) -> OutboxMessage:
    spec = workflow.templates[rule.template]
    shown = {k: html.escape(v) for k, v in values.items()} if spec.format == "html" else values
    return OutboxMessage(
        id=f"{case.id}/{event.seq}/{index}/{recipient}",
        case_id=case.id,
        event=event.trigger,
        channel=rule.channel,
        recipient=recipient,
        payload=MessageBody(
            subject=_substituted(spec.subject, values),  # a header: never HTML
            body=_substituted(spec.body, shown),
            format=spec.format,
            data={
                **{k: values[k] for k in ("case_id", "event", "state", "seq")},
                "due_at": values["due_instant"],
            },
        ).to_payload(),
        next_attempt_at=now,
        created_at=now,
    )


def _substituted(text: str, values: Mapping[str, str]) -> str:
    """``Template(text).substitute(values)``, from the template's parts found once."""
    parts = _parts(text)
    if parts is None:  # not a valid template: substitute says why
        return Template(text).substitute(values)
    pieces, tail = parts
    return "".join([literal + str(values[name]) for literal, name in pieces]) + tail


@lru_cache(maxsize=256)
def _parts(text: str) -> tuple[tuple[tuple[str, str], ...], str] | None:
    """The template's text before each of its names, in order, and the text after the
    last, as ``Template.substitute`` reads them (``$$`` a dollar sign); ``None`` when it
    has an invalid placeholder."""
    pieces: list[tuple[str, str]] = []
    literal, last = "", 0
    for match in Template.pattern.finditer(text):
        literal += text[last : match.start()]
        last = match.end()
        name = match.group("named") or match.group("braced")
        if name is not None:
            pieces.append((literal, name))
            literal = ""
        elif match.group("escaped") is not None:
            literal += Template.delimiter
        else:
            return None
    return tuple(pieces), literal + text[last:]


def _recipients(
    case: Case, event: AuditEvent, targets: Sequence[str], directory: Any
) -> Iterator[str]:
    supervising = case.routing.supervising_unit if case.routing is not None else None
    for target in targets:
        if target == "lead_unit" and case.lead_unit:
            yield f"unit:{case.lead_unit}"
        elif target == "subtask_unit" and isinstance(event.payload.get("unit"), str):
            if event.trigger in SUBTASK_TRIGGERS:
                yield f"unit:{event.payload['unit']}"
        elif target == "co_units":
            yield from (f"unit:{unit}" for unit in case.co_units)
        elif target == "supervising_unit" and supervising:
            yield f"unit:{supervising}"
        elif target == "parent_unit" and case.lead_unit and directory is not None:
            parent = _parent(directory, case.lead_unit)
            if parent:
                yield f"unit:{parent}"
        elif target == "reporter":
            yield "reporter"
        elif target.startswith("role:"):
            yield target


def _parent(directory: Any, unit: str) -> str | None:
    try:
        parent: str | None = directory.unit(unit).parent
    except ClosedLoopError:
        return None
    return parent


def _values(case: Case, event: AuditEvent, categories: Any, zone: tzinfo) -> dict[str, str]:
    deadline = case.deadline
    name = ""
    if categories is not None and case.category is not None:
        try:
            name = str(categories.get(case.category).name)
        except ClosedLoopError:
            name = ""
    raw: dict[str, Any] = {
        "case_id": case.id,
        "event": event.trigger,
        "state": case.state,
        "category": case.category,
        "category_name": name or case.category,
        "urgency": case.urgency,
        "description": case.description,
        "address": case.location.address,
        "area": case.location.area,
        "lead_unit": case.lead_unit,
        "actor": event.actor,
        "reason": event.reason,
        "due_at": None,
        "due_instant": (
            deadline.due_at.isoformat()
            if deadline and event.trigger not in SUBTASK_TRIGGERS
            else event.payload.get("subtask_due_at", event.payload.get("due_at"))
        ),
        "unit": event.payload.get("unit") if event.trigger in SUBTASK_TRIGGERS else None,
        "level": event.payload.get("level"),
        "seq": event.seq,
        "merged_into": case.merged_into,
        "outcome": event.payload.get("outcome"),
    }
    if raw["due_instant"]:
        raw["due_at"] = _shown_instant(str(raw["due_instant"]), zone)
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def _shown_instant(text: str, zone: tzinfo) -> str:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return text  # not an instant (a host's own payload field): shown as given
    return local_minute(at, zone) if at.tzinfo is not None else text


def local_minute(at: datetime, zone: tzinfo) -> str:
    """``at`` as people read it: ``2026-11-23 17:30 (Asia/Shanghai)``."""
    name = getattr(zone, "key", None) or str(zone)
    return f"{at.astimezone(zone):%Y-%m-%d %H:%M} ({name})"
