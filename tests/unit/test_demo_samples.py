"""The demo's output shown in the README and in docs/cli.md is one run: the same seed
gives the same cases, so both pages give the same numbers."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(
    r"^Simulated 30 days of .* seed 1\) in [\d.]+ s: (.*)\n(.*)$", flags=re.MULTILINE
)


def summary(page: str) -> tuple[str, str]:
    """The two summary lines of the seed-1 run the page shows, without the time taken."""
    text = (ROOT / page).read_text(encoding="utf-8")
    [found] = SUMMARY.findall(text)
    return found


def test_the_readme_and_the_command_line_page_show_the_same_run() -> None:
    readme, cli = summary("README.md"), summary("docs/cli.md")
    assert readme == cli
