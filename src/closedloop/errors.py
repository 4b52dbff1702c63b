"""The one exception tree of closedloop.

Every error the library raises derives from :class:`ClosedLoopError`. Each class
carries structured attributes (case id, state, trigger, what is allowed) and builds
its message from them, so a host can both show the message and act on the fields.

Sub-roots by concern:

* :class:`DefinitionError` - a workflow, responsibility list or calendar is wrong.
* :class:`CaseError` - a command on a case cannot be applied.
* :class:`InputError` - data submitted by a user is not acceptable.
* :class:`StoreError` - the storage backend failed.
* :class:`TimeError` - an instant or a calendar question cannot be answered.
* :class:`DeliveryError` - a notification could not be delivered.

Errors at an HTTP boundary: every class has an HTTP ``status`` and a short ``title``,
and :meth:`ClosedLoopError.to_problem` gives an RFC 9457 problem object (a dict ready
for ``json.dumps``, served as ``application/problem+json``). Its ``type`` is
``https://closedloop.dev/problems/`` followed by the class name in kebab case
(``CaseNotFound`` is ``.../case-not-found``): an identifier, stable as long as the
class name is, that clients compare rather than fetch. The statuses:

======================================================  ======  ========================
class                                                   status  why
======================================================  ======  ========================
ClosedLoopError, DefinitionError, MissingDependency,    500     the server's set-up or
WorkflowMismatch, HostCodeUnusable, NotifierUnusable,           data is wrong; the
TimeError, CalendarNotCovered, StoreError,                      client cannot fix it
DamagedRecord, CheckpointRefused, SchemaTooNew,
DowngradeRefused
InvalidWorkflow, InvalidResponsibilityList,             422     a submitted definition
InvalidDirectory, UnknownName                                   or name is unusable
CaseError, TransitionNotAllowed, GuardRejected,         409     the case's current state
ConcurrentModification, LeaseLost, MergeRefused,                (or version) conflicts
CheckpointTaken, ErasureRefused
CaseNotFound, MessageNotFound                           404     not there, or not visible
PermissionDenied, ConflictOfInterest                    403     the actor may not do it
IdempotencyConflict                                     422     a key reused for another
                                                                payload
InputError, ValidationError, NaiveDatetime,             422     submitted data is invalid
UnsafeTarget, UnknownCode
SignatureInvalid                                        401     a received webhook is
                                                                not authentic
StoreUnavailable                                        503     retry later
DeliveryError, DeliveryFailed, EndpointGone             502     a downstream channel
                                                                failed
Unauthenticated                                         401     the HTTP request names
                                                                nobody (front door)
NotPermitted                                            403     a page needs a role the
                                                                actor lacks
Open311Refusal                                          400     the spec's error list;
                                                                its own status
StaleVersion                                            412     If-Match names another
                                                                version of the case
BodyTooLarge                                            413     a request body over the
                                                                front door's limit
======================================================  ======  ========================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://closedloop.dev/problems/"
"""Where the ``type`` URIs of problem objects start; the class name in kebab case follows."""

_STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


class ClosedLoopError(Exception):
    """Root of every error raised by closedloop.

    Attributes:
        status: The HTTP status a host answers with when this error ends a request.
        title: A short, fixed summary of the kind of problem (RFC 9457 ``title``).
    """

    status: ClassVar[int] = 500
    title: ClassVar[str] = "closedloop error"

    @classmethod
    def problem_type(cls) -> str:
        """The RFC 9457 ``type`` URI of this class, e.g. ``.../problems/case-not-found``."""
        return PROBLEM_TYPE_BASE + re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()

    def to_problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem object, ready for ``json.dumps``.

        ``type``, ``title``, ``status`` and ``detail`` (the message), plus every
        structured field the error carries (``case_id``, ``state``, ``allowed``,
        ``errors``, ``problems``, ...) as JSON data: tuples become lists.
        """
        fields = {
            name: _json_value(value)
            for name, value in vars(self).items()
            if not name.startswith("_") and name not in _STANDARD_MEMBERS
        }
        standard = {
            "type": self.problem_type(),
            "title": self.title,
            "status": self.status,
            "detail": str(self),
        }
        return {**standard, **fields}


