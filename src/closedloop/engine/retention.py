"""Personal data over its life: purges by the workflow's retention policy, a reporter's
subject-access report, and erasure on request.

:class:`Retention` decides what is due and asks :meth:`CaseWriter.purge
<closedloop.engine.writer.CaseWriter.purge>` to record each erasure on the case (a
``purged`` event), then has the store erase the rest in the same transaction: the
sealed fields of the case's earlier events (:func:`closedloop.engine.personal.redacted`),
its contact data, its idempotency records, and every copy of an erased value in its
outbox messages, pending, sent or dead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from closedloop.engine import personal
from closedloop.engine.case_query import MAX_PAGE, CaseFilter
from closedloop.engine.definition import Workflow
from closedloop.engine.model import JSON, SYSTEM, Actor, AuditEvent, Case, ReporterContact
from closedloop.engine.ports import (
    CaseQueries,
    CaseStore,
    ErasureFinish,
    OutboxMessage,
    PersonalErasure,
)
from closedloop.engine.specs import RetentionRule
from closedloop.engine.writer import CaseWriter
from closedloop.errors import ErasureRefused, PermissionDenied

ERASURE_RULE = "erasure request"
"""The rule a ``purged`` event names when a reporter's data was erased on request."""


@dataclass(frozen=True, slots=True)
class Purged:
    """Personal data of one case erased (or, in a dry run, due): the kinds and the rule."""

    case_id: str
    data: tuple[str, ...]
    rule: str


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge erased (or would erase, when ``dry_run``), case by case.

    ``unsealed`` names cases whose trail holds personal fields written before they were
    sealed (by a workflow without a ``retention`` section): their contact data and the
    case's copy are erased, but those events keep their values, or their hashes would
    break. A dry run names the same cases the run would.
    """

    purged: tuple[Purged, ...] = ()
    dry_run: bool = False
    unsealed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JSON]:
        """The report as JSON data."""
        return {
            "dry_run": self.dry_run,
            "purged": [
                {"case_id": p.case_id, "data": list(p.data), "rule": p.rule} for p in self.purged
            ],
            "unsealed": list(self.unsealed),
        }


class Retention:
    """Purges, subject-access reports and erasures for one workflow's cases in a store.

    Args:
        workflow: The workflow whose ``retention`` rules apply.
        store: Where the cases are; it must answer case queries and erase personal data
            (both shipped stores do).
        writer: The command path that records each erasure on its case.
    """

    def __init__(self, workflow: Workflow, store: CaseStore, writer: CaseWriter) -> None:
        self._workflow = workflow
        self._store = store
        self._writer = writer

    def due(self, case: Case, now: datetime) -> dict[str, tuple[str, ...]]:
        """The kinds of the case's personal data due for erasure at ``now``, by the name
        of the rule that makes them due (the first rule that does, for each kind)."""
        found: dict[str, list[str]] = {}
        taken = set(case.purged)
        for index, rule in enumerate(self._workflow.retention or ()):
            start = self._start(case, rule)
            if start is None or start + rule.after.as_timedelta() > now:
                continue
            name = rule.name or f"retention[{index}]"
            for kind in rule.data:
                if kind not in taken:
                    taken.add(kind)
                    found.setdefault(name, []).append(kind)
        return {name: tuple(kinds) for name, kinds in found.items()}

    def _start(self, case: Case, rule: RetentionRule) -> datetime | None:
        if rule.channels and case.channel not in rule.channels:
            return None
        if rule.categories and not any(
            case.category is not None and (case.category == c or case.category.startswith(c + "."))
            for c in rule.categories
        ):
            return None
        if rule.start == "reported":
            return case.reported_at
        return case.updated_at if self._workflow.state(case.state).final else None

    def purge(self, now: datetime, *, dry_run: bool = False) -> PurgeReport:
        """Erase every kind of personal data the retention rules make due at ``now``."""
        if not self._workflow.retention:
            return PurgeReport(dry_run=dry_run)
        purged: list[Purged] = []
        unsealed: list[str] = []
        rules = self._workflow.retention
        finals = tuple(s.name for s in self._workflow.states if s.final)
        # Rules that count from the close only ever reach final cases.
        closed_only = all(rule.start == "closed" for rule in rules)
        for case in self._cases(CaseFilter(states=finals) if closed_only else CaseFilter()):
            for rule, kinds in self.due(case, now).items():
                purged.append(Purged(case.id, kinds, rule))
                if dry_run:
                    kept = not self._sealed_ok(case.id, kinds)
                else:
                    kept = not self._erase(case.id, kinds, rule, SYSTEM, "system", now)
                if kept:
                    unsealed.append(case.id)
        if purged and not dry_run:
            self._finish()
        return PurgeReport(tuple(purged), dry_run, tuple(dict.fromkeys(unsealed)))

    def _finish(self) -> None:
        if isinstance(self._store, ErasureFinish):
            self._store.finish_erasures()

    def erase_subject(
        self, reporter_id: str, *, by: Actor, force: bool, now: datetime
    ) -> PurgeReport:
        """Erase every kind of personal data held about the reporter, ahead of the policy.

        Raises:
            ErasureRefused: a case of theirs is open and ``force`` is not given.
            PermissionDenied: ``force`` is given but ``by`` holds no role the workflow's
                ``privacy.force_erase`` names.
        """
        cases = list(self._cases(CaseFilter(reporter=reporter_id)))
        force_roles = self._workflow.privacy.force_erase
        role = next((r for r in force_roles if r in by.roles), None)
        open_cases = [c for c in cases if not self._workflow.state(c.state).final]
        if open_cases and not force:
            raise ErasureRefused(open_cases[0].id, "the case is still open")
        if open_cases and role is None:
            raise PermissionDenied(open_cases[0].id, "erase_subject", by.id, force_roles)
        purged: list[Purged] = []
        unsealed: list[str] = []
        for case in cases:
            kinds = tuple(k for k in personal.KINDS if k not in case.purged)
            if not kinds:
                continue
            as_role = role if role is not None and case in open_cases else "erasure"
            purged.append(Purged(case.id, kinds, ERASURE_RULE))
            if not self._erase(case.id, kinds, ERASURE_RULE, by, as_role, now):
                unsealed.append(case.id)
        if purged:
            self._finish()
        return PurgeReport(tuple(purged), False, tuple(unsealed))

    def subject_report(self, reporter_id: str) -> dict[str, JSON]:
        """Everything held about the reporter, as JSON data: each case of theirs in full
        (contact data unmasked), their own inputs (the events they made), and the
        notifications addressed to them."""
        cases: list[JSON] = []
        with self._store.transaction(read_only=True) as tx:
            for case in self._cases(CaseFilter(reporter=reporter_id)):
                contact = tx.get_contact(case.id)
                events = tx.get_events(case.id)
                messages = tx.outbox_of(case.id) if isinstance(tx, PersonalErasure) else []
                cases.append(_case_entry(case, contact, events, messages, reporter_id))
        return {"reporter_id": reporter_id, "cases": cases}

    def _cases(self, where: CaseFilter) -> Iterator[Case]:
        store = self._store
        if not isinstance(store, CaseQueries):
            raise ErasureRefused("*", "the store does not answer case queries")
        where = replace(where, workflow=self._workflow.name)  # this engine's cases only
        after: str | None = None
        while True:
            page = store.select_cases(where, after=after, limit=MAX_PAGE)
            yield from page.cases
            if page.next_cursor is None:
                return
            after = page.next_cursor

    def _erase(
        self, case_id: str, kinds: tuple[str, ...], rule: str, by: Actor, role: str, now: datetime
    ) -> bool:
        """Erase the kinds of data from the case in one transaction; ``False`` when some
        of its events hold such data unsealed (kept, so that their hashes hold)."""
        with self._store.transaction() as tx:
            if not isinstance(tx, PersonalErasure):
                raise ErasureRefused(case_id, "the store cannot erase personal data")
            case = tx.get_case(case_id)
            if case is None:
                return True
            events = tx.get_events(case_id)
            contact = tx.get_contact(case_id) if "contact" in kinds else None
            values = {v for e in events for v in personal.text_values(personal.values_of(e, kinds))}
            values |= _case_values(case, kinds, self._workflow)
            if contact is not None:
                values |= set(personal.text_values(contact.model_dump(exclude_none=True)))
            values.discard(personal.REDACTED)
            erased = [personal.redacted(e, kinds) for e in events]
            changed = [new for new, old in zip(erased, events, strict=True) if new is not old]
            sealed_ok = all(e.sealed or not self._unsealed(e, kinds) for e in events)
            self._writer.purge(tx, case, kinds, rule=rule, by=by, role=role, now=now)
            outbox = [m for m in (_scrubbed(m, values) for m in tx.outbox_of(case_id)) if m]
            tx.erase_personal(case_id, events=changed, outbox=outbox, contact="contact" in kinds)
            tx.commit()
        return sealed_ok

    def _sealed_ok(self, case_id: str, kinds: tuple[str, ...]) -> bool:
        """What :meth:`_erase` would answer, without erasing: ``False`` when some of the
        case's events hold these kinds of data unsealed."""
        with self._store.transaction(read_only=True) as tx:
            events = tx.get_events(case_id)
        return all(e.sealed or not self._unsealed(e, kinds) for e in events)

    def _unsealed(self, event: AuditEvent, kinds: tuple[str, ...]) -> bool:
        return any(k in kinds for k in personal.personal_paths(self._workflow, event).values())


