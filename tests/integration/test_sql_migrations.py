"""The shipped Alembic migrations: they build exactly the models' schema, and agree with
the schema a store creates by itself."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, column, create_engine, insert, inspect, table, text, update
from sqlalchemy.sql.expression import TableClause

from closedloop.adapters.sqlalchemy import HEAD_REVISION, SQLStore, metadata, rows, upgrade
from closedloop.adapters.sqlalchemy.migrate import MIGRATIONS
from closedloop.adapters.sqlalchemy.schema import (
    AUXILIARY_PREFIXES,
    EXPRESSION_INDEXES,
    VERSION_TABLE,
    Instant,
    case_events,
    cases,
    version_table,
)
from closedloop.engine.case_query import CaseFilter, Party
from closedloop.engine.integrity import column_problems
from closedloop.engine.model import Case, Duplicate, Location
from closedloop.errors import DowngradeRefused, SchemaTooNew, StoreError
from closedloop.testing.contract.base import (
    LEASE,
    T0,
    add,
    commit,
    deadline,
    new_case,
    read,
    revise,
)
from tests.conftest import new_schema, postgres_url

alembic = pytest.importorskip("alembic")

from alembic import command  # noqa: E402
from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.db'}", None
    return postgres_url(), new_schema()


def differences(url: str, schema: str | None) -> list[object]:
    """What Alembic finds different between the database and the models."""
    target = metadata
    if schema is not None:
        target = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.sorted_tables:
            table.to_metadata(target, schema=schema)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_schemas": schema is not None,
                "version_table": VERSION_TABLE,
                "include_object": lambda _obj, name, kind, _reflected, _other: (
                    not (kind == "index" and name in EXPRESSIONS)
                ),
                "version_table_schema": schema,
                "include_name": lambda name, kind, _parent: (
                    name == schema
                    if kind == "schema"
                    # The SQLite search and co-unit tables (and FTS5's own) are not models;
                    # expression indexes are checked by name in the test below.
                    else not (kind == "table" and name.startswith(AUXILIARY_PREFIXES))
                    and not (kind == "index" and name in EXPRESSIONS)
                ),
            },
        )
        found: list[object] = compare_metadata(context, target)
    engine.dispose()
    return found


EXPRESSIONS = {name for names in EXPRESSION_INDEXES.values() for name in names}


@pytest.mark.parametrize("made_by", ["upgrade", "store"])
def test_migrated_and_store_made_databases_have_the_expression_indexes(
    database: tuple[str, str | None], made_by: str
) -> None:
    url, schema = database
    if made_by == "upgrade":
        upgrade(url, schema=schema)
    else:
        SQLStore(url, schema=schema).close()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            listed = text("SELECT name FROM sqlite_master WHERE type = 'index'")
        else:
            listed = text("SELECT indexname FROM pg_indexes WHERE schemaname = :s").bindparams(
                s=schema or "public"
            )
        found = set(connection.execute(listed).scalars())
        wanted = set(EXPRESSION_INDEXES[connection.dialect.name])
    engine.dispose()
    assert wanted <= found


def test_migrated_and_store_made_databases_keep_the_derived_columns_alike(
    database: tuple[str, str | None],
) -> None:
    # Alembic compares neither triggers nor an index's WHERE or method: the frozen
    # statements of revisions 0009 and 0010 must say what the models say.
    url, schema = database
    found = []
    for made_by in ("upgrade", "store"):
        named = url if schema is not None else url.replace(".db", f"_{made_by}.db")
        where = None if schema is None else new_schema(f"{schema}_{made_by}")
        if made_by == "upgrade":
            upgrade(named, schema=where)
        else:
            SQLStore(named, schema=where).close()
        found.append(_derived_definitions(named, where))
    assert found[0] == found[1]
    assert len(found[0]) == (10 if schema is None else 11)


def _derived_definitions(url: str, schema: str | None) -> list[str]:
    """The definitions of the triggers and indexes over the 0009 columns."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        if schema is None:
            listed = text(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' OR name IN "
                "('ix_closedloop_cases_supervised', 'ix_closedloop_cases_merged_into')"
            )
        else:
            listed = text(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = :s AND indexname IN "
                "('ix_closedloop_cases_supervised', 'ix_closedloop_cases_merged_into', "
                "'ix_closedloop_cases_co_units', 'ix_closedloop_cases_followers', "
                "'ix_closedloop_cases_search_text')"
                " UNION ALL SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c "
                "ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND NOT t.tgisinternal"
                " UNION ALL SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n "
                "ON n.oid = p.pronamespace WHERE n.nspname = :s"
            ).bindparams(s=schema)
        found = sorted(
            " ".join(d.replace(f'"{schema}".', "").replace(f"{schema}.", "").split())
            for d in connection.execute(listed).scalars()
        )
    engine.dispose()
    return found


