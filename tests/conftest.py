"""Shared fixtures: one store fixture parametrised over every backend.

``memory`` always runs; ``sqlite`` uses a real file; ``postgres`` needs a server whose
URL is in ``CLOSEDLOOP_TEST_POSTGRES_URL`` (``.ci/run`` starts one). Without it a
developer's run skips the PostgreSQL cases with the reason; under ``CI=true`` a
missing server is an error, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
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
        return self._open(self._url, new_schema())

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


_MADE_SCHEMAS: list[str] = []
"""The PostgreSQL schemas this test process made (dropped when its session ends)."""


def new_schema(prefix: str = "t") -> str:
    """A new PostgreSQL schema name for one test, dropped with everything in it when the
    test session ends (see :func:`_drop_made_schemas`)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _MADE_SCHEMAS.append(name)
    return name


@pytest.fixture(autouse=True, scope="session")
def _drop_made_schemas() -> Iterator[None]:
    """Drop the schemas this process's tests made with :func:`new_schema`, so that a
    developer's database does not fill up with them from run to run. Each process of a
    parallel run drops its own, which no other process uses."""
    yield
    url = os.environ.get(POSTGRES_URL_VAR)
    if url and _MADE_SCHEMAS:
        drop_schemas(url, _MADE_SCHEMAS)
        _MADE_SCHEMAS.clear()


def drop_schemas(url: str, schemas: Sequence[str], *, at_once: int = 20) -> None:
    """Drop the PostgreSQL ``schemas``, ``at_once`` to a statement. Schemas still locked
    by a connection a test left open are left behind rather than waited for."""
    from sqlalchemy import create_engine, exc, text

    engine = create_engine(url)
    try:
        for start in range(0, len(schemas), at_once):
            names = ", ".join(f'"{name}"' for name in schemas[start : start + at_once])
            try:
                with engine.begin() as connection:
                    connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                    connection.execute(text(f"DROP SCHEMA IF EXISTS {names} CASCADE"))
            except exc.OperationalError:
                continue  # still in use: left for the server's owner
    finally:
        engine.dispose()


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
