"""The in-memory store's checkpoints: the ``CheckpointStore`` port over its records."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from closedloop.adapters.memory.records import MemoryRecords
from closedloop.engine.ports import CaseHead, Checkpoint
from closedloop.errors import CheckpointTaken, ValidationError


class CheckpointBook:
    """Stored checkpoints (as JSON rows) and each case's anchor, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[int, str] = {}
        self.anchors: dict[str, tuple[int, int]] = {}
        """Each checkpointed case's anchor: (checkpoint number, signed sequence number)."""


class MemoryCheckpoints:
    """The checkpoint members of :class:`~closedloop.adapters.memory.InMemoryStore`."""

    _records: MemoryRecords
    _book: CheckpointBook

    def unanchored_heads(self, *, limit: int) -> list[CaseHead]:
        """Current heads no checkpoint has signed, oldest case first, at most ``limit``."""
        _check_limit(limit)
        with self._book.lock:
            anchors = dict(self._book.anchors)
        heads: list[CaseHead] = []
        for case_id in self._records.case_ids():
            rows = list(self._records.events.get(case_id, ()))
            anchored = anchors.get(case_id)
            if not rows or (anchored is not None and anchored[1] == len(rows)):
                continue
            last = rows[-1]
            heads.append(CaseHead(case_id=case_id, seq=last.seq, hash=last.hash))
            if len(heads) == limit:
                break
        return heads

    def last_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or ``None``."""
        with self._book.lock:
            row = self._book.rows[max(self._book.rows)] if self._book.rows else None
        return None if row is None else Checkpoint.model_validate_json(row)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store the checkpoint and anchor its cases to it.

        Raises:
            CheckpointTaken: a checkpoint with that number exists already.
        """
        row = checkpoint.model_dump_json()
        with self._book.lock:
            if checkpoint.number in self._book.rows:
                raise CheckpointTaken(checkpoint.number)
            self._book.rows[checkpoint.number] = row
            for head in checkpoint.heads:
                kept = self._book.anchors.get(head.case_id)
                if kept is None or kept[0] < checkpoint.number:
                    self._book.anchors[head.case_id] = (checkpoint.number, head.seq)

    def checkpoints(self, *, after: int = 0, limit: int = 100) -> list[Checkpoint]:
        """Up to ``limit`` checkpoints numbered above ``after``, in number order."""
        _check_limit(limit)
        with self._book.lock:
            numbers = sorted(n for n in self._book.rows if n > after)[:limit]
            rows = [self._book.rows[n] for n in numbers]
        return [Checkpoint.model_validate_json(row) for row in rows]

    def signed_anchors(self, case_ids: Sequence[str]) -> dict[str, int]:
        """For each of ``case_ids`` some checkpoint signed a head of, the number of the
        latest such checkpoint, read from the checkpoints' own heads (the data their
        signatures cover), never from the anchors."""
        wanted = set(case_ids)
        with self._book.lock:
            rows = sorted(self._book.rows.items(), reverse=True)
        found: dict[str, int] = {}
        for number, row in rows:
            if len(found) == len(wanted):
                break
            for head in Checkpoint.model_validate_json(row).heads:
                if head.case_id in wanted:
                    found.setdefault(head.case_id, number)
        return found

    def anchor(self, case_id: str) -> int | None:
        """The number of the latest checkpoint that signed a head of the case."""
        with self._book.lock:
            kept = self._book.anchors.get(case_id)
        return None if kept is None else kept[0]


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError([("limit", "must be a whole number of at least 1")])
