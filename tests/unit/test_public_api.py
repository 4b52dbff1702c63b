"""The public surface and the rules of the house that keep the core pure."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import closedloop

SRC = Path(closedloop.__file__).parent


def test_exported_names_are_pinned() -> None:
    assert closedloop.__all__ == [
        "SYSTEM",
        "Actor",
        "AuditEvent",
        "AuditReport",
        "CalendarNotCovered",
        "Case",
        "CaseError",
        "CaseNotFound",
        "CategoryCatalog",
        "ChineseHolidays",
        "ClosedLoopError",
        "ConcurrentModification",
        "Context",
        "CountryHolidays",
        "Deadline",
        "DefinitionError",
        "Duration",
        "Engine",
        "GuardRejected",
        "HolidayTable",
        "IdempotencyConflict",
        "InMemoryDirectory",
        "InputError",
        "InvalidDirectory",
        "InvalidResponsibilityList",
        "InvalidWorkflow",
        "LayeredHolidays",
        "Location",
        "NaturalCalendar",
        "PermissionDenied",
        "Registry",
        "ReporterContact",
        "ResponsibilityList",
        "Routing",
        "StoreError",
        "SystemClock",
        "TickReport",
        "TransitionNotAllowed",
        "ValidationError",
        "Worker",
        "Workflow",
        "WorkingCalendar",
        "workflows",
    ]
    for name in closedloop.__all__:
        assert getattr(closedloop, name) is not None


def test_every_error_derives_from_the_root() -> None:
    from closedloop import errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) > 10
    for cls in classes:
        assert issubclass(cls, errors.ClosedLoopError), cls
        assert cls.__doc__, f"{cls.__name__} needs a one-sentence docstring"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_engine_imports_no_adapter_and_only_the_machine_imports_transitions() -> None:
    importers = []
    for path in sorted(SRC.rglob("*.py")):
        modules = imports_of(path)
        if any(m == "transitions" or m.startswith("transitions.") for m in modules):
            importers.append(path.relative_to(SRC).as_posix())
        if "engine" in path.relative_to(SRC).parts:
            assert not any(m.startswith("closedloop.adapters") for m in modules), path
            assert not any(m.split(".")[0] in {"sqlalchemy", "apscheduler"} for m in modules), path
    assert importers == ["engine/machine.py"]


def test_the_documented_one_liner_works() -> None:
    code = "from closedloop import Engine, Actor, Workflow, workflows; workflows.standard()"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_the_testing_kit_pulls_in_neither_pytest_nor_hypothesis() -> None:
    code = (
        "import sys, closedloop.testing\n"
        "assert 'pytest' not in sys.modules and 'hypothesis' not in sys.modules, sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
