"""The console's labels and the Open311 statuses cover what they must."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from closedloop import workflows

pytest.importorskip("jinja2")

from closedloop.adapters.http import messages
from closedloop.adapters.http.statuses import statuses

TEMPLATES = Path(messages.__file__).with_name("templates")


def test_every_label_a_template_shows_is_in_the_catalogue_in_both_languages() -> None:
    used = {
        key
        for path in TEMPLATES.glob("*.html")
        for key in re.findall(r't\("(\w+)"\)', path.read_text(encoding="utf-8"))
    }
    assert sorted(used - set(messages.CATALOGUE)) == []
    assert all(len(pair) == 2 and all(pair) for pair in messages.CATALOGUE.values())


def test_every_standard_state_has_a_label_and_an_open311_status() -> None:
    workflow = workflows.standard()
    names = [state.name for state in workflow.states]
    assert sorted(set(names) - set(messages.NAMES)) == []
    table = statuses(workflow)
    assert sorted(table) == sorted(names)
    assert {s.state for s in table.values() if s.status == "closed"} == {
        "closed",
        "rejected",
        "merged",
        "cancelled",
    }


def test_labels_switch_language() -> None:
    assert messages.translator("en")("inbox") == "Inbox"
    assert messages.translator("zh")("inbox") == "待办"
    assert messages.translator("zh")("in_progress") == "办理中"
    assert messages.translator("fr")("no_such_key") == "no_such_key"


def test_the_documented_status_table_is_the_one_served() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "http.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| (open|closed) \| (.+?) \|$", page, flags=re.M)
    served = statuses(workflows.standard())
    assert [(s, status, notes) for s, status, notes in rows] == [
        (s.state, s.status, s.notes) for s in served.values()
    ]
