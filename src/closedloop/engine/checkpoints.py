"""Signed checkpoints: audit heads anchored by a key the database does not hold.

A hash chain proves the order of a case's events, not that none were cut off the end:
whoever can write the database can delete a trail's last events, roll the case back
and the chain still verifies. A checkpoint signs, with HMAC-SHA256 under the host's
key, the current head (case id, sequence number, hash) of every case that changed
since the previous checkpoint, and chains to that checkpoint's signature. Verifying a
case then also compares its trail with the head its latest checkpoint signed
(:func:`anchor_problems`): a trail shorter than that head, or a different event at
that place, is reported. A host that publishes its checkpoints elsewhere
(``Engine.export_checkpoints``) can check them against the store later
(:func:`chain_problems`), so deleting checkpoints from the database is noticed too.

The key never enters the store. Signatures are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from closedloop.engine.audit import GENESIS, canonical_json
from closedloop.engine.model import AuditEvent
from closedloop.engine.ports import CaseHead, Checkpoint
from closedloop.errors import ValidationError

MIN_KEY_BYTES = 32
"""The shortest key accepted: 256 bits, the HMAC-SHA256 block's worth of secret."""


def checked_key(key: object) -> bytes:
    """``key`` as bytes, at least :data:`MIN_KEY_BYTES` long.

    Raises:
        ValidationError: not bytes, or too short to be a secret.
    """
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise ValidationError(
            [("checkpoint_key", f"must be at least {MIN_KEY_BYTES} random bytes")],
            subject="engine",
        )
    return bytes(key)


def signed(
    key: bytes, *, number: int, made_at: datetime, previous: str, heads: Sequence[CaseHead]
) -> Checkpoint:
    """A checkpoint of ``heads``, signed under ``key``."""
    draft = Checkpoint(
        number=number, made_at=made_at, previous=previous, heads=tuple(heads), signature=""
    )
    return draft.model_copy(update={"signature": signature(key, draft)})


def signature(key: bytes, checkpoint: Checkpoint) -> str:
    """The HMAC-SHA256, hex, over the checkpoint's canonical JSON without its signature."""
    content = canonical_json(checkpoint.model_dump(mode="json", exclude={"signature"}))
    return hmac.new(key, content, hashlib.sha256).hexdigest()


def genuine(key: bytes, checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint's signature is the one ``key`` gives (constant time)."""
    return hmac.compare_digest(signature(key, checkpoint), checkpoint.signature)


def previous_of(last: Checkpoint | None) -> str:
    """What the next checkpoint chains to: the last one's signature, or the genesis."""
    return GENESIS if last is None else last.signature


def anchor_problems(
    events: Sequence[AuditEvent], checkpoint: Checkpoint | None, number: int, key: bytes | None
) -> list[str]:
    """What is wrong with a case's trail against checkpoint ``number``, its anchor.

    ``checkpoint`` is that checkpoint as stored (``None`` when it is missing). Without
    a key the signature is not checked, only the head.
    """
    where = f"checkpoint {number}"
    if checkpoint is None:
        return [f"{where}, which signed this case's head, is missing"]
    if key is not None and not genuine(key, checkpoint):
        return [
            f"{where}'s signature does not verify under the key given: the key is not "
            "the one that signed it (a wrong or rotated key), or the checkpoint was altered"
        ]
    case_id = events[0].case_id if events else None
    head = next((h for h in checkpoint.heads if h.case_id == case_id), None)
    if head is None:
        return [f"{where} does not sign a head of this case"]
    if len(events) < head.seq:
        return [
            f"the trail has {len(events)} events but {where} signed event {head.seq} "
            "(events were removed from its end)"
        ]
    if events[head.seq - 1].hash != head.hash:
        return [f"event {head.seq} differs from the one {where} signed"]
    return []


def anchor_row_problems(number: int, row: int | None) -> list[str]:
    """What is wrong with the store's anchor row of a case checkpoint ``number`` signed
    last: the row is only an index, and one deleted or pointing elsewhere is reported."""
    if row is None:
        return [f"checkpoint {number} signed this case's head but its anchor row is missing"]
    if row != number:
        return [
            f"the case's anchor row names checkpoint {row} but checkpoint {number} "
            "signed its latest head"
        ]
    return []


def chain_problems(
    published: Sequence[Checkpoint], stored: Sequence[Checkpoint], key: bytes | None
) -> list[str]:
    """How the store's checkpoints differ from those a host published, in order.

    Every published checkpoint must be stored unchanged, each must chain to the one
    before, and (with a key) each signature must verify.
    """
    problems: list[str] = []
    by_number = {c.number: c for c in stored}
    previous: Checkpoint | None = None
    for checkpoint in sorted(published, key=lambda c: c.number):
        where = f"checkpoint {checkpoint.number}"
        if key is not None and not genuine(key, checkpoint):
            problems.append(
                f"{where}: the published copy's signature does not verify under the key "
                "given (a wrong or rotated key, or the copy was altered)"
            )
        follows = previous is not None and previous.number + 1 == checkpoint.number
        if follows and previous is not None and checkpoint.previous != previous.signature:
            problems.append(f"{where}: does not chain to checkpoint {previous.number}")
        kept = by_number.get(checkpoint.number)
        if kept is None:
            problems.append(f"{where}: missing from the store")
        elif kept != checkpoint:
            problems.append(f"{where}: the stored copy differs from the published one")
        previous = checkpoint
    return problems
