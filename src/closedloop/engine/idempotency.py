"""Idempotent commands: a key sent twice with the same command gives the first result."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from closedloop.engine import audit
from closedloop.engine.model import Case, ReporterContact, printable
from closedloop.engine.ports import CaseStore, CaseTransaction, IdempotencyRecord
from closedloop.errors import ClosedLoopError, IdempotencyConflict, ValidationError

_ENCODER = json.JSONEncoder(sort_keys=True, default=repr, ensure_ascii=True)
"""What ``json.dumps`` builds for these options on every call, built once."""


def fingerprint(*parts: Any) -> str:
    """A digest of a command (its kind, target, actor and payload) to compare retries by.

    Raises:
        ValidationError: the command holds data that is not JSON-compatible (a cycle,
            keys of mixed types).
    """
    try:
        text = _ENCODER.encode(parts)
    except (TypeError, ValueError, RecursionError):
        raise ValidationError(
            [("<payload>", "is not JSON-compatible data (a cycle, or keys that are not text)")],
            subject="command",
        ) from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def keyed(key: str | None, *parts: Any) -> str:
    """The :func:`fingerprint` of a command sent with ``key``; for one without a key,
    whose fingerprint nothing compares, ``""`` without computing it.

    Raises:
        ValidationError: a keyed command holds data that is not JSON-compatible.
    """
    return "" if key is None else fingerprint(*parts)


def first_result(tx: CaseTransaction, key: str | None, digest: str) -> Case | None:
    """The case as the first command with ``key`` left it, or ``None`` for a new key.

    Raises:
        ValidationError: the key is not text of 1 to 200 characters.
        IdempotencyConflict: the key was used for a different command.
    """
    if key is None:
        return None
    if not printable(key, 200):
        raise ValidationError(
            [("idempotency_key", "must be 1 to 200 printable characters of valid Unicode")],
            subject="command",
        )
    record = tx.get_idempotency(key)
    if record is None:
        return None
    if record.fingerprint != digest:
        raise IdempotencyConflict(key)
    return audit.replay(tx.get_events(record.case_id)[: record.version])


def remember(tx: CaseTransaction, key: str | None, digest: str, case: Case) -> None:
    """Record ``case`` as the result of the command with ``key`` (if any)."""
    if key is not None:
        record = IdempotencyRecord(
            key=key, fingerprint=digest, case_id=case.id, version=case.version
        )
        tx.put_idempotency(record)


def settled(
    store: CaseStore, key: str | None, digest: str, refusal: ClosedLoopError
) -> tuple[Case, ReporterContact | None]:
    """The first result of a keyed command that was just refused or lost a race, with
    the case's contact data.

    A sender's read of the key may come before a concurrent sender with the same key
    commits, and its read of the case after (READ COMMITTED): it then sees the case as
    the first command left it and is refused, or loses the version check. The key is
    read again in a transaction of its own; once the case showed the first command's
    work, that command's key is committed too.

    Raises:
        ClosedLoopError: ``refusal`` itself, when no command with the key committed.
    """
    if key is None or isinstance(refusal, IdempotencyConflict) or not printable(key, 200):
        raise refusal
    with store.transaction(read_only=True) as tx:
        record = tx.get_idempotency(key)
        if record is None or record.fingerprint != digest:
            raise refusal
        first = audit.replay(tx.get_events(record.case_id)[: record.version])
        return first, tx.get_contact(record.case_id)
