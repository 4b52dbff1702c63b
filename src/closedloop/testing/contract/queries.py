"""Contract: the case queries host applications need (``find_cases``, ``count_cases``).

The :class:`~closedloop.engine.ports.CaseQueries` port, not part of the CaseStore port:
a store that offers these queries subclasses :class:`CaseQueryContract` too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from closedloop.engine.case_query import CaseFilter, Party, Turn
from closedloop.engine.model import ReporterContact
from closedloop.errors import NaiveDatetime, ValidationError
from closedloop.testing.contract.base import (
    T0,
    StoreFixtures,
    add,
    commit,
    deadline,
    new_case,
    read,
    revise,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


class CaseSelectionContract(StoreFixtures):
    """``select_cases``, ``count_selected`` and ``facet_counts``: what ``Engine.find``,
    ``count``, ``inbox`` and ``facets`` ask of a store."""

    @pytest.fixture
    def spread(self, store: Any) -> Any:
        """Seven cases reported a day apart across units, areas, texts and clocks."""
        rows: list[tuple[str, dict[str, Any]]] = [
            ("a", {"lead_unit": "water", "co_units": ("roads",), "category": "01.02",
                   "location": {"area": "D1.S1.C1.G01", "address": "南京路 12 号"},
                   "description": "井盖缺失，行人危险", "deadline": deadline(T0 + 3 * DAY),
                   "duplicates": ({"case": "b", "reporter": "citizen-9", "at": T0},)}),
            ("b", {"lead_unit": "water", "category": "01", "channel": "app",
                   "location": {"area": "D1.S10"}, "description": "Burst PIPE on the corner",
                   "deadline": deadline(T0 + 5 * DAY, warning="red"), "supervised": True,
                   "merged_into": "a"}),
            ("c", {"lead_unit": "roads", "co_units": ("water", "parks"), "category": "02",
                   "location": {"area": "D1.S1"}, "reporter_id": "citizen-2",
                   "description": "路灯不亮", "deadline": deadline(T0 + 2 * DAY)}),
            ("d", {"lead_unit": "roads", "state": "assigned", "category": "01.02.03",
                   "location": {"area": "D2"}, "description": "pothole",
                   "deadline": deadline(T0 + 4 * DAY, warning="yellow")}),
            ("e", {"lead_unit": "parks", "state": "closed", "location": {"area": "D1"},
                   "description": "tree down, 南京路"}),
            ("f", {"lead_unit": "parks", "deadline": deadline(T0 + DAY, warning="red"),
                   "location": {"area": "D10"}, "description": "bench broken"}),
            ("g", {"state": "assigned", "deadline": deadline(T0 + DAY, warning="yellow"),
                   "location": {"area": "D2.S3"}, "description": "noise at night"}),
        ]  # fmt: skip
        for n, (case_id, fields) in enumerate(rows):
            add(store, case_id, at=T0 + n * DAY, **fields)
        return store

    @staticmethod
    def _found(store: Any, order: Any = "oldest", **criteria: Any) -> list[str]:
        where = CaseFilter.of(**criteria)
        return [c.id for c in store.select_cases(where, order=order, limit=100).cases]

    @staticmethod
    def _where(store: Any, where: CaseFilter) -> list[str]:
        return [c.id for c in store.select_cases(where, limit=100).cases]

    def test_codes_select_everything_under_them(self, spread: Any) -> None:
        assert self._found(spread, area="D1") == ["a", "b", "c", "e"]
        assert self._found(spread, area="D1.S1") == ["a", "c"]
        assert self._found(spread, area="D1.S1.C1.G01") == ["a"]
        assert self._found(spread, area="D2") == ["d", "g"]
        assert self._found(spread, category="01") == ["a", "b", "d"]
        assert self._found(spread, category="01.02") == ["a", "d"]

    def test_each_new_criterion_selects(self, spread: Any) -> None:
        assert self._found(spread, co_unit="water") == ["c"]
        assert self._found(spread, co_unit="roads") == ["a"]
        assert self._found(spread, reporter="citizen-2") == ["c"]
        assert self._found(spread, channel="app") == ["b"]
        assert self._found(spread, supervised=True) == ["b"]
        assert self._found(spread, supervised=False) == ["a", "c", "d", "e", "f", "g"]
        assert self._found(spread, merged_into="a") == ["b"]
        assert self._found(spread, merged_into="b") == []
        window = {"reported_from": T0 + DAY, "reported_before": T0 + 3 * DAY}
        assert self._found(spread, **window) == ["b", "c"]
        assert self._found(spread, state="assigned", area="D2") == ["d", "g"]
        assert self._found(spread, state=["assigned", "closed"]) == ["d", "e", "g"]
        assert self._found(spread, state=[]) == []

    def test_text_finds_words_in_the_description_or_the_address(self, spread: Any) -> None:
        assert self._found(spread, text="南京路") == ["a", "e"]
        assert self._found(spread, text="井盖") == ["a"]
        assert self._found(spread, text="burst pipe") == ["b"]
        assert self._found(spread, text="at") == ["g"]
        assert self._found(spread, text="nowhere") == []

    @staticmethod
    def _change(store: Any, case_id: str, at: Any) -> None:
        """Commit a change to the case at ``at``: its ``updated_at`` moves there."""
        case = read(store, lambda tx: tx.get_case(case_id))
        head = read(store, lambda tx: tx.get_events(case_id))[-1]
        changed, event = revise(case, head, at=at)
        commit(store, lambda tx: tx.update_case(changed, case.version, event))

    def test_updated_window_selects_by_the_latest_change(self, spread: Any) -> None:
        # Each case was last changed when it was reported (a day apart, T0 to T0 + 6
        # days), but for "a" changed at T0 + 10 days and "c" at T0 + 12 days.
        self._change(spread, "a", T0 + 10 * DAY)
        self._change(spread, "c", T0 + 12 * DAY)
        assert self._found(spread, updated_from=T0 + 5 * DAY) == ["a", "c", "f", "g"]
        assert self._found(spread, updated_before=T0 + 5 * DAY) == ["b", "d", "e"]
        # The start is inclusive, the end exclusive, to the microsecond.
        window = {"updated_from": T0 + 6 * DAY, "updated_before": T0 + 12 * DAY}
        assert self._found(spread, **window) == ["a", "g"]
        tick = timedelta(microseconds=1)
        assert self._found(spread, updated_from=T0 + 12 * DAY + tick) == []
        assert self._found(spread, updated_before=T0 + DAY + tick) == ["b"]
        assert self._found(spread, updated_from=T0 + 12 * DAY, updated_before=T0) == []
        # Combined with the other criteria, the report window among them.
        assert self._found(spread, updated_from=T0 + 5 * DAY, lead_unit="parks") == ["f"]
        assert self._found(spread, updated_from=T0 + 5 * DAY, reported_before=T0 + 3 * DAY) == [
            "a",
            "c",
        ]
        assert self._found(spread, "newest", updated_from=T0 + 5 * DAY) == ["g", "f", "c", "a"]
        assert self._found(spread, "updated", updated_from=T0 + 5 * DAY) == ["f", "g", "a", "c"]
        assert spread.count_selected(CaseFilter.of(updated_from=T0 + 5 * DAY)) == 4
        assert spread.facet_counts(CaseFilter.of(updated_from=T0 + 5 * DAY), "lead_unit") == {
            "water": 1, "roads": 1, "parks": 1, None: 1}  # fmt: skip

    def test_pages_of_an_updated_window_hold_while_cases_change(self, spread: Any) -> None:
        # The pages follow the report order, which a change does not move: a case
        # changed again between two pages is not seen twice; one that comes into the
        # window is seen if its report sorts after the cursor, else by the next pass.
        self._change(spread, "a", T0 + 10 * DAY)
        since = CaseFilter.of(updated_from=T0 + 5 * DAY)
        first = spread.select_cases(since, limit=1)
        self._change(spread, "a", T0 + 20 * DAY)  # already seen
        self._change(spread, "d", T0 + 20 * DAY)  # reported after the cursor
        second = spread.select_cases(since, limit=1, after=first.next_cursor)
        self._change(spread, "b", T0 + 20 * DAY)  # reported before the cursor
        rest = spread.select_cases(since, limit=10, after=second.next_cursor)
        seen = [c.id for page in (first, second, rest) for c in page.cases]
        assert seen == ["a", "d", "f", "g"]
        assert rest.next_cursor is None
        assert self._found(spread, updated_from=T0 + 5 * DAY) == ["a", "b", "d", "f", "g"]

    def test_pages_in_the_updated_order_skip_no_case_that_changes(self, spread: Any) -> None:
        # Least recently changed first: a case changed while the pages are read moves
        # past the cursor, so it comes again (in its new state) rather than being missed.
        self._change(spread, "a", T0 + 10 * DAY)
        first = spread.select_cases(CaseFilter(), order="updated", limit=3)
        assert [c.id for c in first.cases] == ["b", "c", "d"]
        self._change(spread, "c", T0 + 20 * DAY)  # already seen: comes again
        self._change(spread, "e", T0 + 21 * DAY)  # not yet seen: comes once, later
        rest = spread.select_cases(CaseFilter(), order="updated", limit=10, after=first.next_cursor)
        assert [c.id for c in rest.cases] == ["f", "g", "a", "c", "e"]
        assert rest.cases[3].updated_at == T0 + 20 * DAY
        assert rest.next_cursor is None
        with pytest.raises(ValidationError):
            spread.select_cases(CaseFilter(), order="oldest", after=first.next_cursor)

    def test_turns_and_sight_select_by_relation(self, spread: Any) -> None:
        water = Party(lead_units=("water",))
        assert self._where(spread, CaseFilter(sight=water)) == ["a", "b"]
        both = Party(reporter="citizen-2", co_units=("roads",))
        assert self._where(spread, CaseFilter(sight=both)) == ["a", "c"]
        assert self._where(spread, CaseFilter(sight=Party())) == []
        # The reporter of a duplicate follows the case it was merged into.
        assert self._where(spread, CaseFilter(sight=Party(follower="citizen-9"))) == ["a"]
        assert self._where(spread, CaseFilter(sight=Party(follower="citizen-1"))) == []
        turns = (Turn(("assigned",)), Turn(("reported",), Party(co_units=("parks",))))
        assert self._where(spread, CaseFilter(turns=turns)) == ["c", "d", "g"]
        assert self._where(spread, CaseFilter(turns=())) == []
        twice = (Turn(("assigned",)), Turn(("assigned", "closed")))  # a case in both
        assert self._where(spread, CaseFilter(turns=twice)) == ["d", "e", "g"]
        # A page at a time, in the urgent order, the turns give the same cases.
        whole = spread.select_cases(CaseFilter(turns=turns), order="urgent", limit=100)
        paged: list[str] = []
        after = None
        while True:
            page = spread.select_cases(
                CaseFilter(turns=turns), order="urgent", after=after, limit=1
            )
            paged += [c.id for c in page.cases]
            after = page.next_cursor
            if after is None:
                break
        assert paged == [c.id for c in whole.cases]

    def test_collections_given_as_lists_select_as_tuples(self, spread: Any) -> None:
        # A host may build a filter with lists (or sets): kept as tuples, it selects
        # what the tuples select, and a filter holding something else is refused.
        where: Any = CaseFilter  # built as a host without type checks builds it
        turn: Any = Turn
        party: Any = Party
        lists = [
            where(states=["assigned", "closed"]),
            where(turns=[turn(["assigned"]), turn(["reported"], party(co_units=["parks"]))]),
            where(sight=party(reporter="citizen-2", lead_units=["water"], co_units=["x"])),
            where(states={"assigned"}, sight=party(lead_units={"roads"})),
        ]
        assert [self._where(spread, each) for each in lists] == [
            ["d", "e", "g"],
            ["c", "d", "g"],
            ["a", "b", "c"],
            ["d"],
        ]
        assert lists[0] == CaseFilter(states=("assigned", "closed"))
        assert spread.count_selected(lists[1]) == 3
        assert self._where(spread, where(states="closed")) == ["e"]  # one state
        for bad in ({"states": [1]}, {"states": 3}, {"turns": [("assigned",)]}):
            with pytest.raises(ValidationError) as refused:
                where(**bad)
            assert refused.value.fields == tuple(bad)
        with pytest.raises(ValidationError) as refused:
            party(lead_units=[None])
        assert refused.value.fields == ("lead_units",)

    def test_orders(self, spread: Any) -> None:
        assert self._found(spread, "oldest") == ["a", "b", "c", "d", "e", "f", "g"]
        assert self._found(spread, "newest") == ["g", "f", "e", "d", "c", "b", "a"]
        # Red before yellow before none, each by due instant; the final case last.
        assert self._found(spread, "urgent") == ["f", "b", "g", "d", "c", "a", "e"]
        # Least recently changed first: here each case last changed when reported.
        assert self._found(spread, "updated") == ["a", "b", "c", "d", "e", "f", "g"]

    @pytest.mark.parametrize("order", ["oldest", "newest", "urgent", "updated"])
    def test_pages_cover_every_match_once_while_cases_are_added(
        self, spread: Any, order: Any
    ) -> None:
        everything = self._found(spread, order)
        seen: list[str] = []
        page = spread.select_cases(CaseFilter(), order=order, limit=2)
        added = 0
        while True:
            seen += [c.id for c in page.cases]
            if page.next_cursor is None:
                break
            added += 1  # a late report, and one that sorts before every page
            add(spread, f"late-{added}", at=T0 + 100 * DAY, deadline=deadline(T0 + 90 * DAY))
            add(spread, f"early-{added}", at=T0 - DAY, deadline=deadline(T0, warning="red"))
            page = spread.select_cases(CaseFilter(), order=order, limit=2, after=page.next_cursor)
        assert len(seen) == len(set(seen))
        assert [i for i in seen if i in everything] == everything
        other = "newest" if order != "newest" else "oldest"
        first = spread.select_cases(CaseFilter(), order=order, limit=1)
        with pytest.raises(ValidationError):
            spread.select_cases(CaseFilter(), order=other, after=first.next_cursor)

    def test_counts_and_facets_agree_with_the_pages(self, spread: Any) -> None:
        assert spread.count_selected(CaseFilter.of(area="D1")) == 4
        assert spread.count_selected(CaseFilter(sight=Party(lead_units=("roads",)))) == 2
        assert spread.facet_counts(CaseFilter(), "state") == {
            "reported": 4, "assigned": 2, "closed": 1}  # fmt: skip
        assert spread.facet_counts(CaseFilter(), "lead_unit") == {
            "water": 2, "roads": 2, "parks": 2, None: 1}  # fmt: skip
        assert spread.facet_counts(CaseFilter.of(area="D1"), "warning_level") == {
            "none": 2, "red": 1, None: 1}  # fmt: skip

    def test_a_workflow_selects_its_own_cases_in_every_read(self, spread: Any) -> None:
        # One store may hold several workflows' cases; an engine reads its own only.
        add(spread, "p1", at=T0 + 7 * DAY, workflow="permits", lead_unit="water")
        add(spread, "p2", at=T0 + 8 * DAY, workflow="permits", state="assigned")
        ours, theirs = CaseFilter(workflow="contract"), CaseFilter(workflow="permits")
        assert self._where(spread, ours) == ["a", "b", "c", "d", "e", "f", "g"]
        assert self._where(spread, theirs) == ["p1", "p2"]
        assert self._where(spread, CaseFilter()) == ["a", "b", "c", "d", "e", "f", "g", "p1", "p2"]
        assert spread.count_selected(ours) == 7
        assert spread.count_selected(theirs) == 2
        assert spread.facet_counts(ours, "state") == {"reported": 4, "assigned": 2, "closed": 1}
        assert spread.facet_counts(theirs, "state") == {"reported": 1, "assigned": 1}
        assert spread.facet_counts(CaseFilter(), "lead_unit") == {
            "water": 3, "roads": 2, "parks": 2, None: 2}  # fmt: skip
        first = spread.select_cases(theirs, order="newest", limit=1)
        assert [c.id for c in first.cases] == ["p2"]
        rest = spread.select_cases(theirs, order="newest", limit=5, after=first.next_cursor)
        assert [c.id for c in rest.cases] == ["p1"]
        assert rest.next_cursor is None

    def test_contacts_of_found_cases_come_in_one_read(self, spread: Any) -> None:
        found = spread.contacts_of(["a", "c", "nobody"])
        assert sorted(found) == ["a", "c"]
        assert found["a"].phone == "13800000000"
        assert spread.contacts_of([]) == {}

    def test_bad_criteria_are_refused(self, spread: Any) -> None:
        with pytest.raises(ValidationError):
            CaseFilter.of(area="D1/S1")
        with pytest.raises(ValidationError):
            CaseFilter.of(text="  ")
        with pytest.raises(ValidationError):
            spread.select_cases(CaseFilter(), order="sideways")
        with pytest.raises(ValidationError):
            spread.facet_counts(CaseFilter(), "colour")
        with pytest.raises(NaiveDatetime):
            CaseFilter.of(reported_from=T0.replace(tzinfo=None))
        naive = T0.replace(tzinfo=None)
        with pytest.raises(NaiveDatetime, match="updated_from"):
            CaseFilter.of(updated_from=naive)
        with pytest.raises(NaiveDatetime, match="updated_before"):
            CaseFilter.of(updated_from=T0, updated_before=naive)


class CaseQueryContract(CaseSelectionContract):
    """Filters, counts, facets and keyset pages over cases, in every order."""

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

    @pytest.fixture
    def texts(self, store: Any) -> Any:
        """Forty cases an hour apart, added out of time order: the first sixteen hours
        about a missing manhole cover (a dense text), hours 24 and 36 about a loose
        lid (a rare one), the rest about street lights; one case in four water's."""
        with store.transaction() as tx:
            for n in range(40):
                hour = n * 7 % 40  # every hour once, in an order of its own
                case, event = new_case(
                    f"t{hour:02d}",
                    at=T0 + hour * HOUR,
                    lead_unit="water" if hour % 4 == 0 else "roads",
                    description=self._text_of(hour),
                )
                tx.add_case(case, ReporterContact(name="Li Lei"), event)
            tx.commit()
        return store

    @staticmethod
    def _text_of(hour: int) -> str:
        if hour < 16:
            return "井盖缺失 manhole cover missing"
        return "manhole lid loose" if hour in (24, 36) else "路灯不亮 street light out"

    @staticmethod
    def _paged(store: Any, order: Any, limit: int, **criteria: Any) -> list[str]:
        where = CaseFilter.of(**criteria)
        seen: list[str] = []
        after = None
        while True:
            page = store.select_cases(where, order=order, after=after, limit=limit)
            seen += [c.id for c in page.cases]
            after = page.next_cursor
            if after is None:
                return seen

    @pytest.mark.parametrize("order", ["oldest", "newest"])
    def test_text_pages_hold_every_match_once_in_order(self, texts: Any, order: Any) -> None:
        # A dense text, a rare one, a text with a selective criterion, a text that holds
        # the first hours only (so the newest pages find it last) and one nobody wrote:
        # page by page, the matches each give are those of one whole page, in order.
        searches: list[tuple[dict[str, Any], list[int]]] = [
            ({"text": "manhole"}, [h for h in range(40) if h < 16 or h in (24, 36)]),
            ({"text": "lid loose"}, [24, 36]),
            ({"text": "manhole", "lead_unit": "water"}, [0, 4, 8, 12, 24, 36]),
            ({"text": "井盖缺失"}, list(range(16))),
            ({"text": "street light", "lead_unit": "water"}, [16, 20, 28, 32]),
            ({"text": "nowhere"}, []),
        ]
        for criteria, hours in searches:
            expected = [f"t{h:02d}" for h in (hours if order == "oldest" else hours[::-1])]
            assert self._found(texts, order, **criteria) == expected, criteria
            for limit in (1, 3, 7):
                assert self._paged(texts, order, limit, **criteria) == expected, (criteria, limit)

    @pytest.mark.parametrize("order", ["oldest", "newest"])
    def test_text_pages_skip_nothing_while_matching_cases_are_added(
        self, texts: Any, order: Any
    ) -> None:
        expected = self._found(texts, order, text="manhole")
        where = CaseFilter.of(text="manhole")
        seen: list[str] = []
        page = texts.select_cases(where, order=order, limit=2)
        added = 0
        while True:
            seen += [c.id for c in page.cases]
            if page.next_cursor is None:
                break
            added += 1  # a late match and one that sorts before every page
            add(texts, f"late-{added}", at=T0 + (100 + added) * HOUR, description="manhole")
            add(texts, f"early-{added}", at=T0 - added * HOUR, description="manhole")
            page = texts.select_cases(where, order=order, limit=2, after=page.next_cursor)
        assert len(seen) == len(set(seen))
        assert [i for i in seen if i in expected] == expected

    def test_found_cases_carry_no_contact_data(self, cases: Any) -> None:
        assert all(c.contact is None for c in cases.find_cases().cases)

    def test_bad_arguments_are_refused(self, cases: Any) -> None:
        with pytest.raises(ValidationError):
            cases.find_cases(limit=0)
        with pytest.raises(ValidationError):
            cases.find_cases(after="not a cursor")
        with pytest.raises(NaiveDatetime):
            cases.find_cases(overdue_at=T0.replace(tzinfo=None))
