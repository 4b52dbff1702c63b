"""Every store closedloop ships, through the published CaseStore contract suite."""

from __future__ import annotations

import pytest

from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import CaseStore
from closedloop.testing.contract import CaseQueryContract, CaseStoreContract
from tests.conftest import StoreFactory


class TestEveryStore(CaseStoreContract, CaseQueryContract):
    """Memory, a SQLite file and PostgreSQL (the conftest's parametrised factory)."""

    @pytest.fixture
    def make_store(self, store_factory: StoreFactory) -> StoreFactory:
        return store_factory


class TestMethodForm(CaseStoreContract):
    """The suite also takes ``make_store`` as a plain method, as a third party may write."""

    def make_store(self) -> CaseStore:
        return InMemoryStore()
