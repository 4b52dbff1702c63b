"""docs/workflow-format.md names every key of the workflow models, and every built-in."""

from __future__ import annotations

from tests.workflow_reference import render, written


def test_the_reference_page_matches_the_models() -> None:
    assert written() == render(), "run: python -m tests.workflow_reference"
