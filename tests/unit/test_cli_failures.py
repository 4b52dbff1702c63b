"""How a command fails when an optional package it imports is not installed."""

from __future__ import annotations

import sys

import pytest
import typer

from closedloop.cli.failures import DOMAIN_ERROR, reported, require
from closedloop.errors import MissingDependency


@reported
def needs_httpx() -> None:
    raise ModuleNotFoundError("No module named 'httpx'", name="httpx")


@reported
def needs_a_module_of_no_extra() -> None:
    raise ModuleNotFoundError("No module named 'closedloop.gone'", name="closedloop.gone")


def test_a_missing_optional_package_is_one_line_naming_its_extra(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(typer.Exit) as stopped:
        needs_httpx()
    assert stopped.value.exit_code == DOMAIN_ERROR
    assert capsys.readouterr().err == (
        "closedloop: error: this command needs the package 'httpx'; "
        "install it with pip install 'closedloop[http]'\n"
    )


def test_a_missing_module_of_no_extra_is_a_bug_and_keeps_its_traceback() -> None:
    with pytest.raises(ModuleNotFoundError):
        needs_a_module_of_no_extra()


def test_serve_checks_the_packages_it_imports_only_once_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "python_multipart", None)
    monkeypatch.setitem(sys.modules, "multipart", None)
    with pytest.raises(MissingDependency, match=r"'python-multipart'.*closedloop\[server\]"):
        require("closedloop serve", "json", "python_multipart|multipart")
    require("closedloop serve", "json", "python_multipart|json")  # either name will do
