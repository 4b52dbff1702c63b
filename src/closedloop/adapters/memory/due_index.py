"""The in-memory store's timer index: each case's earliest timer instant and lease.

Not thread-safe on its own: :class:`~closedloop.adapters.memory.records.MemoryRecords`
holds its lock around every call.
"""

from __future__ import annotations

import heapq
from datetime import datetime

from closedloop.engine.ports import TimerClaim


class DueIndex:
    """Each case's ``next_timer_at`` and ticker's lease, and a heap of (instant, case) per
    workflow.

    The heaps are the index a claim reads, so its cost follows the number due (of the
    workflow asked for), not the number open. An entry whose case has since moved its
    instant (or has none) is stale and dropped when it reaches the top.
    """

    def __init__(self) -> None:
        self._next: dict[str, datetime] = {}
        self._leases: dict[str, TimerClaim] = {}
        self._orders: dict[str, list[tuple[datetime, str]]] = {}

    def set_next(self, case_id: str, at: datetime | None, workflow: str) -> None:
        """Make ``at`` the earliest timer instant of the case, of ``workflow`` (``None``:
        it has no timer)."""
        if at is None:
            self._next.pop(case_id, None)
            return
        if self._next.get(case_id) != at:
            heapq.heappush(self._orders.setdefault(workflow, []), (at, case_id))
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
        self,
        now: datetime,
        limit: int,
        *,
        owner: str,
        expires_at: datetime,
        token: str,
        workflow: str | None = None,
    ) -> list[TimerClaim]:
        """Lease up to ``limit`` cases due at ``now`` whose lease is free or expired,
        earliest first: of ``workflow`` (``None``: of any)."""
        found: list[TimerClaim] = []
        kept: dict[tuple[datetime, str], list[tuple[datetime, str]]] = {}
        orders = self._heaps(workflow)
        while len(found) < limit:
            order = self._earliest(orders)
            if order is None or order[0][0] > now:
                break
            entry = heapq.heappop(order)
            at, case_id = entry
            if entry in kept:
                continue  # a duplicate entry
            kept[entry] = order
            held = self._leases.get(case_id)
            if held is not None and held.expires_at > now:
                continue
            claim = TimerClaim(
                case_id=case_id, next_timer_at=at, owner=owner, expires_at=expires_at, token=token
            )
            self._leases[case_id] = claim
            found.append(claim)
        for entry, order in kept.items():  # the cases keep their instants: back in the heap
            heapq.heappush(order, entry)
        return found

    def next_due_at(self, workflow: str | None = None) -> datetime | None:
        """The earliest ``next_timer_at`` of any case of ``workflow`` (``None``: of any)."""
        order = self._earliest(self._heaps(workflow))
        return order[0][0] if order else None

    def _heaps(self, workflow: str | None) -> list[list[tuple[datetime, str]]]:
        if workflow is None:
            return list(self._orders.values())
        return [self._orders.setdefault(workflow, [])]

    def _earliest(
        self, orders: list[list[tuple[datetime, str]]]
    ) -> list[tuple[datetime, str]] | None:
        """The heap with the earliest live entry (stale tops dropped), or ``None``."""
        best: list[tuple[datetime, str]] | None = None
        for order in orders:
            while order and self._next.get(order[0][1]) != order[0][0]:
                heapq.heappop(order)
            if order and (best is None or order[0] < best[0]):
                best = order
        return best
