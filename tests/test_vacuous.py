"""The check ``.ci/run`` runs: a test function that checks nothing is found."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.vacuous import DELIBERATE, ROOT, find_vacuous, main

PLANTED = """
import subprocess
import pytest


def checks(value):
    assert value


def checks_through(value):
    checks(value)


def test_planted_calls_without_checking():
    sorted([3, 1])


def test_asserts():
    assert sorted([3, 1]) == [1, 3]


def test_raises():
    with pytest.raises(TypeError):
        sorted(1)


def test_through_a_helper():
    checks_through(True)


def test_a_checked_run():
    subprocess.run(["true"], check=True)


class TestGroup:
    def check(self):
        assert True

    def test_planted_in_a_class(self):
        self.other()

    def test_by_its_own_helper(self):
        self.check()


def test_planted_calls_a_method_name_only():
    "A method that asserts counts only when called on self."
    object().check()
"""


def test_a_planted_vacuous_test_is_found_and_the_others_pass(tmp_path: Path) -> None:
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(PLANTED), encoding="utf-8")
    found = find_vacuous([tmp_path])
    assert [v.name for v in found] == [
        "test_planted_calls_without_checking",
        "test_planted_in_a_class",
        "test_planted_calls_a_method_name_only",
    ]
    assert str(found[0]).endswith("test_planted_calls_without_checking asserts nothing")


def test_a_deliberate_exception_is_left_out_by_name(tmp_path: Path) -> None:
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(PLANTED), encoding="utf-8")
    names = ["test_planted::test_planted_calls_without_checking"]
    found = find_vacuous([tmp_path], deliberate=names)
    assert "test_planted_calls_without_checking" not in [v.name for v in found]
    assert len(found) == 2


def test_the_command_fails_on_a_vacuous_test_and_passes_on_this_suite(tmp_path: Path) -> None:
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(PLANTED), encoding="utf-8")
    assert main([str(tmp_path)]) == 1
    assert main([str(ROOT / "tests")]) == 0


def test_every_deliberate_exception_names_an_existing_test_and_a_reason() -> None:
    sources = {p.stem: p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py")}
    for name, reason in DELIBERATE.items():
        module, function = name.split("::")
        assert f"def {function}(" in sources[module], name
        assert reason
