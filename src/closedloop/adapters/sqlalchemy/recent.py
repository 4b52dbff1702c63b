"""``RecentRows``: the rows of the cases a store's transactions read or committed lately.

A command mostly fires on a case that this process wrote or read just before (the
host shows a case, then a user acts on it; a dispatcher's command follows the
report). Keeping what that case's row held (its body's text, version, chain head and
contact data) lets the next command on it skip reading the row: its guarded UPDATE
(``WHERE version = :expected``) matches no row when another writer changed the case
since, and the engine then runs the command again reading the row (see
:class:`~closedloop.engine.ports.RecentCases`). A row held here is a snapshot the
database gave or took at one version, so it is right for exactly that version: every
change of a case's body, head or contact data is a new version (an event is written
with each, and an erasure writes one), which is what makes the version a sufficient
check.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from closedloop.engine.model import ReporterContact


class RecentRow(NamedTuple):
    """What a case's row (and its contact row and latest event) held at ``version``."""

    text: str
    version: int
    head: str | None
    contact: ReporterContact | None
    columns: Mapping[str, Any] | None = None
    """The values of the row's queryable columns (``rows.case_written``), when the
    transaction that wrote them kept its case: the next write of the case compares its
    own with them, without computing them again from the case it read."""


class RecentRows:
    """The rows of the cases read or committed lately, by case id, at most ``keep`` of
    them (:attr:`KEEP` by default): when full, the one used least recently goes. Shared
    by the threads of a store; a lock keeps it exact (held for lookups only). A row
    older than the one held for its case never replaces it."""

    KEEP = 4096

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._rows: OrderedDict[str, RecentRow] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, case_id: str) -> RecentRow | None:
        """The row held for the case, if any."""
        with self._lock:
            row = self._rows.get(case_id)
            if row is not None:
                self._rows.move_to_end(case_id)
            return row

    def put(self, case_id: str, row: RecentRow) -> None:
        """Hold ``row`` for the case, unless a row of a later version is held."""
        with self._lock:
            held = self._rows.get(case_id)
            if held is not None and held.version > row.version:
                return
            self._rows[case_id] = row
            self._rows.move_to_end(case_id)
            if len(self._rows) > self._keep:
                self._rows.popitem(last=False)

    def drop(self, case_id: str) -> None:
        """Forget the case's row (it is not known as it stands now)."""
        with self._lock:
            self._rows.pop(case_id, None)

    def clear(self) -> None:
        """Forget every row (after an erasure: their texts may hold erased data)."""
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)
