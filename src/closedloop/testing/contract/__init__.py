"""The CaseStore contract suite: run it against your own store adapter.

Every store closedloop ships passes it (in-memory, SQLite, PostgreSQL). A third-party
adapter subclasses :class:`CaseStoreContract` in a test module and says how to make
its store, as a method::

    from closedloop.testing.contract import CaseStoreContract

    class TestMyStore(CaseStoreContract):
        def make_store(self):
            return MyStore(...)             # over a fresh, empty database

        def reopen_store(self, store):      # optional: another object, same data
            return MyStore(store.url)

or as a fixture returning a function that opens store objects over one fresh
database per test::

    class TestMyStore(CaseStoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: MyStore(tmp_path / "cases.db")

Stores that also answer the case queries (``find_cases``, ``count_cases``) add
:class:`CaseQueryContract`; stores that stream every audit trail in one read
(``stream_events``, the :class:`~closedloop.engine.ports.EventStream` port) add
:class:`EventStreamContract`; stores that read the events of a window of time
(``events_between``, the :class:`~closedloop.engine.ports.EventsByTime` port) add
:class:`EventsByTimeContract`; stores whose transactions read and write many cases at a
time (the :class:`~closedloop.engine.ports.CaseBatches` port) add
:class:`CaseBatchContract`; stores whose transactions hand out cases from memory (the
:class:`~closedloop.engine.ports.RecentCases` port) add :class:`RecentCasesContract`;
stores that keep signed checkpoints (the
:class:`~closedloop.engine.ports.CheckpointStore` port) add :class:`CheckpointContract`.
For pytest's detailed assertion messages, call
``pytest.register_assert_rewrite("closedloop.testing.contract")`` in a ``conftest.py``
before this module is imported.

This module imports pytest; ``closedloop.testing`` does not import it.
"""

from __future__ import annotations

from closedloop.testing.contract.base import StoreFixtures
from closedloop.testing.contract.batches import CaseBatchContract
from closedloop.testing.contract.cases import CaseContract
from closedloop.testing.contract.checkpoints import CheckpointContract
from closedloop.testing.contract.outbox import OutboxContract
from closedloop.testing.contract.queries import CaseQueryContract
from closedloop.testing.contract.recent import RecentCasesContract
from closedloop.testing.contract.streams import EventsByTimeContract, EventStreamContract
from closedloop.testing.contract.timers import DuePointContract


class CaseStoreContract(CaseContract, DuePointContract, OutboxContract):
    """The whole CaseStore port: cases, events, contact data, idempotency, timers
    and outbox. Subclass it and define ``make_store`` (see the module's docstring)."""


__all__ = [
    "CaseBatchContract",
    "CaseContract",
    "CaseQueryContract",
    "CaseStoreContract",
    "CheckpointContract",
    "DuePointContract",
    "EventStreamContract",
    "EventsByTimeContract",
    "OutboxContract",
    "RecentCasesContract",
    "StoreFixtures",
]
