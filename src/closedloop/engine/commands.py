"""Pure command logic: from a case and a command to the next case and its audit event.

Nothing here reads a store or a clock; :mod:`closedloop.engine.writer` supplies the
case, the time, the actor and the destination the machine chose, and persists what
comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Annotated, Any, TypeGuard, cast

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from closedloop.engine import audit
from closedloop.engine.context import Context
from closedloop.engine.deadlines import Timekeeper
from closedloop.engine.definition import TransitionSpec, Workflow
from closedloop.engine.inputs import NewReport
from closedloop.engine.kinds import EngineTrigger
from closedloop.engine.model import JSON, AuditEvent, Case, given, replaced
from closedloop.engine.validation import SETTABLE_FIELDS
from closedloop.errors import GuardRejected


def open_case(
    workflow: Workflow, timekeeper: Timekeeper, report: NewReport, now: datetime
) -> tuple[Case, AuditEvent]:
    """The first version of a case, its clock started, and its ``report`` event."""
    initial = workflow.initial
    case = Case(
        id=report.case_id,
        workflow=workflow.name,
        state=initial.name,
        version=1,
        reported_at=now,
        updated_at=now,
        reporter_id=report.reporter.id,
        channel=report.channel,
        description=report.description,
        location=report.location,
        category=report.category,
        waiting_on=initial.owner,
    )
    case = replaced(case, {"deadline": timekeeper.start(case, now)})
    event = audit.seal(
        case_id=case.id,
        seq=1,
        at=now,
        actor=report.reporter.id,
        role="reporter",
        trigger=EngineTrigger.REPORT.value,
        from_state=None,
        to_state=case.state,
        payload=media_payload(report),
        reason=None,
        changes=audit.changes(None, case),
        prev_hash=audit.GENESIS,
        written_at_once=True,
    )
    return case, event


def media_payload(report: NewReport) -> dict[str, JSON]:
    """The payload of a report's event: its media references, when it has any (a report
    without them keeps the empty payload reports always had)."""
    if not report.media:
        return {}
    return {"media": [ref.model_dump(exclude_none=True) for ref in report.media]}


def check_guards(ctx: Context, workflow: Workflow) -> None:
    """Run the transition's guards in order.

    Raises:
        GuardRejected: the first guard that refuses, with its reason.
    """
    for name in ctx.transition.guards:
        refusal = workflow.registry.guard(name)(ctx)
        if refusal is not None:
            raise GuardRejected(ctx.case.id, ctx.case.state, ctx.transition.name, name, refusal)


def apply_transition(
    workflow: Workflow,
    timekeeper: Timekeeper,
    ctx: Context,
    dest: str,
    *,
    role: str,
    prev_hash: str,
) -> tuple[Case, AuditEvent]:
    """The case after ``ctx.transition`` has taken it to ``dest`` (the destination the
    machine chose), and the audit event that records it."""
    case, transition = ctx.case, ctx.transition
    update: dict[str, Any] = {
        "state": dest,
        "waiting_on": workflow.state(dest).owner,
        **_updates(workflow, ctx),
    }
    if transition.merges_into is not None:
        update["merged_into"] = ctx.payload[transition.merges_into]
    new = changed(case, update)
    # ``new`` is this command's own copy, held by nobody else: its clock is set in place.
    new = given(new, "deadline", timekeeper.after(case, new, transition, ctx.now))
    new = timekeeper.subtask_clocks(new)
    reason = ctx.payload.get("reason")
    return record(
        case,
        new,
        actor=ctx.actor.id,
        now=ctx.now,
        payload=ctx.payload,
        trigger=transition.name,
        role=role,
        reason=reason if isinstance(reason, str) else None,
        prev_hash=prev_hash,
    )


def changed(case: Case, update: Mapping[str, object]) -> Case:
    """``case`` with the fields in ``update`` validated and replaced, as
    ``Case.model_validate`` makes it from the whole case (records keep what they were
    given); only the updated fields are validated, the others are valid already.

    Raises:
        pydantic.ValidationError: an updated value is not valid for its field, as
            validating the whole case reports it.
    """
    try:
        checked = {name: _field_validator(name)(v) for name, v in update.items()}
    except (PydanticValidationError, KeyError):
        Case.model_validate({**dict(case), **update})  # raises, naming the field
        raise
    return replaced(case, checked)


@cache
def _field_validator(name: str) -> Callable[[object], object]:
    """Validates one field of :class:`Case` as the model does (its adapter's validator,
    called without the adapter's own step for its options, none of which is used)."""
    info = Case.model_fields[name]
    form: object = info.annotation
    if info.metadata:
        form = Annotated[(info.annotation, *info.metadata)]
    validate: Callable[[object], object] = TypeAdapter(
        cast("type[object]", form)
    ).validator.validate_python
    if info.metadata:
        return validate
    # The values a command most often sets are of the exact types validation keeps:
    # they are given as validation gives them (the same text, a dict's shallow copy)
    # without calling it; any other value is validated.
    if form is str:
        return lambda value: value if type(value) is str else validate(value)
    if form == str | None:
        return lambda value: value if value is None or type(value) is str else validate(value)
    if form == dict[str, Any]:
        return lambda value: dict(value) if _text_keys(value) else validate(value)
    if form == dict[str, int]:
        return lambda value: dict(value) if _counts(value) else validate(value)
    return validate


def _text_keys(value: object) -> TypeGuard[dict[str, Any]]:
    """Whether ``value`` is a dict whose keys are all exactly text."""
    return type(value) is dict and all(type(key) is str for key in value)


def _counts(value: object) -> TypeGuard[dict[str, int]]:
    """Whether ``value`` is a dict of text keys to exact integers (``True`` is not one:
    validation makes it ``1``)."""
    return type(value) is dict and all(
        type(key) is str and type(item) is int for key, item in value.items()
    )


def record(
    old: Case,
    new: Case,
    *,
    actor: str,
    now: datetime,
    payload: Mapping[str, JSON],
    trigger: str,
    role: str,
    reason: str | None,
    prev_hash: str,
) -> tuple[Case, AuditEvent]:
    """Give ``new`` the next version and time, and seal the event that records the change.

    ``new`` is a copy made for this change that nobody else holds yet (every caller
    makes it from ``old`` a moment before): its version and time are set in place.
    """
    new = given(given(new, "version", old.version + 1), "updated_at", now)
    event = audit.seal(
        case_id=old.id,
        seq=new.version,
        at=now,
        actor=actor,
        role=role,
        trigger=trigger,
        from_state=old.state,
        to_state=new.state,
        payload=dict(payload),
        reason=reason,
        changes=audit.changes(old, new),
        prev_hash=prev_hash,
        written_at_once=True,
    )
    return new, event


def _updates(workflow: Workflow, ctx: Context) -> dict[str, Any]:
    transition: TransitionSpec = ctx.transition
    pending: dict[str, JSON] = {}
    for target, field in transition.sets.items():
        if field in ctx.payload:
            pending[target] = ctx.payload[field]
    pending.update(transition.marks)
    for name in transition.effects:
        pending.update(workflow.registry.effect(name)(ctx))
    return _split(ctx.case, pending, transition.counts)


_SEQUENCES = frozenset({"co_units", "subtasks", "misdirects", "duplicates"})
"""Case fields holding a sequence: ``None`` (a cleared mark) leaves it empty."""


def _split(case: Case, pending: Mapping[str, JSON], counts: tuple[str, ...]) -> dict[str, Any]:
    """Route updates to case fields or attributes; ``None`` removes an attribute."""
    update: dict[str, Any] = {}
    attributes = dict(case.attributes)
    for target, value in pending.items():
        if target in SETTABLE_FIELDS:
            update[target] = tuple(value or ()) if target in _SEQUENCES else value
        elif value is None:
            attributes.pop(target, None)
        else:
            attributes[target] = value
    counters = dict(case.counters)
    for name in counts:
        counters[name] = counters.get(name, 0) + 1
    update["attributes"] = attributes
    update["counters"] = counters
    return update
