"""Find test functions that cannot fail: ``python -m tests.vacuous [paths...]``.

A test function (``test_*``, at module level or in a ``Test*`` class) must check
something: contain an ``assert``, a ``pytest.raises`` (or ``pytest.fail``, or a
``raise AssertionError``, or a ``check=True`` call such as ``subprocess.run``), or call
a helper that does. A helper is any function
defined in the scanned files, or in ``closedloop.testing``, that checks something by
the same rule, however deep the calls go; it is matched by name, so ``self.check()``
and ``defects.check()`` both count when some scanned ``check`` asserts. A few library
calls assert on their own (:data:`ASSERTING_CALLS`).

A test that deliberately checks nothing but "this runs without an exception" is named
in :data:`DELIBERATE`, with the reason; every other one is reported, and the command
exits 1. ``.ci/run`` runs it over ``tests/``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ASSERTING_CALLS = frozenset(
    {
        "run_state_machine_as_test",  # Hypothesis: raises what the machine's checks raise
        "raises",  # pytest.raises, also as a context manager
        "fail",  # pytest.fail
        "warns",  # pytest.warns
        "deprecated_call",
    }
)
"""Calls from outside the scanned files that fail a test by themselves."""

DELIBERATE: dict[str, str] = {
    "test_fuzz_loader::test_any_yaml_text_loads_or_is_refused": (
        "any text either loads or is refused with InvalidWorkflow: any other exception fails it"
    ),
    "test_docs_and_examples::test_every_python_block_of_the_docs_runs_or_is_marked_a_fragment": (
        "runs each block of the docs, whose own asserts fail it"
    ),
    "test_notifiers::test_verify_matches_header_names_in_any_case_and_takes_text_bodies": (
        "verify() raises SignatureInvalid when the signature does not match"
    ),
    "test_notifiers::test_verify_accepts_headers_as_pairs_from_any_framework": (
        "verify() raises SignatureInvalid when the signature does not match"
    ),
}
"""``module::function`` of tests that check only that nothing raises, and why."""


@dataclass(frozen=True, slots=True)
class Vacuous:
    """A test function that checks nothing."""

    path: Path
    line: int
    name: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name} asserts nothing"


def _calls(node: ast.AST) -> tuple[set[str], set[str]]:
    """What ``node`` calls: plain or module-qualified names (``check(...)``,
    ``invariants.check(...)``), and methods on ``self`` (``self.check(...)``)."""
    functions: set[str] = set()
    methods: set[str] = set()
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Call):
            continue
        func = sub.func
        if isinstance(func, ast.Name):
            functions.add(func.id)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            (methods if func.value.id in ("self", "cls") else functions).add(func.attr)
    return functions, methods


def _checks_directly(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert):
            return True
        if isinstance(sub, ast.Raise) and sub.exc is not None:
            raised = sub.exc.func if isinstance(sub.exc, ast.Call) else sub.exc
            if isinstance(raised, ast.Name) and raised.id == "AssertionError":
                return True
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in ASSERTING_CALLS:
                return True
            if any(k.arg == "check" and _is_true(k.value) for k in sub.keywords):
                return True  # subprocess.run(..., check=True): a failing run raises
    return False


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


@dataclass
class Helpers:
    """The asserting helpers found: module-level functions, and methods of classes."""

    functions: set[str]
    methods: set[str]

    def called_by(self, node: ast.AST) -> bool:
        functions, methods = _calls(node)
        return bool(functions & self.functions or methods & self.methods)


def _definitions(
    tree: ast.Module,
) -> Iterator[tuple[bool, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function of ``tree``, with whether it is a method (defined in a class)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield False, node
        elif isinstance(node, ast.ClassDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield True, sub


def asserting_helpers(trees: Iterable[ast.Module]) -> Helpers:
    """The functions in ``trees`` that check something, directly or by a call."""
    defined = [pair for tree in trees for pair in _definitions(tree)]
    helpers = Helpers(set(), set())
    grew = True
    while grew:
        grew = False
        for is_method, function in defined:
            found = helpers.methods if is_method else helpers.functions
            if function.name in found:
                continue
            if _checks_directly(function) or helpers.called_by(function):
                found.add(function.name)
                grew = True
    return helpers


def _tests(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name.startswith("test"):
                yield node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for member in node.body:
                if isinstance(
                    member, ast.FunctionDef | ast.AsyncFunctionDef
                ) and member.name.startswith("test"):
                    yield member


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def find_vacuous(
    paths: Iterable[Path], *, helpers_from: Iterable[Path] = (), deliberate: Iterable[str] = ()
) -> list[Vacuous]:
    """The test functions in ``paths`` (files or folders) that check nothing.

    Args:
        helpers_from: More files or folders whose asserting functions count as helpers.
        deliberate: ``module::function`` names to leave out (see :data:`DELIBERATE`).
    """
    files = sorted(_python_files(paths))
    trees = {path: _parse(path) for path in files}
    extra = [_parse(path) for path in _python_files(helpers_from)]
    helpers = asserting_helpers([*trees.values(), *extra])
    skip = set(deliberate)
    found = []
    for path, tree in trees.items():
        module = path.stem
        for test in _tests(tree):
            if f"{module}::{test.name}" in skip:
                continue
            if _checks_directly(test) or helpers.called_by(test):
                continue
            found.append(Vacuous(path, test.lineno, test.name))
    return found


def _python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from (p for p in path.rglob("*.py") if ".venv" not in p.parts)
        elif path.suffix == ".py":
            yield path


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [ROOT / "tests"]
    found = find_vacuous(
        paths, helpers_from=[ROOT / "src" / "closedloop" / "testing"], deliberate=DELIBERATE
    )
    for vacuous in found:
        print(vacuous)
    if found:
        print(f"{len(found)} test(s) check nothing: assert something, or list them in DELIBERATE")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