def _json_value(value: object) -> Any:
    """``value`` as JSON data: containers recursively, instants as ISO text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_json_value(item) for item in items]
    return str(value)


# -- definitions ---------------------------------------------------------------------


class DefinitionError(ClosedLoopError):
    """A declarative definition (workflow, list, calendar) is not usable."""

    status = 500
    title = "Unusable definition"


class InvalidWorkflow(DefinitionError, ValueError):
    """A workflow definition has problems; ``problems`` lists every one with its path."""

    status = 422
    title = "Invalid workflow"

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid workflow{where}: {len(self.problems)} problem(s)\n{lines}")


class InvalidResponsibilityList(DefinitionError, ValueError):
    """A responsibility list has problems; ``problems`` lists every one with its place."""

    status = 422
    title = "Invalid responsibility list"

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"invalid responsibility list{where}: {len(self.problems)} problem(s)\n{lines}"
        )


class InvalidDirectory(DefinitionError, ValueError):
    """A directory of units and members has problems; ``problems`` lists every one."""

    status = 422
    title = "Invalid directory"

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid directory{where}: {len(self.problems)} problem(s)\n{lines}")


class UnknownName(DefinitionError, LookupError):
    """A name (guard, effect, unit, area) was looked up in a registry that lacks it."""

    status = 422
    title = "Unknown name"

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known: tuple[str, ...] = tuple(sorted(known))
        shown = ", ".join(self.known) if self.known else "none"
        super().__init__(f"unknown {kind} {name!r}; known: {shown}")


class MissingDependency(DefinitionError, ImportError):
    """An optional package needed by the chosen feature is not installed."""

    status = 500
    title = "Missing dependency"

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        self.feature = feature
        super().__init__(
            f"{feature} needs the package {package!r}; install it with "
            f"pip install 'closedloop[{extra}]'"
        )


class WorkflowMismatch(DefinitionError):
    """Stored cases were written by another workflow than the one given to handle them.

    ``workflow`` is the given workflow's name, ``stored_workflow`` the name the case
    records, ``case_id`` a case it cannot handle and ``reason`` why (a state or a clock
    it does not declare, or another name).
    """

    status = 500
    title = "Workflow does not fit the stored cases"

    def __init__(self, workflow: str, case_id: str, stored_workflow: str, reason: str) -> None:
        self.workflow = workflow
        self.case_id = case_id
        self.stored_workflow = stored_workflow
        self.reason = reason
        super().__init__(
            f"workflow {workflow!r} cannot handle the stored case {case_id!r} (written by "
            f"workflow {stored_workflow!r}): {reason}; use the workflow its cases were "
            "written with"
        )


class HostCodeUnusable(DefinitionError):
    """Host code named as ``module:attribute`` cannot be loaded, or is not what is wanted.

    ``spec`` is the name as given, ``wanted`` what it should be (a ``Registry``, a
    notifier) and ``reason`` what went wrong.
    """

    status = 500
    title = "Unusable host code"

    def __init__(self, spec: str, wanted: str, reason: str) -> None:
        self.spec = spec
        self.wanted = wanted
        self.reason = reason
        super().__init__(f"{spec!r} is not usable as {wanted}: {reason}")


class NotifierUnusable(DefinitionError, TypeError):
    """Something given as a notification channel cannot be one: it has no ``send``
    method, its ``send`` is ``async def`` (the outbox never awaits it, so nothing would
    be sent), or a function where a notifier object is expected.

    ``what`` names the argument, ``given`` what it is and ``expected`` what is allowed.
    """

    status = 500
    title = "Unusable notifier"

    def __init__(self, what: str, given: str, expected: str) -> None:
        self.what = what
        self.given = given
        self.expected = expected
        super().__init__(f"{what} is {given}; expected {expected}")


# -- cases ---------------------------------------------------------------------------


class CaseError(ClosedLoopError):
    """A command on a case cannot be applied; nothing was written."""

    status = 409
    title = "Command not applicable"


class CaseNotFound(CaseError, LookupError):
    """No such case, or the actor may not see it (the two are indistinguishable)."""

    status = 404
    title = "Case not found"

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"case {case_id!r} not found")


class TransitionNotAllowed(CaseError):
    """The trigger cannot fire from the case's current state."""

    status = 409
    title = "Transition not allowed"

    def __init__(self, case_id: str, state: str, trigger: str, allowed: Iterable[str]) -> None:
        self.case_id = case_id
        self.state = state
        self.trigger = trigger
        self.allowed: tuple[str, ...] = tuple(sorted(allowed))
        shown = ", ".join(self.allowed) if self.allowed else "none"
        super().__init__(
            f"case {case_id!r} is {state!r}: trigger {trigger!r} is not allowed here; "
            f"allowed from {state!r}: {shown}"
        )


