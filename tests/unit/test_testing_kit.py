"""The testing kit's public surface and its Hypothesis profiles."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import Phase, settings

import closedloop.testing
from closedloop import ClosedLoopError, ValidationError
from closedloop.testing import (
    ManualClock,
    RecordingNotifier,
    load_profile_from_env,
    register_profiles,
)


def test_exported_names_are_pinned() -> None:
    assert closedloop.testing.__all__ == [
        "CaseStoreContract",
        "ManualClock",
        "NotifierContract",
        "RecordingNotifier",
        "actors",
        "load_profile_from_env",
        "payloads",
        "register_profiles",
        "reports",
        "strategies",
        "workflow_state_machine",
        "workflows",
    ]
    for name in closedloop.testing.__all__:
        assert getattr(closedloop.testing, name) is not None
        assert name in dir(closedloop.testing)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        closedloop.testing.nothing  # noqa: B018 - the access is the test


def test_the_lazy_names_load_only_their_own_module() -> None:
    code = (
        "import sys\n"
        "from closedloop.testing import ManualClock, RecordingNotifier, register_profiles\n"
        "assert 'pytest' not in sys.modules, 'profiles need hypothesis, not pytest'\n"
        "from closedloop.testing import CaseStoreContract\n"
        "assert 'pytest' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def restore_profile() -> Iterator[None]:
    yield
    load_profile_from_env()  # as tests/conftest.py left it


@pytest.mark.usefixtures("restore_profile")
@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "1"}, "ci"),
        ({"CI": "false"}, "dev"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "thorough"}, "thorough"),
        ({"HYPOTHESIS_PROFILE": "quick"}, "quick"),
        ({"MY_PROFILE": "ci"}, "dev"),
    ],
)
def test_the_profile_comes_from_the_environment(environ: dict[str, str], expected: str) -> None:
    assert load_profile_from_env(environ=environ) == expected
    assert settings.default == settings.get_profile(expected)


@pytest.mark.usefixtures("restore_profile")
def test_another_variable_can_name_the_profile() -> None:
    assert load_profile_from_env("MY_PROFILE", environ={"MY_PROFILE": "thorough"}) == "thorough"
    assert settings.default.max_examples == 1000


def test_the_ci_profile_is_bounded_reproducible_and_quick_to_report() -> None:
    register_profiles()
    ci = settings.get_profile("ci")
    assert ci.max_examples <= 100
    assert ci.deadline is None
    assert ci.derandomize
    assert ci.database is None
    assert ci.print_blob
    assert Phase.shrink in ci.phases
    assert Phase.explain not in ci.phases
    thorough = settings.get_profile("thorough")
    assert thorough.max_examples > 10 * ci.max_examples
    assert Phase.explain not in thorough.phases
    quick = settings.get_profile("quick")
    assert quick.max_examples < ci.max_examples
    assert quick.stateful_step_count < ci.stateful_step_count
    assert Phase.explain not in quick.phases
    assert thorough.deadline is None


def test_a_clock_moved_by_a_bare_number_says_to_pass_a_timedelta() -> None:
    clock = ManualClock()
    before = clock.now()
    with pytest.raises(ClosedLoopError) as refused:
        clock.advance(3)  # type: ignore[arg-type]
    assert isinstance(refused.value, ValidationError)
    assert refused.value.errors == (
        (
            "delta",
            "must be a timedelta, such as timedelta(minutes=3), or use the keywords days=, "
            "hours=, minutes=, seconds=; not int",
        ),
    )
    with pytest.raises(ValidationError) as amount:
        clock.advance(hours="2")  # type: ignore[arg-type]
    assert amount.value.errors == (("hours", "must be a number, not str"),)
    assert clock.now() == before  # refused moves change nothing
    assert clock.advance(timedelta(minutes=3), seconds=30) - before == timedelta(seconds=210)


def test_a_negative_number_of_failures_is_refused() -> None:
    notifier = RecordingNotifier()
    with pytest.raises(ValidationError) as refused:
        notifier.fail_next(-1)
    assert refused.value.errors == (("n", "must be a whole number of calls, 0 or more, not -1"),)
    with pytest.raises(ValidationError):
        notifier.fail_next(1.5)  # type: ignore[arg-type]


def test_the_storage_page_names_every_contract_suite_a_store_may_add() -> None:
    import closedloop.testing.contract as contract

    parts = set(contract.CaseStoreContract.__mro__) | {contract.StoreFixtures}
    optional = sorted(
        name
        for name in contract.__all__
        if isinstance(getattr(contract, name), type) and getattr(contract, name) not in parts
    )
    assert optional == [
        "CaseBatchContract",
        "CaseQueryContract",
        "CheckpointContract",
        "EventStreamContract",
        "EventsByTimeContract",
        "RecentCasesContract",
    ]
    page = (Path(__file__).resolve().parents[2] / "docs" / "storage.md").read_text("utf-8")
    assert "CaseStoreContract" in page
    for name in optional:
        assert f"Add `{name}`" in page, name
