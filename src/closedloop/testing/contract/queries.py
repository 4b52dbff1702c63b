"""Contract: the case queries host applications need (``find_cases``, ``count_cases``).

The :class:`~closedloop.engine.ports.CaseQueries` port, not part of the CaseStore port:
a store that offers these queries subclasses :class:`CaseQueryContract` too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from closedloop.errors import NaiveDatetime, ValidationError
from closedloop.testing.contract.base import T0, StoreFixtures, add, deadline

DAY = timedelta(days=1)


class CaseQueryContract(StoreFixtures):
    """Filters, counts and keyset pages over cases."""

    @pytest.fixture
    def cases(self, store: Any) -> Any:
        """Six cases across states, units, areas, warnings and deadlines."""
        water, roads = {"lead_unit": "water"}, {"lead_unit": "roads"}
        working = {"state": "in_progress"}
        add(store, "a", state="assigned", category="01", deadline=deadline(T0 + DAY), **water)
        add(store, "b", category="02", deadline=deadline(T0 + 3 * DAY, warning="yellow"),
            **working, **water)  # fmt: skip
        add(store, "c", category="01", location={"area": "310102"},
            deadline=deadline(T0 + 2 * DAY, warning="red"), **working, **roads)  # fmt: skip
        # Paused after its due instant passed: overdue. Paused before it: not (yet).
        add(store, "d", deadline=deadline(T0 + DAY, paused_at=T0 + 2 * DAY), **working, **roads)
        add(store, "e", deadline=deadline(T0 + DAY, paused_at=T0), **working, **roads)
        add(store, "f", state="closed", **water)
        return store

    @staticmethod
    def _ids(store: Any, **criteria: Any) -> list[str]:
        return [c.id for c in store.find_cases(**criteria).cases]

    def test_each_criterion_selects_and_they_combine(self, cases: Any) -> None:
        assert self._ids(cases, state="in_progress") == ["b", "c", "d", "e"]
        assert self._ids(cases, state=["assigned", "closed"]) == ["a", "f"]
        assert self._ids(cases, lead_unit="water") == ["a", "b", "f"]
        assert self._ids(cases, category="01") == ["a", "c"]
        assert self._ids(cases, area="310102") == ["c"]
        assert self._ids(cases, warning_level="red") == ["c"]
        assert self._ids(cases, state="in_progress", lead_unit="water") == ["b"]
        assert self._ids(cases) == ["a", "b", "c", "d", "e", "f"]

    def test_overdue_follows_the_running_clock(self, cases: Any) -> None:
        assert self._ids(cases, overdue_at=T0) == []
        assert self._ids(cases, overdue_at=T0 + DAY) == ["a", "d"]
        assert self._ids(cases, overdue_at=T0 + 3 * DAY) == ["a", "b", "c", "d"]
        assert self._ids(cases, overdue_at=T0 + 3 * DAY, lead_unit="roads") == ["c", "d"]

    def test_counts_agree_with_the_pages(self, cases: Any) -> None:
        assert cases.count_cases() == 6
        assert cases.count_cases(state="in_progress", lead_unit="roads") == 3
        assert cases.count_cases(overdue_at=T0 + 3 * DAY) == 4

    def test_keyset_pages_cover_every_match_once(self, cases: Any) -> None:
        seen: list[str] = []
        page = cases.find_cases(lead_unit="roads", limit=2)
        seen += [c.id for c in page.cases]
        while page.next_cursor is not None:
            page = cases.find_cases(lead_unit="roads", limit=2, after=page.next_cursor)
            seen += [c.id for c in page.cases]
        assert seen == ["c", "d", "e"]
        last = cases.find_cases(lead_unit="roads", limit=3)
        assert last.next_cursor is None

    def test_found_cases_carry_no_contact_data(self, cases: Any) -> None:
        assert all(c.contact is None for c in cases.find_cases().cases)

    def test_bad_arguments_are_refused(self, cases: Any) -> None:
        with pytest.raises(ValidationError):
            cases.find_cases(limit=0)
        with pytest.raises(ValidationError):
            cases.find_cases(after="not a cursor")
        with pytest.raises(NaiveDatetime):
            cases.find_cases(overdue_at=T0.replace(tzinfo=None))
