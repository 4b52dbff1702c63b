"""The domain values: actors, cases, their reporters' contact data and audit events.

Everything here is an immutable value. A :class:`Case` is rebuilt from its
:class:`AuditEvent` records (see :mod:`closedloop.engine.audit`), so every field that
a transition can change is plain JSON-compatible data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from closedloop.engine.clock import utc
from closedloop.engine.durations import DurationText

JSON = Any
"""A JSON-compatible value (str, int, float, bool, None, list or dict of those)."""


def _utc(value: datetime) -> datetime:
    # Every instant of a case read back passes here (in pydantic's own UTC zone): the
    # checks of ``utc``, without its calls.
    zone = value.tzinfo
    if zone is UTC:
        return value
    if zone is not None and zone.utcoffset(value) is not None:
        return value.astimezone(UTC)
    return utc(value, "instant")  # NaiveDatetime is a ValueError: pydantic reports it


Instant = Annotated[datetime, AfterValidator(_utc)]
"""A timezone-aware datetime, kept in UTC (so hashes and stores agree on its text)."""

Stamp = Annotated[Instant, PlainSerializer(datetime.isoformat, return_type=str)]
"""An instant inside a case record, written as ``datetime.isoformat`` writes it."""


def printable(value: object, limit: int) -> bool:
    """Whether ``value`` is text of 1 to ``limit`` printable characters, valid in UTF-8."""
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value.isprintable()


PADDED = "begins or ends with whitespace or a line break; identifiers are matched exactly"


def _whole(value: str) -> str:
    if value != value.strip():
        raise ValueError(PADDED)
    return value


Ident = Annotated[str, Field(min_length=1), AfterValidator(_whole)]
"""An identifier (a unit's, a member's): matched exactly, so no whitespace at either end."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone (or something) acting on cases.

    Args:
        id: Stable identifier of the person or system, as the host knows it.
        roles: Global roles held, such as ``dispatcher`` or ``supervisor``.
        units: Units the actor belongs to; membership of a case's lead unit makes the
            actor its ``assignee``.
    """

    id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    units: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        from closedloop.errors import ValidationError

        if not printable(self.id, 200):
            raise ValidationError(
                [("actor.id", "must be 1 to 200 printable characters of valid Unicode")],
                subject="actor",
            )
        if self.id != self.id.strip():
            raise ValidationError([("actor.id", PADDED)], subject="actor")
        try:
            units = frozenset(self.units)
        except TypeError:
            raise ValidationError(
                [("actor.units", "must be a collection of unit ids")], subject="actor"
            ) from None
        padded = [u for u in units if not isinstance(u, str) or u != u.strip()]
        if padded:
            shown = min(padded, key=repr)
            raise ValidationError([("actor.units", f"{shown!r} {PADDED}")], subject="actor")
        # Accept any iterable of names but keep the value hashable and immutable.
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "units", units)


SYSTEM = Actor("system", roles=frozenset({"system"}))
"""The engine itself, when it acts on a timer (a breach, an auto-close)."""


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


V = TypeVar("V", bound=_Value)

_set = object.__setattr__
_new = object.__new__

M = TypeVar("M", bound=BaseModel)


def replaced(value: V, update: Mapping[str, Any]) -> V:
    """``value`` with the fields in ``update`` replaced, as ``model_copy(update=...)``
    makes it (the updated fields count as given; nothing is validated: the engine passes
    values of the fields' types), without its generic copying. ``update`` names fields
    of the model only."""
    fields = value.__dict__.copy()
    fields.update(update)
    extra = value.__pydantic_extra__
    return built(
        type(value),
        fields,
        None if extra is None else dict(extra),
        value.__pydantic_fields_set__ | update.keys(),
    )


class _Blank(BaseModel):
    """A model without fields whose attributes are set as a plain object's: the shape
    :func:`built` makes a value in before giving it its class."""

    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__


def built(
    kind: type[M], fields: dict[str, Any], extra: dict[str, Any] | None, given: set[str]
) -> M:
    """A ``kind`` holding ``fields``, ``extra`` fields and ``given`` as the fields given,
    as pydantic's constructors leave a model, nothing validated.

    A frozen model refuses plain assignment, and setting its four slots through
    ``object.__setattr__`` (a call through a slot wrapper) costs more than the rest of
    a copy together. So the value is made as a :class:`_Blank`, a model class of the
    very same layout whose attributes are set as a plain object's are, then given its
    class (``__class__`` assignment, which Python allows between classes of one
    layout). Should ``kind`` not share the layout (Python refuses the assignment), the
    slots are set one by one.
    """
    made = _new(_Blank)
    made.__dict__ = fields
    made.__pydantic_extra__ = extra
    made.__pydantic_fields_set__ = given
    made.__pydantic_private__ = None
    try:
        made.__class__ = kind  # type: ignore[assignment]
    except TypeError:  # not of the layout
        value = _new(kind)
        _set(value, "__dict__", fields)
        _set(value, "__pydantic_extra__", extra)
        _set(value, "__pydantic_fields_set__", given)
        _set(value, "__pydantic_private__", None)
        return value
    return made  # type: ignore[return-value]


def given(value: V, name: str, item: Any) -> V:
    """``value`` with its field ``name`` set to ``item`` in place, counted as given: for
    a copy made for one caller a moment ago, that nobody else holds (a frozen model is
    otherwise never changed). ``item`` is of the field's type; nothing is validated."""
    value.__dict__[name] = item
    value.__pydantic_fields_set__.add(name)
    return value


def assembled(kind: type[M], fields: dict[str, Any]) -> M:
    """A ``kind`` holding ``fields``, as ``kind.model_construct(**fields)`` makes it when
    ``fields`` gives every field of the model, in the model's order, each a value of its
    type (nothing is validated), without its generic work: for the values the engine
    makes many of (a tick's events, due points and claims). ``fields`` becomes the
    value's own."""
    return built(kind, fields, None, set(fields))


def _copy_extra(extra: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if extra is None else dict(extra)


class Location(_Value):
    """Where a report is about: an address, an area/grid code, coordinates."""

    address: str | None = None
    area: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    long: float | None = Field(default=None, ge=-180, le=180)


class ReporterContact(_Value):
    """Personal data of a reporter; stored apart from the case and masked when shown."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None


class MediaRef(_Value):
    """A reference to a photo, a recording or a file the host stores: where it is (a
    ``url`` or a storage ``key``, one of them), its ``content_type`` and the SHA-256
    ``sha256`` of its bytes, in lowercase hex. closedloop keeps references, never bytes;
    the digest is part of the hashed audit event, so a file swapped afterwards no
    longer matches the trail."""

    url: str | None = None
    key: str | None = None
    content_type: str
    sha256: str


Warning = Literal["none", "yellow", "red"]


class Deadline(_Value):
    """The clock of the state a case waits in, with its due and warning instants.

    ``paused_at`` is set while the clock is paused (awaiting information, suspended);
    ``paused_seconds`` is the counted time already spent paused, by which ``due_at``
    and ``warn_at`` have been moved. ``fallback_days`` are days the calendar answered by
    its fallback policy instead of holiday data.

    ``provisional`` is set when a due point of the clock (its warning, breach, next
    escalation rung or expiry) was counted over days the calendar has no holiday data
    for, Monday to Friday standing in; ``provisional_reason`` says which days.
    ``Engine.recompute_deadlines`` counts them again once the data is there. Both are
    written only when set, so deadlines stored before they existed read and hash the same.

    ``expired_at`` is set when the clock's expiry action led the case back into the
    state it waits in and the clock ran on: the expiry due at that instant is not due
    again (one moved since, by an extension or a recount, is). It too is written only
    when set.
    """

    clock: str
    calendar: str
    started_at: Instant
    limit: DurationText
    extensions: tuple[DurationText, ...] = ()
    due_at: Instant
    warn_at: Instant
    paused_at: Instant | None = None
    paused_seconds: float = 0.0
    warning: Warning = "none"
    escalation: int = 0
    fallback_days: tuple[date, ...] = ()
    provisional: bool = False
    provisional_reason: str | None = None
    expired_at: Instant | None = None
    previous: Deadline | None = None
    """The clock the case left when it entered this state, kept so that it can resume."""
    beside: Deadline | None = None
    """A clock that started when the case entered this state and runs beside its clock:
    the one that ``starts`` on the transition into this state (the handling clock, from
    the dispatch, beside the sign-for clock), with the due instant it has if the case
    moves on to its state. Written only when set."""


class _Record(_Value):
    """A record kept on a case. Stored, it holds only the fields given when it was made
    (see :func:`to_stored`)."""


SubtaskStatus = Literal["waiting", "active", "done"]


class Subtask(_Record):
    """A co-unit's part of a case (协办): what it must do, and how far it has got.

    It waits until the lead unit accepts the case (or, with ``after``, until that
    co-unit's subtask is done), is then active until ``due_at`` (its own ``within``
    from activation, else the case's deadline at activation), and is done with a
    ``result``. An active subtask has a clock of its own: it warns at ``warn_at``
    (``warning`` yellow), is red from ``due_at``, and climbs the escalation ladder of
    ``clock`` (the case's clock when it started) to ``escalation``; a rung that
    supervises sets ``supervised``. ``late`` says whether it was done after its due
    instant.
    """

    unit: str
    duty: str = ""
    mandatory: bool = True
    after: str | None = None
    within: DurationText | None = None
    status: SubtaskStatus = "waiting"
    due_at: Stamp | None = None
    activated_at: Stamp | None = None
    done_at: Stamp | None = None
    late: bool | None = None
    result: str | None = None
    clock: str | None = None
    warn_at: Stamp | None = None
    warning: Warning = "none"
    escalation: int = 0
    supervised: bool = False


class RoutingRecord(_Record):
    """Why a case went to its unit: the list's answer at dispatch, or a named unit.

    ``entry``, ``list_version``, ``explanation``, ``gap``, ``lead_unit``,
    ``candidates`` and ``supervising_unit`` are the responsibility list's answer (when
    it was asked); ``override`` and ``reason`` are set when a unit was named instead.
    """

    by: str
    at: Stamp
    entry: str | None = None
    list_version: str | None = None
    explanation: str | None = None
    gap: bool | None = None
    lead_unit: str | None = None
    candidates: tuple[str, ...] = ()
    supervising_unit: str | None = None
    override: bool | None = None
    reason: str | None = None


class Misdirect(_Record):
    """A return approved: the unit wrongly sent the case, and the dispatcher who sent it."""

    dispatcher: str | None
    unit: str | None
    at: Stamp


class Duplicate(_Record):
    """A report merged into this case: the duplicate's id, its reporter (told of this
    case's outcome, and allowed to see it) and when it was merged."""

    case: str
    reporter: str
    at: Stamp


class Request(_Record):
    """A request waiting for a decision (an extension, a suspension): the fields of the
    command that made it (``duration``, ``reason``, and any a host workflow adds), who
    made it and when."""

    model_config = ConfigDict(frozen=True, extra="allow")

    by: str
    at: Stamp


RECORD_FIELDS = (
    "paused",
    "subtasks",
    "routing",
    "misdirects",
    "dispatched_by",
    "final_assignment",
    "extension_request",
    "suspension_request",
    "merged_into",
    "duplicates",
    "purged",
)
"""Case fields written inside ``attributes`` in stored JSON and audit events, where
cases have always kept them, so that stored cases and hash chains stay as they are."""


class Case(_Value):
    """A snapshot of one case at one version.

    ``contact`` is not part of the case body: the store keeps it apart, the audit
    trail never contains it, and :meth:`closedloop.Engine.get` fills it in, masked
    according to the viewer.
    """

    id: str
    workflow: str
    state: str
    version: int
    reported_at: Instant
    updated_at: Instant
    reporter_id: str
    channel: str
    description: str
    location: Location = Location()
    category: str | None = None
    urgency: str | None = None
    lead_unit: str | None = None
    co_units: tuple[str, ...] = ()
    waiting_on: str | None = None
    """The role that must act next (``None`` once the case is final)."""
    deadline: Deadline | None = None
    """The clock running while the case waits in its state (``None`` once final)."""
    supervised: bool = False
    """The supervision flag (督办), set by an escalation step."""
    counters: dict[str, int] = Field(default_factory=dict)
    """Counts kept by the workflow, such as ``returns`` and ``reworks``."""
    paused: str | None = None
    """Why the clock is paused (``info``, ``suspension``); ``None`` while it runs."""
    subtasks: tuple[Subtask, ...] = ()
    """The co-units' subtasks, one per co-unit."""
    routing: RoutingRecord | None = None
    """How the case reached its lead unit."""
    misdirects: tuple[Misdirect, ...] = ()
    """Returns approved against the dispatcher who sent the case to the wrong unit."""
    dispatched_by: str | None = None
    """Who assigned the case to its lead unit last."""
    final_assignment: bool | None = None
    """Set when arbitration decided the lead unit: the unit can no longer return it."""
    extension_request: Request | None = None
    """The unit's pending request for more time, until it is approved or refused."""
    suspension_request: Request | None = None
    """The unit's pending request to suspend the clock, until it is decided."""
    merged_into: str | None = None
    """The case this one was merged into as a duplicate (its master)."""
    duplicates: tuple[Duplicate, ...] = ()
    """The duplicates merged into this case."""
    purged: tuple[str, ...] = ()
    """The kinds of personal data erased from the case (``contact``, ``description``,
    ...), by a retention rule or a subject's erasure; see :mod:`closedloop.engine.personal`."""
    attributes: dict[str, JSON] = Field(default_factory=dict)
    """Values the workflow's transitions recorded, by name (results, reasons, flags)."""
    contact: ReporterContact | None = None

    def recorded(self) -> dict[str, JSON]:
        """The values recorded on the case as stored: ``attributes`` with the engine's
        records among them (what a clock path such as ``extension_request.duration``
        names)."""
        stored = to_stored(self)["attributes"]
        assert isinstance(stored, dict)
        return stored

    def counter(self, name: str) -> int:
        """The value of a workflow counter, zero when never counted."""
        return self.counters.get(name, 0)


def unshared(case: Case, update: Mapping[str, Any] | None = None) -> Case:
    """``case`` holding copies of its mutable values: its counters, its attributes and a
    pending request's extra fields, copied all the way down. Its other values are
    immutable (frozen models, tuples, text, numbers, instants), so nothing done to the
    copy changes ``case``: a case kept for later readers is handed out so.

    The fields in ``update`` (of the model's types, not validated) are replaced in the
    copy and count as given, as :func:`replaced` does; the copy is made once.
    """
    fields = case.__dict__.copy()
    fields["counters"] = dict(fields["counters"])
    attributes = fields["attributes"]
    fields["attributes"] = thawed(attributes) if attributes else {}
    for name in _REQUESTS:
        request = fields[name]
        if request is not None and request.__pydantic_extra__:
            request = replaced(request, {})
            _set(request, "__pydantic_extra__", thawed(request.__pydantic_extra__))
            fields[name] = request
    given = set(case.__pydantic_fields_set__)  # as in ``case``
    if update:
        fields.update(update)
        given.update(update)
    extra = case.__pydantic_extra__
    return built(type(case), fields, None if extra is None else dict(extra), given)


_REQUESTS = ("extension_request", "suspension_request")


def unshared_event(event: AuditEvent) -> AuditEvent:
    """``event`` holding copies of its payload and changes, all the way down, and of its
    seals' mapping (the seals themselves are frozen): an event a store keeps is handed
    out so, as :func:`unshared` hands out a case. Its fields count as given as in
    ``event``."""
    fields = event.__dict__.copy()
    fields["payload"] = thawed(fields["payload"])
    fields["changes"] = thawed(fields["changes"])
    fields["sealed"] = dict(fields["sealed"])
    return built(
        type(event),
        fields,
        _copy_extra(event.__pydantic_extra__),
        set(event.__pydantic_fields_set__),
    )


def thawed(value: Any) -> Any:
    """A copy of JSON data whose dicts and lists are new ones."""
    if isinstance(value, dict):
        return {key: thawed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thawed(item) for item in value]
    return value


BODY_EXCLUDE = frozenset({"contact", "version"})
"""Case fields that audit events never carry: personal data, and the version (the
event's sequence number is the version)."""


def to_stored(
    case: Case, *, exclude: Iterable[str] = (), encoded: Mapping[str, JSON] | None = None
) -> dict[str, JSON]:
    """The case as stores keep it and its audit trail hashes it: JSON data with the
    engine's records (:data:`RECORD_FIELDS`) inside ``attributes``, each written with
    only the fields it was given, as cases have always been stored.

    ``Case.model_dump(mode="json")`` shows the records as fields of their own; this is
    the stored form, read back by :func:`from_stored`.

    ``encoded``: the stored form of some of the case's records, by name, known already
    (a command's new case holds the very same records as the case it changed); they are
    written as given, not encoded again. Nobody changes them.
    """
    data = case.model_dump(mode="json", exclude={*RECORD_FIELDS, *exclude})
    _unmarked(data.get("deadline"))
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        return data
    fields = case.__dict__
    for name in RECORD_FIELDS:
        value = fields[name]
        if value is None or (isinstance(value, tuple) and not value):
            continue
        if encoded is not None and name in encoded:
            attributes[name] = encoded[name]
        elif isinstance(value, tuple):
            attributes[name] = [
                _given(item) if isinstance(item, _Record) else item for item in value
            ]
        else:
            attributes[name] = _given(value) if isinstance(value, _Record) else value
    return data


def from_stored(data: Mapping[str, Any]) -> Case:
    """The case in ``data``, stored JSON as :func:`to_stored` writes it (records inside
    ``attributes``) or with the records as fields.

    Raises:
        pydantic.ValidationError: ``data`` is not a case.
    """
    attributes = data.get("attributes")
    if isinstance(attributes, dict) and not attributes.keys().isdisjoint(RECORD_FIELDS):
        lifted = dict(data)
        kept = dict(attributes)
        for name in RECORD_FIELDS:
            if name in kept:
                lifted.setdefault(name, kept.pop(name))
        lifted["attributes"] = kept
        data = lifted
    return Case.model_validate(data)


def _unmarked(deadline: JSON) -> None:
    """Leave a clock's provisional and expired fields out of its stored form unless set
    (and those of the clocks it resumes), as deadlines were stored before they existed."""
    while isinstance(deadline, dict):
        if deadline.get("provisional") is False:
            del deadline["provisional"]
        if "provisional_reason" in deadline and deadline["provisional_reason"] is None:
            del deadline["provisional_reason"]
        if "expired_at" in deadline and deadline["expired_at"] is None:
            del deadline["expired_at"]
        if "beside" in deadline and deadline["beside"] is None:
            del deadline["beside"]
        _unmarked(deadline.get("beside"))
        deadline = deadline.get("previous")


def _given(record: _Record) -> JSON:
    given: JSON = record.model_dump(mode="json", exclude_unset=True)
    return given


class Seal(_Value):
    """How an event commits to one personal field: the field's ``kind`` of personal
    data, the SHA-256 ``digest`` of ``salt`` and the value, and the ``salt`` (hex), which
    is erased with the value when the field is purged. The event's hash covers the
    digest, not the value (see :func:`closedloop.engine.audit.event_hash`)."""

    kind: str
    digest: str
    salt: str | None = None


def _no_seals(value: object) -> object:
    return {} if value is None else value  # a row written before seals existed


class AuditEvent(_Value):
    """One change of one case, hash-chained to the previous change of that case.

    ``sealed`` maps the path of each personal field (``changes/description``) to its
    :class:`Seal`; it is empty for an event without sealed fields, hashed as events
    always were.
    """

    case_id: str
    seq: int
    at: Instant
    actor: str
    role: str | None
    trigger: str
    from_state: str | None
    to_state: str
    payload: dict[str, JSON] = Field(default_factory=dict)
    reason: str | None = None
    changes: dict[str, JSON] = Field(default_factory=dict)
    prev_hash: str
    hash: str
    sealed: Annotated[dict[str, Seal], BeforeValidator(_no_seals)] = Field(default_factory=dict)


class Unit(_Value):
    """An organisational unit that can own cases."""

    id: Ident
    name: str
    level: str = "street"
    parent: Ident | None = None
    areas: tuple[str, ...] = ()
