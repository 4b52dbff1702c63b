"""The command line's host-code loading and workflow-fit check, in process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from closedloop import Actor, Engine, Registry, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.cli.fitting import PAGE, check_store
from closedloop.cli.hostcode import load_notifiers, load_registry
from closedloop.errors import HostCodeUnusable, WorkflowMismatch

CHANNELS = """
from closedloop import Registry

class Channel:
    def send(self, notification):
        pass

shared = Channel()

def registry():
    return Registry.default()
"""


@pytest.fixture
def in_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The current directory holds a host module, ``hostmod``, not otherwise on sys.path."""
    (tmp_path / "hostmod.py").write_text(CHANNELS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    sys.modules.pop("hostmod", None)


def test_host_modules_are_imported_from_the_current_directory(in_folder: Path) -> None:
    assert isinstance(load_registry("hostmod:registry"), Registry)
    channels = load_notifiers(["hostmod:Channel", "sms=hostmod:shared"])
    assert sorted(channels) == ["*", "sms"]
    assert type(channels["*"]).__name__ == "Channel"
    assert channels["sms"] is sys.modules["hostmod"].shared
    assert sys.path[0] == str(in_folder)


def test_an_explicit_star_is_the_channel_for_the_rest(in_folder: Path) -> None:
    assert list(load_notifiers(["*=hostmod:shared"])) == ["*"]
    with pytest.raises(HostCodeUnusable, match="channel '\\*' is given a notifier twice"):
        load_notifiers(["hostmod:shared", "*=hostmod:Channel"])


def test_a_registry_that_is_a_notifier_is_refused_with_what_was_wanted(in_folder: Path) -> None:
    with pytest.raises(HostCodeUnusable) as refused:
        load_registry("hostmod:shared")
    assert (refused.value.spec, refused.value.reason) == ("hostmod:shared", "it is a Channel")
    assert refused.value.wanted == "a Registry of guards and effects"


COMPLAINTS = {
    "name": "complaints",
    "roles": [{"name": "dispatcher", "kind": "global", "sees_all": True}],
    "clocks": [{"name": "triage", "duration": "4 hours"}, {"name": "look", "duration": "1 day"}],
    "states": [
        {"name": "reported", "initial": True, "owner": "dispatcher", "clock": "triage"},
        {"name": "investigate", "owner": "dispatcher", "clock": "look"},
        {"name": "done", "final": True},
    ],
    "transitions": [
        {"name": "open", "from": ["reported"], "to": "investigate", "roles": ["dispatcher"]},
        {"name": "close", "from": ["investigate"], "to": "done", "roles": ["dispatcher"]},
    ],
}


def test_a_case_in_an_undeclared_state_is_found_beyond_the_sampled_pages() -> None:
    store = InMemoryStore()
    standard = Engine(workflows.standard(), store=store)
    for _ in range(PAGE + 5):
        standard.report(Actor("citizen-1"), description="Lamp out", location="1 Elm St")
    check_store(store, workflows.standard())  # fits: every case is the standard one's
    # Another workflow's cases in the same database are left to its own engine.
    other = Engine(Workflow.from_dict(COMPLAINTS), store=store, id_factory=lambda: "other")
    other.report(Actor("citizen-2"), description="Noise", location="2 Elm St")
    other.trigger("other", "open", by=Actor("op", roles={"dispatcher"}))
    check_store(store, workflows.standard())
    # A case of the workflow's name in a state this version lacks is found, however late.
    renamed = Workflow.from_dict({**COMPLAINTS, "name": "standard"})
    older = Engine(renamed, store=store, id_factory=lambda: "late")
    older.report(Actor("citizen-2"), description="Noise", location="2 Elm St")
    older.trigger("late", "open", by=Actor("op", roles={"dispatcher"}))
    with pytest.raises(WorkflowMismatch) as refused:
        check_store(store, workflows.standard())
    assert (refused.value.case_id, refused.value.stored_workflow) == ("late", "standard")
    assert "state 'investigate'" in refused.value.reason


def test_a_database_holding_only_another_workflow_s_cases_does_not_fit() -> None:
    store = InMemoryStore()
    other = Engine(Workflow.from_dict(COMPLAINTS), store=store, id_factory=lambda: "other")
    other.report(Actor("citizen-2"), description="Noise", location="2 Elm St")
    with pytest.raises(WorkflowMismatch) as refused:
        check_store(store, workflows.standard())
    assert (refused.value.case_id, refused.value.stored_workflow) == ("other", "complaints")
    check_store(InMemoryStore(), workflows.standard())  # an empty database fits any
