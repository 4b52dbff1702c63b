"""The in-memory store's due points and the index a claim reads.

Not thread-safe on its own: :class:`~closedloop.adapters.memory.records.MemoryRecords`
holds its lock around every call.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from datetime import datetime

from closedloop.engine.ports import DuePoint

_NO_LEASE = {"lease_owner": None, "lease_expires_at": None, "lease_token": None}


class DueIndex:
    """Every due point by id, which have fired, each case's points, and a heap by ``due_at``.

    The heap of (``due_at``, id) is the index a claim reads, so its cost follows the
    number due, not the number open. Entries of points since done, dropped or moved are
    stale and skipped when they reach the top.
    """

    def __init__(self) -> None:
        self._points: dict[str, DuePoint] = {}  # every due point by id
        self._done: set[str] = set()  # the ids of points that fired; they never fire again
        self._by_case: dict[str, set[str]] = {}
        self._order: list[tuple[datetime, str]] = []

    def live(self, case_id: str) -> list[DuePoint]:
        """The case's points that have not fired."""
        ids = self._by_case.get(case_id, ())
        return [self._points[i] for i in ids if i not in self._done]

    def merged(
        self, case_id: str, points: Sequence[DuePoint], *, live_only: bool = True
    ) -> list[DuePoint]:
        """``points`` as they would be stored: leases kept, fired points left as they are."""
        stored = {i: self._points[i] for i in self._by_case.get(case_id, ())}
        merged = []
        for point in points:
            if point.id in self._done:
                if not live_only:
                    merged.append(stored[point.id])
                continue
            held = stored.get(point.id)
            lease = (
                {
                    "lease_owner": held.lease_owner,
                    "lease_expires_at": held.lease_expires_at,
                    "lease_token": held.lease_token,
                }
                if held
                else _NO_LEASE
            )
            merged.append(point.model_copy(update=lease))
        return merged

    def replace(self, case_id: str, points: Sequence[DuePoint]) -> None:
        """Make ``points`` the case's live points (see :meth:`merged`); drop the others."""
        for point in self.merged(case_id, points, live_only=False):
            self._put(point)
        wanted = {p.id for p in points}
        for gone in [p.id for p in self.live(case_id) if p.id not in wanted]:
            self._drop(gone)

    def holds(self, point: DuePoint) -> bool:
        """Whether ``point`` is live and leased under its own ``lease_token``."""
        stored = self._points.get(point.id)
        return (
            stored is not None
            and point.id not in self._done
            and stored.lease_token == point.lease_token
        )

    def fresh(self, point: DuePoint) -> bool:
        """Whether ``point`` was never stored nor leased (scheduled in the transaction
        that completes it)."""
        return (
            point.lease_token is None
            and point.id not in self._points
            and (point.id not in self._done)
        )

    def due(self, now: datetime, limit: int) -> list[DuePoint]:
        """Up to ``limit`` live points due at ``now`` whose lease is free or expired."""
        found: list[DuePoint] = []
        kept: set[tuple[datetime, str]] = set()
        while self._order and self._order[0][0] <= now and len(found) < limit:
            entry = heapq.heappop(self._order)
            if entry in kept or not self._current(entry):
                continue  # a duplicate or stale entry
            kept.add(entry)
            point = self._points[entry[1]]
            if point.lease_expires_at is None or point.lease_expires_at <= now:
                found.append(point)
        for entry in kept:  # claimed or leased points stay live until completed
            heapq.heappush(self._order, entry)
        return found

    def complete(self, point_ids: Iterable[str]) -> None:
        """Mark the points fired: they are never live again."""
        self._done.update(point_ids)

    def lease(self, points: Sequence[DuePoint], held: dict[str, object]) -> list[DuePoint]:
        """Store ``points`` with the lease fields in ``held``; returns them as stored."""
        leased = [p.model_copy(update=held) for p in points]
        self._points.update((p.id, p) for p in leased)
        return leased

    def next_due_at(self) -> datetime | None:
        """The earliest ``due_at`` of any live point."""
        while self._order and not self._current(self._order[0]):
            heapq.heappop(self._order)
        return self._order[0][0] if self._order else None

    def _put(self, point: DuePoint) -> None:
        old = self._points.get(point.id)
        self._points[point.id] = point
        self._by_case.setdefault(point.case_id, set()).add(point.id)
        if point.id in self._done or (old is not None and old.due_at == point.due_at):
            return
        heapq.heappush(self._order, (point.due_at, point.id))

    def _drop(self, point_id: str) -> None:
        point = self._points.pop(point_id)  # its heap entry goes stale
        self._by_case.get(point.case_id, set()).discard(point_id)

    def _current(self, entry: tuple[datetime, str]) -> bool:
        """Whether a heap entry still stands for a live point at that due time."""
        at, point_id = entry
        point = self._points.get(point_id)
        return point is not None and point_id not in self._done and point.due_at == at
