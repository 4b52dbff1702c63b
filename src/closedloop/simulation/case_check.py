"""Checking what a run left behind: every case closed or waiting on someone with a clock,
and every audit chain intact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from closedloop.engine.service import Engine
from closedloop.errors import CaseNotFound


@dataclass(frozen=True, slots=True)
class CaseCheck:
    """What :func:`check_cases` found.

    Attributes:
        cases: How many cases were checked.
        final: Cases in a final state (closed, rejected, merged, cancelled).
        open: Cases still open.
        unattended: Open cases without an owner who must act or without a live clock.
        broken: Cases whose audit chain does not verify (or replay differently).
    """

    cases: int
    final: int
    open: int
    unattended: tuple[str, ...]
    broken: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Every open case is attended and every chain verifies."""
        return not self.unattended and not self.broken


def check_cases(engine: Engine, case_ids: Iterable[str]) -> CaseCheck:
    """Check each case: final, or waiting on a role with a deadline; its chain verifies.

    Raises:
        CaseNotFound: a case id is not in the engine's store.
    """
    final = open_ = 0
    unattended: list[str] = []
    broken: list[str] = []
    for case_id in case_ids:
        with engine.store.transaction() as tx:
            case = tx.get_case(case_id)
        if case is None:
            raise CaseNotFound(case_id)
        if engine.workflow.state(case.state).final:
            final += 1
        else:
            open_ += 1
            if case.waiting_on is None or case.deadline is None:
                unattended.append(case_id)
        if not engine.verify(case_id).ok:
            broken.append(case_id)
    return CaseCheck(final + open_, final, open_, tuple(unattended), tuple(broken))
