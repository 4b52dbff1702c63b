"""Whether a workflow fits the cases a database holds, checked before any command runs.

An engine given a workflow other than the one its cases were written with fails deep
inside (a state or a clock it does not declare), possibly in the middle of a worker's
run. The command line checks up front instead and stops with a one-line
:class:`~closedloop.errors.WorkflowMismatch`:

* every stored case of the workflow's name is in a state the workflow declares (two
  counts, however many cases there are; a page-by-page search names a case only when
  they differ);
* the running clocks of its oldest cases, and of its oldest open ones, are clocks it
  declares (:data:`SAMPLE` of each);
* a database holding cases, none of them of the workflow's name, was written by
  another workflow. The cases of other workflows are left to their own engines.

Cases record their workflow's name, not its version: a new version of a workflow
that keeps the states and clocks of the stored cases fits them.
"""

from __future__ import annotations

from dataclasses import replace

from closedloop.engine.case_query import CaseFilter
from closedloop.engine.definition import Workflow
from closedloop.engine.model import Case
from closedloop.engine.ports import CaseQueries
from closedloop.engine.ticking import misfit
from closedloop.errors import WorkflowMismatch

SAMPLE = 500
"""How many of the oldest cases, and of the oldest open cases, are read in full."""

PAGE = 1000
"""The page size of the search for a case in an undeclared state."""


def check_case(case: Case, workflow: Workflow) -> None:
    """Raise :class:`WorkflowMismatch` unless ``workflow`` can handle ``case``."""
    reason = misfit(case, workflow)
    if reason is not None:
        raise WorkflowMismatch(workflow.name, case.id, case.workflow, reason)


def check_store(store: CaseQueries, workflow: Workflow) -> None:
    """Raise :class:`WorkflowMismatch` unless ``workflow`` fits the stored cases.

    Only the cases that record the workflow's name are checked: one database may hold
    the cases of several workflows, each handled by its own engine. A database that
    holds cases, none of them this workflow's, was written by another workflow.

    Raises:
        WorkflowMismatch: naming a case the workflow cannot handle, and why.
        StoreError: the database cannot be read.
    """
    own = CaseFilter(workflow=workflow.name)
    ours = store.count_selected(own)
    if not ours:
        if store.count_selected(CaseFilter()):  # cases, none of them this workflow's
            check_case(store.select_cases(CaseFilter(), limit=1).cases[0], workflow)
        return
    states = [state.name for state in workflow.states]
    if store.count_selected(replace(own, states=tuple(states))) < ours:
        _find_undeclared(store, own, workflow, set(states))
    open_states = tuple(state.name for state in workflow.states if not state.final)
    samples = [store.select_cases(own, limit=SAMPLE).cases]
    if open_states:
        samples.append(store.select_cases(replace(own, states=open_states), limit=SAMPLE).cases)
    for cases in samples:
        for case in cases:
            check_case(case, workflow)


def _find_undeclared(
    store: CaseQueries, own: CaseFilter, workflow: Workflow, states: set[str]
) -> None:
    """Raise for the oldest case in a state outside ``states`` (the counts say there is one)."""
    cursor: str | None = None
    while True:
        page = store.select_cases(own, after=cursor, limit=PAGE)
        for case in page.cases:
            if case.state not in states:
                check_case(case, workflow)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