def test_head_revision_is_the_newest_shipped_migration() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD_REVISION


def test_the_migrated_schema_equals_the_models(database: tuple[str, str | None]) -> None:
    assert upgrade(*database[:1], schema=database[1]) == HEAD_REVISION
    assert differences(*database) == []


def test_a_store_made_schema_equals_the_models_and_upgrading_it_is_a_no_op(
    database: tuple[str, str | None],
) -> None:
    store = SQLStore(database[0], schema=database[1])
    add(store, "c1")
    assert differences(*database) == []
    assert upgrade(database[0], schema=database[1]) == HEAD_REVISION
    assert read(store, lambda tx: tx.get_case("c1")) is not None
    store.close()


def test_a_migrated_database_opens_without_creating_anything(
    database: tuple[str, str | None],
) -> None:
    with pytest.raises(
        StoreError, match="no closedloop tables; create them with `closedloop db upgrade"
    ):
        SQLStore(database[0], schema=database[1], create_schema=False)
    upgrade(database[0], schema=database[1])
    store = SQLStore(database[0], schema=database[1], create_schema=False)
    add(store, "c1")
    store.close()


def test_a_database_at_another_revision_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    SQLStore(url).close()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(update(version_table).values(version_num="0000"))
    engine.dispose()
    with pytest.raises(StoreError, match="revision '0000'"):
        SQLStore(url)


