"""A host's store may implement ``ShownCases.select_shown`` without its ``show``
argument, as the port first stood: the engine then shows the page's cases itself, and
every viewer gets the page the shipped store gives them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.engine.case_query import CaseFilter, CasePage, Order
from closedloop.engine.model import ReporterContact
from closedloop.engine.ports import ShownCases
from closedloop.testing import ManualClock
from closedloop.testing.contract.base import T0
from tests.cast import CITIZEN, DISPATCHER, OTHER_CITIZEN, WATER


class PagesAndContacts(SQLStore):
    """A store whose ``select_shown`` hands back pages and contact data only."""

    def select_shown(  # type: ignore[override]
        self,
        where: CaseFilter,
        *,
        order: Order = "oldest",
        after: str | None = None,
        limit: int = 50,
    ) -> tuple[CasePage, dict[str, ReporterContact]]:
        return super().select_shown(where, order=order, after=after, limit=limit)


def _pages(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    return {
        viewer.id: [case.model_dump(mode="json") for case in engine.find(viewer).cases]
        for viewer in (CITIZEN, OTHER_CITIZEN, DISPATCHER, WATER)
    }


def test_a_store_without_show_gives_every_viewer_the_page_the_shipped_store_gives(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    shipped = SQLStore(url)
    older = PagesAndContacts(url)
    try:
        assert isinstance(older, ShownCases)
        writer = Engine(workflows.standard(), store=shipped, clock=ManualClock(T0))
        for number, reporter in enumerate((CITIZEN, CITIZEN, OTHER_CITIZEN)):
            case = writer.report(
                reporter,
                description=f"Pipe burst {number}",
                location="Renmin Road",
                contact={"name": "Li Hua", "phone": f"1381234567{number}"},
            )
            if number < 2:
                writer.trigger(case.id, "classify", by=DISPATCHER, category="01.02",
                               urgency="normal")  # fmt: skip
                writer.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
        reader = Engine(workflows.standard(), store=older, clock=ManualClock(T0))
        pages = _pages(reader)
        assert pages == _pages(writer)
        assert [len(pages[v.id]) for v in (CITIZEN, OTHER_CITIZEN, DISPATCHER, WATER)] == [
            2, 1, 3, 2,
        ]  # fmt: skip
        assert {case["contact"]["phone"] for case in pages[CITIZEN.id]} == {
            "13812345670", "13812345671",
        }  # fmt: skip
        assert [case["reporter_id"] for case in pages[OTHER_CITIZEN.id]] == [OTHER_CITIZEN.id]
    finally:
        older.close()
        shipped.close()
