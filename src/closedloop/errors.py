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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class ClosedLoopError(Exception):
    """Root of every error raised by closedloop."""


# -- definitions ---------------------------------------------------------------------


class DefinitionError(ClosedLoopError):
    """A declarative definition (workflow, list, calendar) is not usable."""


class InvalidWorkflow(DefinitionError, ValueError):
    """A workflow definition has problems; ``problems`` lists every one with its path."""

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid workflow{where}: {len(self.problems)} problem(s)\n{lines}")


class InvalidResponsibilityList(DefinitionError, ValueError):
    """A responsibility list has problems; ``problems`` lists every one with its place."""

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

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid directory{where}: {len(self.problems)} problem(s)\n{lines}")


class UnknownName(DefinitionError, LookupError):
    """A name (guard, effect, unit, area) was looked up in a registry that lacks it."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known: tuple[str, ...] = tuple(sorted(known))
        shown = ", ".join(self.known) if self.known else "none"
        super().__init__(f"unknown {kind} {name!r}; known: {shown}")


class MissingDependency(DefinitionError, ImportError):
    """An optional package needed by the chosen feature is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        self.feature = feature
        super().__init__(
            f"{feature} needs the package {package!r}; install it with "
            f"pip install 'closedloop[{extra}]'"
        )


# -- cases ---------------------------------------------------------------------------


class CaseError(ClosedLoopError):
    """A command on a case cannot be applied; nothing was written."""


class CaseNotFound(CaseError, LookupError):
    """No such case, or the actor may not see it (the two are indistinguishable)."""

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"case {case_id!r} not found")


class TransitionNotAllowed(CaseError):
    """The trigger cannot fire from the case's current state."""

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

    def __init__(self, case_id: str, trigger: str, actor_id: str, roles: Iterable[str]) -> None:
        self.case_id = case_id
        self.trigger = trigger
        self.actor_id = actor_id
        self.roles: tuple[str, ...] = tuple(roles)
        super().__init__(
            f"actor {actor_id!r} may not fire {trigger!r} on case {case_id!r}; "
            f"it needs one of the roles: {', '.join(self.roles)}"
        )


class ConcurrentModification(CaseError):
    """The case changed since it was read; reload and decide again."""

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

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was already used for a different command or payload; "
            "use a new key for a new command"
        )


# -- input ---------------------------------------------------------------------------


class InputError(ClosedLoopError, ValueError):
    """Data submitted by a user is not acceptable; nothing was written."""


class ValidationError(InputError):
    """Submitted fields are invalid; ``errors`` holds (field path, message) pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]], *, subject: str = "input") -> None:
        self.errors: tuple[tuple[str, str], ...] = tuple(errors)
        self.subject = subject
        detail = "; ".join(f"{path}: {msg}" for path, msg in self.errors)
        super().__init__(f"invalid {subject}: {detail}")

    @property
    def fields(self) -> tuple[str, ...]:
        """The paths of the fields that were rejected."""
        return tuple(path for path, _ in self.errors)


# -- time ----------------------------------------------------------------------------


class TimeError(ClosedLoopError):
    """An instant or a calendar question cannot be answered."""


class NaiveDatetime(TimeError, ValueError):
    """A datetime without a time zone was given where an instant is required."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"{what} is a naive datetime; pass a timezone-aware datetime (for example UTC)"
        )


class CalendarNotCovered(TimeError, LookupError):
    """A working-time question reaches a date the calendar has no data for."""

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


class StoreUnavailable(StoreError, ConnectionError):
    """The storage backend cannot be reached."""


class LeaseLost(StoreError):
    """A claimed due point or message was taken over after its lease expired."""

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(
            f"the lease on {item_id!r} was lost to another worker; its result was discarded"
        )


class MessageNotFound(StoreError, LookupError):
    """No outbox message (or dead letter) with that id."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(f"no dead-lettered message {message_id!r}")


# -- delivery ------------------------------------------------------------------------


class DeliveryError(ClosedLoopError):
    """A notification could not be delivered through its channel."""


class DeliveryFailed(DeliveryError):
    """This attempt failed; the message stays in the outbox and is retried."""

    def __init__(self, channel: str, message_id: str, reason: str) -> None:
        self.channel = channel
        self.message_id = message_id
        self.reason = reason
        super().__init__(f"{channel} delivery of {message_id!r} failed: {reason}")


class EndpointGone(DeliveryError):
    """The endpoint refuses messages for good (HTTP 410); it is not retried."""

    def __init__(self, channel: str, endpoint: str) -> None:
        self.channel = channel
        self.endpoint = endpoint
        super().__init__(f"{channel} endpoint {endpoint!r} is gone (it answered 410); disabled")


class UnsafeTarget(DeliveryError, ValueError):
    """A webhook URL points somewhere the library refuses to send to."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"refusing to send to {url!r}: {reason}")


class SignatureInvalid(ClosedLoopError, ValueError):
    """A received webhook's signature, id or timestamp does not verify."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"webhook signature does not verify: {reason}")