def _case_values(case: Case, kinds: tuple[str, ...], workflow: Workflow) -> set[str]:
    """The texts of the case's own copy of these kinds of data."""
    found: set[str] = set()
    if "description" in kinds:
        found.add(case.description)
    if "location" in kinds and case.location.address:
        found.add(case.location.address)
    for name, held in personal.personal_attributes(workflow).items():
        if name in case.attributes and not held.isdisjoint(kinds):
            found |= set(personal.text_values(case.attributes[name]))
    return found


def _scrubbed(message: OutboxMessage, values: set[str]) -> OutboxMessage | None:
    """``message`` with every erased value in its payload and last error replaced, or
    ``None`` when it holds none."""
    if not values:
        return None
    payload = _replaced(message.payload, values)
    error = None if message.last_error is None else _replaced(message.last_error, values)
    if payload == message.payload and error == message.last_error:
        return None
    return message.model_copy(update={"payload": payload, "last_error": error})


def _replaced(value: Any, values: set[str]) -> Any:
    if isinstance(value, str):
        for found in sorted(values, key=len, reverse=True):
            if found:
                value = value.replace(found, personal.REDACTED)
        return value
    if isinstance(value, Mapping):
        return {k: _replaced(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replaced(v, values) for v in value]
    return value


def _case_entry(
    case: Case,
    contact: ReporterContact | None,
    events: list[AuditEvent],
    messages: list[OutboxMessage],
    reporter_id: str,
) -> JSON:
    shown = case.model_copy(update={"contact": contact})
    return {
        "case": shown.model_dump(mode="json"),
        "inputs": [
            {
                "at": e.at.isoformat(),
                "trigger": e.trigger,
                "payload": e.payload,
                "reason": e.reason,
            }
            for e in events
            if e.actor == reporter_id
        ],
        "notifications": [
            {
                "id": m.id,
                "event": m.event,
                "channel": m.channel,
                "status": m.status,
                "created_at": m.created_at.isoformat(),
                "message": m.payload,
            }
            for m in messages
            if m.recipient == "reporter"
        ],
    }
