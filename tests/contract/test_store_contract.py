"""Every store closedloop ships, through the published CaseStore contract suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import CaseStore
from closedloop.testing.contract import (
    CaseQueryContract,
    CaseStoreContract,
    CheckpointContract,
    EventStreamContract,
)
from tests.conftest import Backend, StoreFactory


class TestEveryStore(CaseStoreContract, CaseQueryContract, CheckpointContract):
    """Memory, a SQLite file and PostgreSQL (the conftest's parametrised factory)."""

    @pytest.fixture
    def make_store(self, store_factory: StoreFactory) -> StoreFactory:
        return store_factory


class TestMethodForm(CaseStoreContract):
    """The suite also takes ``make_store`` as a plain method, as a third party may write."""

    def make_store(self) -> CaseStore:
        return InMemoryStore()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def sql_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens SQL stores over one fresh database: a SQLite file, then PostgreSQL."""
    backend = Backend(request.param, tmp_path)
    first = backend.fresh()
    yield lambda: backend.reopen(first)
    backend.close()


class TestSQLEventStream(EventStreamContract):
    """The SQL store streams every audit trail in one read, on SQLite and PostgreSQL."""

    @pytest.fixture
    def make_store(self, sql_factory: StoreFactory) -> StoreFactory:
        return sql_factory
