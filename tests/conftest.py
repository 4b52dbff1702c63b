"""Shared fixtures: one store fixture parametrised over every backend.

``memory`` always runs; ``sqlite`` uses a real file; ``postgres`` needs a server whose
URL is in ``CLOSEDLOOP_TEST_POSTGRES_URL`` (``.ci/run`` starts one). Without it a
developer's run skips the PostgreSQL cases with the reason; under ``CI=true`` a
missing server is an error, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from closedloop import Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import CaseStore
from closedloop.testing import ManualClock, load_profile_from_env, register_profiles

register_profiles()
load_profile_from_env()  # HYPOTHESIS_PROFILE=ci|dev|thorough; ci under CI=true

POSTGRES_URL_VAR = "CLOSEDLOOP_TEST_POSTGRES_URL"
IN_CI = os.environ.get("CI", "").lower() == "true"

StoreFactory = Callable[[], CaseStore]


def postgres_url() -> str:
    """The test server's URL, or skip (fail under CI) when there is none."""
    url = os.environ.get(POSTGRES_URL_VAR)
    if url:
        return url
    if IN_CI:
        pytest.fail(f"CI=true but {POSTGRES_URL_VAR} is not set; .ci/run must start PostgreSQL")
    pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_VAR} (as .ci/run does) to run this")


class Backend:
    """One storage backend for tests: fresh empty databases, and reopening one.

    ``fresh()`` makes a new empty database (a new SQLite file, a new PostgreSQL
    schema, a new in-memory store); ``reopen(store)`` returns a new store object over
    the same data, as a restarted process would get.
    """

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self._tmp = tmp_path
        self._made: list[CaseStore] = []
        self._files = 0
        self._where: dict[int, tuple[str, str | None]] = {}
        self._url = postgres_url() if name == "postgres" else ""

    def fresh(self) -> CaseStore:
        if self.name == "memory":
            return InMemoryStore()
        if self.name == "sqlite":
            self._files += 1
            url = f"sqlite:///{self._tmp / f'cases-{self._files}.db'}"
            return self._open(url, None)
        return self._open(self._url, f"t_{uuid.uuid4().hex[:12]}")

    def reopen(self, store: CaseStore) -> CaseStore:
        if self.name == "memory":
            return store
        url, schema = self._where[id(store)]
        return self._open(url, schema)

    def _open(self, url: str, schema: str | None) -> CaseStore:
        from closedloop.adapters.sqlalchemy import SQLStore

        store = SQLStore(url, schema=schema)
        self._made.append(store)
        self._where[id(store)] = (url, schema)
        return store

    def close(self) -> None:
        for store in self._made:
            store.close()  # type: ignore[attr-defined]


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.external_service)]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each storage backend in turn."""
    chosen = Backend(request.param, tmp_path)
    yield chosen
    chosen.close()


@pytest.fixture
def store_factory(backend: Backend) -> StoreFactory:
    """Makes stores over ONE database: call it again to 'restart' on the same data."""
    first = backend.fresh()
    return lambda: backend.reopen(first)


@pytest.fixture
def store(store_factory: StoreFactory) -> CaseStore:
    """A store on each backend."""
    return store_factory()


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at Monday 2026-01-05 09:00 UTC."""
    return ManualClock()


@pytest.fixture
def engine(store: CaseStore, clock: ManualClock) -> Engine:
    """The standard workflow on each store, with a manual clock."""
    return Engine(workflows.standard(), store=store, clock=clock)


@pytest.fixture
def memory_engine(clock: ManualClock) -> Engine:
    """The standard workflow on the in-memory store only (for pure-engine unit tests)."""
    return Engine(workflows.standard(), store=InMemoryStore(), clock=clock)
