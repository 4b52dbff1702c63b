"""The in-memory store's timer index: each case's earliest timer instant and lease.

Not thread-safe on its own: :class:`~closedloop.adapters.memory.records.MemoryRecords`
holds its lock around every call.
"""

from __future__ import annotations

import heapq
from datetime import datetime

from closedloop.engine.ports import TimerClaim


class DueIndex:
    """Each case's ``next_timer_at`` and ticker's lease, and a heap of (instant, case).

    The heap is the index a claim reads, so its cost follows the number due, not the
    number open. An entry whose case has since moved its instant (or has none) is
    stale and dropped when it reaches the top.
    """

    def __init__(self) -> None:
        self._next: dict[str, datetime] = {}
        self._leases: dict[str, TimerClaim] = {}
        self._order: list[tuple[datetime, str]] = []

    def set_next(self, case_id: str, at: datetime | None) -> None:
        """Make ``at`` the case's earliest timer instant (``None``: it has no timer)."""
        if at is None:
            self._next.pop(case_id, None)
            return
        if self._next.get(case_id) != at:
            heapq.heappush(self._order, (at, case_id))
        self._next[case_id] = at

    def lease(self, case_id: str) -> TimerClaim | None:
        """The case's lease as stored (expired or not), or ``None``."""
        return self._leases.get(case_id)

    def set_lease(self, case_id: str, claim: TimerClaim | None) -> None:
        """Store the case's lease (``None``: no ticker holds it)."""
        if claim is None:
            self._leases.pop(case_id, None)
        else:
            self._leases[case_id] = claim

    def claim(
        self, now: datetime, limit: int, *, owner: str, expires_at: datetime, token: str
    ) -> list[TimerClaim]:
        """Lease up to ``limit`` cases due at ``now`` whose lease is free or expired,
        earliest first."""
        found: list[TimerClaim] = []
        kept: set[tuple[datetime, str]] = set()
        while self._order and self._order[0][0] <= now and len(found) < limit:
            entry = heapq.heappop(self._order)
            at, case_id = entry
            if entry in kept or self._next.get(case_id) != at:
                continue  # a duplicate or stale entry
            kept.add(entry)
            held = self._leases.get(case_id)
            if held is not None and held.expires_at > now:
                continue
            claim = TimerClaim(
                case_id=case_id, next_timer_at=at, owner=owner, expires_at=expires_at, token=token
            )
            self._leases[case_id] = claim
            found.append(claim)
        for entry in kept:  # the cases keep their instants: back into the heap
            heapq.heappush(self._order, entry)
        return found

    def next_due_at(self) -> datetime | None:
        """The earliest ``next_timer_at`` of any case."""
        while self._order and self._next.get(self._order[0][1]) != self._order[0][0]:
            heapq.heappop(self._order)
        return self._order[0][0] if self._order else None