def test_a_database_a_later_closedloop_upgraded_is_refused_as_newer(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    upgrade(url, schema=schema)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    if schema is not None:
        engine = engine.execution_options(schema_translate_map={None: schema})
    with engine.begin() as connection:
        connection.execute(update(version_table).values(version_num="9999"))
    engine.dispose()
    for refused in (lambda: SQLStore(url, schema=schema), lambda: upgrade(url, schema=schema)):
        with pytest.raises(SchemaTooNew) as caught:
            refused()
        assert (caught.value.found, caught.value.known) == ("9999", HEAD_REVISION)
        assert "newer than this closedloop knows" in str(caught.value)
        assert "restore a backup made before the upgrade" in str(caught.value)


def test_upgrading_to_a_revision_older_than_the_databases_is_refused(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    assert upgrade(url, schema=schema, revision="0008") == "0008"
    with pytest.raises(DowngradeRefused) as caught:
        upgrade(url, schema=schema, revision="0005")
    assert (caught.value.found, caught.value.requested) == ("0008", "0005")
    assert "downgrades are not supported" in str(caught.value)
    with pytest.raises(StoreError, match="there is no schema revision '0004'"):
        upgrade(url, schema=schema, revision="0004")
    assert upgrade(url, schema=schema, revision="0008") == "0008"  # where it is: a no-op
    assert upgrade(url, schema=schema) == HEAD_REVISION


def test_foreign_tables_without_a_revision_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'theirs.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE closedloop_cases (id TEXT)"))
    engine.dispose()
    with pytest.raises(StoreError, match="no recorded schema revision"):
        SQLStore(url)


def test_a_database_at_the_first_revision_upgrades_with_its_data(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    assert upgrade(url, schema=schema, revision="0001") == "0001"
    with pytest.raises(StoreError, match="revision '0001'"):
        SQLStore(url, schema=schema)
    (case, event), (other, opened) = new_case("c1"), new_case("c2")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    if schema is not None:
        engine = engine.execution_options(schema_translate_map={None: schema})
    with engine.begin() as connection:  # rows as a 0001 store wrote them
        for written, first in ((case, event), (other, opened)):
            connection.execute(insert(cases), _row_before_0009(written))
            connection.execute(insert(case_events), rows.event_values(first))
        connection.execute(
            insert(_due_points_0001(schema)),
            [
                _point("c1", "warning", T0 - LEASE, "done"),  # fired: no longer a timer
                _point("c1", "breach", T0, "live"),
                _point("c1", "escalation", T0 + LEASE, "live"),
                _point("c2", "breach", T0 - LEASE, "done"),
            ],
        )
    engine.dispose()
    assert upgrade(url, schema=schema) == HEAD_REVISION
    assert differences(url, schema) == []
    store = SQLStore(url, schema=schema)
    assert read(store, lambda tx: tx.get_case("c1")) == case
    assert store.next_due_at() == T0  # the earliest live point of each case
    claimed = store.claim_due(T0 + 10 * LEASE, owner="w1", lease=LEASE, limit=10)
    assert [(c.case_id, c.next_timer_at) for c in claimed] == [("c1", T0)]
    store.close()


def test_a_database_at_0008_upgrades_its_cases_to_the_derived_columns(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    assert upgrade(url, schema=schema, revision="0008") == "0008"
    written = [
        new_case(
            "master",
            description="井盖 missing",
            location=Location(area="310101", address="9 Pine Rd"),
            co_units=("roads", "parks"),
            supervised=True,
            duplicates=(
                Duplicate(case="dup", reporter="citizen-2", at=T0),
                Duplicate(case="dup2", reporter="citizen-2", at=T0),
            ),
        ),
        new_case("dup", reporter_id="citizen-2", merged_into="master"),
        new_case("plain"),
    ]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    if schema is not None:
        engine = engine.execution_options(schema_translate_map={None: schema})
    with engine.begin() as connection:  # rows as a 0008 store wrote them
        for case, event in written:
            connection.execute(insert(cases), _row_before_0009(case))
            connection.execute(insert(case_events), rows.event_values(event))
    engine.dispose()
    assert upgrade(url, schema=schema) == HEAD_REVISION
    assert differences(url, schema) == []
    store = SQLStore(url, schema=schema)
    for case, _event in written:  # verify finds every column as the store writes it
        assert column_problems(store, case) == []

    def ids(**criteria: object) -> list[str]:
        page = store.select_cases(CaseFilter(**criteria), order="oldest", after=None, limit=10)  # type: ignore[arg-type]
        return [case.id for case in page.cases]

    assert ids(co_unit="parks") == ["master"]
    assert ids(sight=Party(follower="citizen-2")) == ["master"]
    assert ids(supervised=True) == ["master"]
    assert ids(supervised=False) == ["dup", "plain"]
    assert ids(merged_into="master") == ["dup"]
    assert ids(text="pine rd") == ["master"]
    assert ids(text="井盖") == ["master"]
    # The triggers now follow the columns: a change to the case moves its index rows.
    master, head = written[0]
    changed, event = revise(master, head, co_units=("water",))
    commit(store, lambda tx: tx.update_case(changed, master.version, event))
    assert ids(co_unit="parks") == []
    assert ids(co_unit="water") == ["master"]
    store.close()


def _row_before_0009(case: Case) -> dict[str, object]:
    """The case row as revisions up to 0008 wrote it (0009 adds the derived columns)."""
    values = rows.case_values(case)
    for name in ("search_text", "co_units", "followers", "supervised", "merged_into"):
        del values[name]
    return values


def _due_points_0001(schema: str | None) -> TableClause:
    """The due points table as revisions 0001 to 0007 had it (0008 drops it)."""
    return table(
        "closedloop_due_points",
        *(column(name) for name in ("id", "case_id", "clock", "kind", "level", "status")),
        column("due_at", Instant()),
        schema=schema,
    )


def _point(case_id: str, kind: str, at: datetime, status: str) -> dict[str, object]:
    return {
        "id": f"{case_id}/{kind}",
        "case_id": case_id,
        "clock": "handling",
        "kind": kind,
        "level": 0,
        "due_at": at,
        "status": status,
    }


def test_a_database_at_0009_counts_its_cases_into_the_tally_and_downgrades_again(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    assert upgrade(url, schema=schema, revision="0009") == "0009"
    written = [
        new_case("a", lead_unit="water"),
        new_case("b", lead_unit="water", deadline=deadline(T0, warning="red")),
        new_case("c", lead_unit="water", state="assigned"),
        new_case("d"),
    ]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    if schema is not None:
        engine = engine.execution_options(schema_translate_map={None: schema})
    with engine.begin() as connection:  # rows as a 0009 store wrote them
        for case, event in written:
            connection.execute(insert(cases), rows.case_values(case))
            connection.execute(insert(case_events), rows.event_values(event))
    assert upgrade(url, schema=schema) == HEAD_REVISION
    store = SQLStore(url, schema=schema)
    assert store.facet_counts(CaseFilter(), "lead_unit") == {"water": 3, None: 1}
    assert store.facet_counts(CaseFilter.of(lead_unit="water"), "state") == {
        "reported": 2, "assigned": 1}  # fmt: skip
    assert store.facet_counts(CaseFilter(), "warning_level") == {"red": 1, None: 3}
    add(store, "e", lead_unit="roads")  # the triggers count from now on
    assert store.facet_counts(CaseFilter(), "lead_unit") == {"water": 3, "roads": 1, None: 1}
    store.close()

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes.update(connection=connection, schema=schema)
        command.downgrade(config, "0009")
        assert not inspect(connection).has_table("closedloop_case_tally", schema=schema)
        # No trigger is left behind: a case is stored as at revision 0009.
        connection.execute(insert(cases), rows.case_values(new_case("f")[0]))
    engine.dispose()
    assert upgrade(url, schema=schema) == HEAD_REVISION
    store = SQLStore(url, schema=schema)
    assert store.facet_counts(CaseFilter(), "state") == {"reported": 5, "assigned": 1}
    store.close()
