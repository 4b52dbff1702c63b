"""``InMemoryStore``: the reference CaseStore, for tests and for trying things out.

It keeps rows as JSON text, as a database would, so nothing a caller holds can
change what is stored, and every value makes the same round trip it makes in SQL.
Commits are atomic and checked optimistically under one lock, so threads see the
same outcomes as with a real database: success or ``ConcurrentModification``.
Due points and outbox messages follow the SQL store's rules exactly: the shared
contract suite (:mod:`closedloop.testing.contract`) holds both to them.
"""

from __future__ import annotations

from closedloop.adapters.memory.store import InMemoryStore
from closedloop.adapters.memory.transaction import InMemoryTransaction
from closedloop.engine.case_query import CasePage

__all__ = ["CasePage", "InMemoryStore", "InMemoryTransaction"]
