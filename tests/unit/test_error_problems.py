"""Every closedloop error has an HTTP status and an RFC 9457 problem object.

The classes are found by walking the tree from ``ClosedLoopError``, so a new class
without its own ``status`` and ``title`` fails here; each is built from sample
arguments chosen by the types its constructor declares.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import closedloop.errors as errors_module
from closedloop.errors import (
    PROBLEM_TYPE_BASE,
    CaseNotFound,
    ClosedLoopError,
    TransitionNotAllowed,
    ValidationError,
)

ROOT = Path(__file__).resolve().parents[2]
STATUSES = {400, 401, 403, 404, 409, 412, 413, 422, 500, 502, 503}


def every_error_class() -> list[type[ClosedLoopError]]:
    def walk(cls: type[ClosedLoopError]) -> Iterator[type[ClosedLoopError]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    found = {cls for cls in walk(ClosedLoopError) if cls.__module__.startswith("closedloop")}
    return sorted(found, key=lambda cls: cls.__name__)


SAMPLES: dict[Any, Any] = {
    "str": "sample",
    "str | None": "sample-source",
    "int": 3,
    "int | None": 4,
    "Iterable[str]": ("b-role", "a-role"),
    "Sequence[str]": ("first problem", "second problem"),
    "Sequence[tuple[str, str]]": (("description", "must not be empty"), ("area", "unknown")),
    "Sequence[tuple[str, str, Sequence[str]]]": (("category", "01.09", ("01.01", "01.02")),),
}


def sample_error(cls: type[ClosedLoopError]) -> ClosedLoopError:
    """An instance built from a sample of each declared parameter type."""
    own = [c for c in cls.__mro__ if "__init__" in vars(c) and c.__module__ == "closedloop.errors"]
    if not own:  # built-in constructor: a message
        return cls("something went wrong")
    signature = inspect.signature(cls.__init__)
    arguments: dict[str, Any] = {}
    for name, parameter in list(signature.parameters.items())[1:]:
        annotation = str(parameter.annotation)
        assert annotation in SAMPLES, f"{cls.__name__}({name}: {annotation}): add a sample"
        arguments[name] = SAMPLES[annotation]
    return cls(**arguments)


ERROR_CLASSES = every_error_class()


def test_the_walk_finds_the_whole_tree() -> None:
    defined = {
        name
        for name, value in vars(errors_module).items()
        if isinstance(value, type) and issubclass(value, ClosedLoopError)
    }
    assert len(defined) >= 30
    assert defined <= {cls.__name__ for cls in ERROR_CLASSES}


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_each_error_class_states_its_own_status_and_title(cls: type[ClosedLoopError]) -> None:
    assert "status" in vars(cls), f"{cls.__name__} declares no HTTP status of its own"
    assert "title" in vars(cls), f"{cls.__name__} declares no title of its own"
    assert cls.status in STATUSES
    assert cls.title
    assert "\n" not in cls.title


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_each_error_becomes_a_json_problem_with_its_fields(cls: type[ClosedLoopError]) -> None:
    error = sample_error(cls)
    problem = json.loads(json.dumps(error.to_problem()))
    slug = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
    assert problem["type"] == f"{PROBLEM_TYPE_BASE}{slug}"
    assert (problem["title"], problem["status"], problem["detail"]) == (
        cls.title,
        cls.status,
        str(error),
    )
    carried = {name for name in vars(error) if not name.startswith("_")}
    assert carried <= set(problem), f"{cls.__name__}: fields left out of the problem"


def test_a_problem_carries_the_structured_fields_as_json() -> None:
    refused = TransitionNotAllowed("case-1", "assigned", "confirm", ["return", "accept"])
    assert refused.to_problem() == {
        "type": "https://closedloop.dev/problems/transition-not-allowed",
        "title": "Transition not allowed",
        "status": 409,
        "detail": str(refused),
        "case_id": "case-1",
        "state": "assigned",
        "trigger": "confirm",
        "allowed": ["accept", "return"],
    }
    assert CaseNotFound("case-9").to_problem()["status"] == 404
    invalid = ValidationError([("location.area", "unknown area 'X'")], subject="report")
    assert invalid.to_problem()["errors"] == [
        {"field": "location.area", "message": "unknown area 'X'"}
    ]


def test_the_errors_page_lists_every_class_with_its_status() -> None:
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    listed = {
        name: int(status)
        for name, status in re.findall(r"^\| `(\w+)` \| (\d{3}) \|", page, flags=re.M)
    }
    assert listed == {cls.__name__: cls.status for cls in ERROR_CLASSES}


def test_the_module_docstring_table_gives_every_class_its_status() -> None:
    doc = errors_module.__doc__ or ""
    rule = next(line for line in doc.splitlines() if line.startswith("====="))
    width, status_width = (len(part) for part in rule.split()[:2])
    body = doc.split(rule)[2].strip("\n").splitlines()  # between the 2nd and 3rd rules
    listed: dict[str, int] = {}
    status = 0
    for line in body:
        cell = line[width + 2 : width + 2 + status_width].strip()
        status = int(cell) if cell else status
        for name in filter(None, (n.strip() for n in line[:width].split(","))):
            listed[name] = status
    assert listed == {cls.__name__: cls.status for cls in ERROR_CLASSES}