class GuardRejected(TransitionNotAllowed):
    """A guard of the transition refused it; ``guard`` names it and ``reason`` says why."""

    status = 409
    title = "Refused by a guard"

    def __init__(self, case_id: str, state: str, trigger: str, guard: str, reason: str) -> None:
        self.guard = guard
        self.reason = reason
        CaseError.__init__(
            self,
            f"case {case_id!r} is {state!r}: trigger {trigger!r} refused by guard "
            f"{guard!r}: {reason}",
        )
        self.case_id = case_id
        self.state = state
        self.trigger = trigger
        self.allowed = ()


class PermissionDenied(CaseError, PermissionError):
    """The actor holds none of the roles that may fire the trigger on this case."""

    status = 403
    title = "Permission denied"

    def __init__(self, case_id: str, trigger: str, actor_id: str, roles: Iterable[str]) -> None:
        self.case_id = case_id
        self.trigger = trigger
        self.actor_id = actor_id
        self.roles: tuple[str, ...] = tuple(roles)
        needs = (
            f"it needs one of the roles: {', '.join(self.roles)}"
            if self.roles
            else "the workflow gives it to no role"
        )
        super().__init__(
            f"actor {actor_id!r} may not fire {trigger!r} on case {case_id!r}; {needs}"
        )


class ConflictOfInterest(PermissionDenied):
    """The actor holds a role that may fire the trigger, but is party to the case (a
    member of its lead unit or a co-unit, named in ``units``) and the workflow bars
    parties from it (a ``not_party`` role rule): nobody checks their own work."""

    status = 403
    title = "Conflict of interest"

    def __init__(
        self, case_id: str, trigger: str, actor_id: str, roles: Iterable[str], units: Iterable[str]
    ) -> None:
        self.case_id = case_id
        self.trigger = trigger
        self.actor_id = actor_id
        self.roles = tuple(roles)
        self.units: tuple[str, ...] = tuple(sorted(units))
        CaseError.__init__(
            self,
            f"actor {actor_id!r} may not fire {trigger!r} on case {case_id!r}: they are "
            f"party to it as a member of {', '.join(self.units)}",
        )


class MergeRefused(CaseError):
    """A case cannot be merged into ``target``: it does not exist, is the case itself,
    is final (closed) or is itself merged into another, or the case is the master of
    duplicates of its own; ``reason`` says which."""

    status = 409
    title = "Merge refused"

    def __init__(self, case_id: str, target: str, reason: str) -> None:
        self.case_id = case_id
        self.target = target
        self.reason = reason
        super().__init__(f"case {case_id!r} cannot be merged into {target!r}: {reason}")


class ErasureRefused(CaseError):
    """A reporter's data cannot be erased now: a case of theirs is still open (and the
    erasure was not forced by a role the workflow's ``privacy.force_erase`` names), or
    the store cannot erase personal data."""

    status = 409
    title = "Erasure refused"

    def __init__(self, case_id: str, reason: str) -> None:
        self.case_id = case_id
        self.reason = reason
        super().__init__(f"the personal data of case {case_id!r} cannot be erased: {reason}")


class ConcurrentModification(CaseError):
    """The case changed since it was read; reload and decide again."""

    status = 409
    title = "Case modified concurrently"

    def __init__(self, case_id: str, expected: int, actual: int | None) -> None:
        self.case_id = case_id
        self.expected = expected
        self.actual = actual
        now = "unknown" if actual is None else str(actual)
        super().__init__(
            f"case {case_id!r} was modified concurrently: expected version {expected}, "
            f"current version {now}"
        )


class IdempotencyConflict(CaseError):
    """An idempotency key was reused with a different command or payload."""

    status = 422
    title = "Idempotency key reused"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was already used for a different command or payload; "
            "use a new key for a new command"
        )


# -- input ---------------------------------------------------------------------------


class InputError(ClosedLoopError, ValueError):
    """Data submitted by a user is not acceptable; nothing was written."""

    status = 422
    title = "Invalid input"


