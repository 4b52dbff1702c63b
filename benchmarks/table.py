"""The one table every benchmark prints: measure | peer | closedloop | ratio | goal | met.

A row sets a closedloop figure beside its peer's (another library, or the ceiling of
the same database written by hand) measured in the same process, in turn, repeat by
repeat. Its ratio is the median of the per-repeat ratios of the two, so a burst of load
from elsewhere on the machine lands on one repeat's pair and not on one side only.
Rows whose goal is missed say so in the ``met`` column.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

COLUMNS = ("measure", "peer", "closedloop", "ratio", "goal", "met")


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table; ``goal`` is the least ratio the row should reach, or
    ``None`` for a row shown for information, and ``most`` makes it the greatest."""

    measure: str
    peer: str
    closedloop: str
    ratio: float | None
    goal: float | None = None
    most: bool = False

    def cells(self) -> tuple[str, ...]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        if self.goal is None or self.ratio is None:
            return (self.measure, self.peer, self.closedloop, ratio, "", "")
        sign = "<=" if self.most else ">="
        met = self.ratio <= self.goal if self.most else self.ratio >= self.goal
        return (
            self.measure,
            self.peer,
            self.closedloop,
            ratio,
            f"{sign} {self.goal:g}",
            "yes" if met else "NO",
        )


def rate(count: float, seconds: float) -> str:
    """``count`` per second, rounded for the table."""
    return f"{count / seconds:,.0f}/s"


def paired(
    repeats: int, ours: Callable[[], float], peer: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Seconds of ``ours`` and of ``peer``, run in turn ``repeats`` times (the order
    alternates from one repeat to the next)."""
    mine: list[float] = []
    theirs: list[float] = []
    for n in range(repeats):
        if n % 2:
            theirs.append(peer())
            mine.append(ours())
        else:
            mine.append(ours())
            theirs.append(peer())
    return mine, theirs


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-repeat ratios ``numerators[i] / denominators[i]``."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def timed(function: Callable[[], object]) -> float:
    """Seconds ``function()`` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def print_table(title: str, rows: Sequence[Row], notes: Sequence[str] = ()) -> None:
    """Print ``rows`` as a Markdown table under ``title``, then the notes."""
    lines = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]

    def show(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(f"\n{title}\n")
    print(show(COLUMNS))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines[1:]:
        print(show(line))
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    print(flush=True)
