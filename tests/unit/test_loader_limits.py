"""Every file loader refuses a document nested too deep with its own typed error naming
the file, never a RecursionError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from closedloop import ClosedLoopError, Workflow
from closedloop.engine.calendars.holiday_table import HolidayTable
from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.duties.catalog import CategoryCatalog
from closedloop.engine.duties.responsibility_list import ResponsibilityList
from closedloop.engine.loading import MAX_YAML_DEPTH, NotYAML, parse_yaml
from closedloop.errors import (
    InvalidDirectory,
    InvalidResponsibilityList,
    InvalidWorkflow,
    ValidationError,
)

DIRECTORY = InMemoryDirectory.from_dict(
    {"areas": [{"code": "D1"}], "units": [{"id": "water", "name": "Water", "areas": ["D1"]}]}
)

LOADERS: list[tuple[str, Callable[[Path], Any], type[ClosedLoopError]]] = [
    ("holiday table", HolidayTable.from_yaml, ValidationError),
    ("workflow", Workflow.from_yaml, InvalidWorkflow),
    ("directory", InMemoryDirectory.from_yaml, InvalidDirectory),
    ("category catalog", CategoryCatalog.from_yaml, InvalidResponsibilityList),
    (
        "responsibility list",
        lambda path: ResponsibilityList.from_yaml(path, directory=DIRECTORY),
        InvalidResponsibilityList,
    ),
]

DEEP = {
    "flow": "[" * 5_000 + "]" * 5_000,
    "unclosed": "[" * 5_000,
    "block": "".join("  " * i + "a:\n" for i in range(2_000)) + "  " * 2_000 + "1\n",
    "inside a valid start": "years:\n  2027:\n    holidays: " + "[" * 3_000 + "]" * 3_000,
    "just too deep": "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1),
}


@pytest.mark.parametrize("document", list(DEEP), ids=list(DEEP))
@pytest.mark.parametrize(("kind", "load", "error"), LOADERS, ids=[kind for kind, *_ in LOADERS])
def test_a_deeply_nested_file_is_a_typed_error_naming_the_file(
    tmp_path: Path,
    document: str,
    kind: str,
    load: Callable[[Path], Any],
    error: type[ClosedLoopError],
) -> None:
    path = tmp_path / f"{kind.replace(' ', '-')}.yaml"
    path.write_text(DEEP[document], encoding="utf-8")
    with pytest.raises(error) as raised:
        load(path)
    message = str(raised.value)
    assert str(path) in message
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in message or "not valid YAML" in message


def test_the_depth_limit_is_exact() -> None:
    assert parse_yaml("[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH) == _nested(MAX_YAML_DEPTH)
    with pytest.raises(NotYAML, match=f"nested deeper than {MAX_YAML_DEPTH} levels"):
        parse_yaml("[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1))


def test_a_deep_json_workflow_is_an_invalid_workflow_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"name": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with pytest.raises(InvalidWorkflow, match=r"deep\.json"):
        Workflow.from_json(path)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_missing_definition_file_is_each_loader_s_typed_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    loaders: list[tuple[Callable[[], Any], type[ClosedLoopError]]] = [
        (lambda: Workflow.from_yaml(missing), InvalidWorkflow),
        (lambda: CategoryCatalog.from_yaml(missing), InvalidResponsibilityList),
        (
            lambda: ResponsibilityList.from_yaml(missing, directory=DIRECTORY),
            InvalidResponsibilityList,
        ),
        (lambda: InMemoryDirectory.from_yaml(missing), InvalidDirectory),
    ]
    for load, error in loaders:
        with pytest.raises(error, match="cannot read") as refused:
            load()
        assert str(missing) in str(refused.value)