class ValidationError(InputError):
    """Submitted fields are invalid; ``errors`` holds (field path, message) pairs."""

    status = 422
    title = "Invalid input"

    def __init__(self, errors: Sequence[tuple[str, str]], *, subject: str = "input") -> None:
        self.errors: tuple[tuple[str, str], ...] = tuple(errors)
        self.subject = subject
        detail = "; ".join(f"{path}: {msg}" for path, msg in self.errors)
        super().__init__(f"invalid {subject}: {detail}")

    def to_problem(self) -> dict[str, Any]:
        """The problem object; ``errors`` as a list of ``{"field", "message"}`` objects."""
        problem = super().to_problem()
        problem["errors"] = [{"field": path, "message": msg} for path, msg in self.errors]
        return problem

    @property
    def fields(self) -> tuple[str, ...]:
        """The paths of the fields that were rejected."""
        return tuple(path for path, _ in self.errors)


class UnknownCode(ValidationError):
    """A category or area code is well formed but not in the configured catalogue or
    directory; ``closest`` maps each rejected field to the nearest valid codes."""

    status = 422
    title = "Unknown code"

    def __init__(
        self, unknown: Sequence[tuple[str, str, Sequence[str]]], *, subject: str = "input"
    ) -> None:
        self.closest: dict[str, tuple[str, ...]] = {
            field: tuple(near) for field, _, near in unknown
        }
        super().__init__(
            [
                (field, f"unknown code {code!r}; closest: {', '.join(near) or 'none'}")
                for field, code, near in unknown
            ],
            subject=subject,
        )


# -- time ----------------------------------------------------------------------------


class TimeError(ClosedLoopError):
    """An instant or a calendar question cannot be answered."""

    status = 500
    title = "Time question unanswerable"


class NaiveDatetime(TimeError, ValueError):
    """A datetime without a time zone was given where an instant is required."""

    status = 422
    title = "Naive datetime"

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"{what} is a naive datetime; pass a timezone-aware datetime (for example UTC)"
        )


class CalendarNotCovered(TimeError, LookupError):
    """A working-time question reaches a date the calendar has no data for."""

    status = 500
    title = "Calendar not covered"

    def __init__(self, calendar: str, day: str, covered: str) -> None:
        self.calendar = calendar
        self.day = day
        self.covered = covered
        super().__init__(
            f"calendar {calendar!r} has no holiday data for {day}; it covers {covered}. "
            "Supply that year's holidays and make-up working days, or choose an explicit "
            "fallback policy"
        )


# -- storage -------------------------------------------------------------------------


class StoreError(ClosedLoopError):
    """The storage backend failed; the command was not applied."""

    status = 500
    title = "Store failure"


class StoreUnavailable(StoreError, ConnectionError):
    """The storage backend cannot be reached."""

    status = 503
    title = "Store unavailable"


class LeaseLost(StoreError):
    """A claimed case (its due timers) or message was taken over after its lease expired."""

    status = 409
    title = "Lease lost"

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(
            f"the lease on {item_id!r} was lost to another worker; its result was discarded"
        )


class DamagedRecord(StoreError):
    """A stored row does not read back as what it holds: it was edited or damaged.

    ``record`` names the row (``case 'c-1'``, ``audit event 3 of case 'c-1'``);
    ``case_id`` is the case it belongs to, when known.
    """

    status = 500
    title = "Stored record damaged"

    def __init__(self, record: str, detail: str, *, case_id: str | None = None) -> None:
        self.record = record
        self.case_id = case_id
        self.reason = detail
        super().__init__(f"the stored {record} cannot be read: {detail}")


class CheckpointTaken(StoreError):
    """Another engine stored a checkpoint with the same number first; nothing was written."""

    status = 409
    title = "Checkpoint taken"

    def __init__(self, number: int) -> None:
        self.number = number
        super().__init__(f"checkpoint {number} exists already: another engine made it first")


class CheckpointRefused(StoreError):
    """A trail no longer holds the head an earlier checkpoint signed, so a new
    checkpoint would sign over the change; nothing was written."""

    status = 500
    title = "Checkpoint refused"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            "refusing to sign a checkpoint over trails that lost their signed heads: "
            + "; ".join(self.problems)
        )


class SchemaTooNew(StoreError):
    """The database's closedloop schema is at a revision this closedloop does not know:
    a newer closedloop upgraded it. closedloop does not downgrade a schema.

    ``found`` is the database's revision, ``known`` the newest this closedloop knows,
    ``schema`` the PostgreSQL schema, when one was named.
    """

    status = 500
    title = "Schema newer than the code"

    def __init__(self, found: str, known: str, schema: str | None = None) -> None:
        self.found = found
        self.known = known
        self.schema = schema
        where = f" (schema {schema!r})" if schema else ""
        super().__init__(
            f"the database{where} is at schema revision {found!r}, newer than this "
            f"closedloop knows (its newest is {known!r}): install the closedloop version "
            "that upgraded it, or restore a backup made before the upgrade (closedloop "
            "does not downgrade a schema)"
        )


class DowngradeRefused(StoreError):
    """An upgrade was asked for a revision older than the database's: closedloop does
    not downgrade a schema; nothing was changed.

    ``found`` is the database's revision, ``requested`` the one asked for.
    """

    status = 500
    title = "Downgrade refused"

    def __init__(self, found: str, requested: str, schema: str | None = None) -> None:
        self.found = found
        self.requested = requested
        self.schema = schema
        where = f" (schema {schema!r})" if schema else ""
        super().__init__(
            f"the database{where} is at schema revision {found!r}, later than the "
            f"revision {requested!r} asked for: downgrades are not supported (ask for "
            f"{found!r} or a later revision); nothing was changed"
        )


class MessageNotFound(StoreError, LookupError):
    """No outbox message (or dead letter: dead or disabled) with that id."""

    status = 404
    title = "Message not found"

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(f"no dead or disabled message {message_id!r}")


# -- delivery ------------------------------------------------------------------------


class DeliveryError(ClosedLoopError):
    """A notification could not be delivered through its channel."""

    status = 502
    title = "Delivery failure"


class DeliveryFailed(DeliveryError):
    """This attempt failed; the message stays in the outbox and is retried."""

    status = 502
    title = "Delivery failed"

    def __init__(self, channel: str, message_id: str, reason: str) -> None:
        self.channel = channel
        self.message_id = message_id
        self.reason = reason
        super().__init__(f"{channel} delivery of {message_id!r} failed: {reason}")


class EndpointGone(DeliveryError):
    """The endpoint refuses messages for good (HTTP 410); it is not retried."""

    status = 502
    title = "Endpoint gone"

    def __init__(self, channel: str, endpoint: str) -> None:
        self.channel = channel
        self.endpoint = endpoint
        super().__init__(f"{channel} endpoint {endpoint!r} is gone (it answered 410); not retried")


class UnsafeTarget(DeliveryError, ValueError):
    """A webhook URL points somewhere the library refuses to send to."""

    status = 422
    title = "Unsafe target"

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"refusing to send to {url!r}: {reason}")


class SignatureInvalid(ClosedLoopError, ValueError):
    """A received webhook's signature, id or timestamp does not verify."""

    status = 401
    title = "Signature invalid"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"webhook signature does not verify: {reason}")


# -- the HTTP front door (closedloop.adapters.http) --------------------------------------


class Unauthenticated(ClosedLoopError):
    """An HTTP request names nobody the host knows; sign in (or send credentials) first."""

    status = 401
    title = "Not signed in"

    def __init__(self, route: str) -> None:
        self.route = route
        super().__init__(f"{route} needs a signed-in actor")


class NotPermitted(ClosedLoopError):
    """The signed-in actor holds no role that may see this page (the supervision board)."""

    status = 403
    title = "Not permitted"

    def __init__(self, actor: str, needs: str) -> None:
        self.actor = actor
        self.needs = needs
        super().__init__(f"{actor} may not see this: it needs {needs}")


class StaleVersion(ClosedLoopError):
    """``If-Match`` names a version of the case other than its current one."""

    status = 412
    title = "Precondition failed"

    def __init__(self, case_id: str, if_match: str, current: int) -> None:
        self.case_id = case_id
        self.if_match = if_match
        self.current = current
        super().__init__(
            f'If-Match {if_match} does not name case {case_id}\'s current version "{current}"'
        )


class BodyTooLarge(ClosedLoopError):
    """An HTTP request body is larger than the front door accepts."""

    status = 413
    title = "Request body too large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request bodies are limited to {limit} bytes")


class Open311Refusal(ClosedLoopError):
    """An Open311 request the endpoint refuses: the spec's list of errors, each a code
    (the field or reason) and a description, answered with ``http_status`` (403 for
    the api_key, 404 for what does not exist, 400 for the rest)."""

    status = 400
    title = "Open311 request refused"

    def __init__(self, http_status: int, errors: Sequence[tuple[str, str]]) -> None:
        self.http_status = http_status
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{code}: {text}" for code, text in self.errors))

    def items(self) -> list[dict[str, object]]:
        """The error list as Open311 items."""
        return [{"code": code, "description": text} for code, text in self.errors]
