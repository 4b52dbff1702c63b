"""The import layers of closedloop, read from the source, so that the structure that
docs/architecture.md describes cannot rot.

Every import statement counts, including those inside functions: a deferred import
still ties two modules together.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# The packages from the ground up. A package may import its own modules and those of a
# lower layer, never one of its own layer or above.
LAYERS: dict[str, int] = {
    "errors": 0,
    "engine": 1,
    "workflows": 2,
    "adapters": 3,
    "testing": 3,
    "metrics": 4,
    "adapters.http": 5,  # the front door shows the metrics board
    "simulation": 5,
    "cli": 6,
    "__init__": 7,
}

# Third-party packages, and the only places that may import them.
TECHNOLOGIES: dict[str, tuple[str, ...]] = {
    "transitions": ("engine/machine.py",),
    "pydantic": ("engine/", "adapters/", "metrics/"),
    "pydantic_core": ("engine/", "adapters/"),
    "yaml": ("engine/loading.py",),
    "sqlalchemy": ("adapters/sqlalchemy/",),
    "alembic": ("adapters/sqlalchemy/",),
    "apscheduler": ("adapters/apscheduler.py",),
    "httpx": ("adapters/webhook/",),
    "chinese_calendar": ("engine/calendars/sources.py",),
    "holidays": ("engine/calendars/sources.py",),
    "hypothesis": ("testing/",),
    "pytest": ("testing/",),
    "matplotlib": ("metrics/charts.py",),
    "typer": ("cli/",),
    "rich": ("cli/",),
    "fastapi": ("adapters/http/", "cli/serve.py"),
    "starlette": ("adapters/http/", "cli/serve.py"),
    "jinja2": ("adapters/http/",),
    "uvicorn": ("cli/serve.py",),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "closedloop").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every name ``module`` imports, resolved to a module of closedloop where it is one."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield submodule if submodule in MODULES else target


GRAPH = {
    module: {name for name in _imports(module, path) if name in MODULES and name != module}
    for module, path in MODULES.items()
}


def _package(module: str) -> str:
    parts = module.split(".")
    if parts[1:3] == ["adapters", "http"]:
        return "adapters.http"
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles() -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(GRAPH[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return groups


def test_every_package_has_a_layer() -> None:
    assert {_package(m) for m in MODULES} <= set(LAYERS)


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    assert _cycles() == []


def test_packages_import_only_from_lower_layers() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _package(target) != _package(module)
        and LAYERS[_package(target)] >= LAYERS[_package(module)]
    )
    assert upward == []


def test_the_engine_imports_nothing_of_closedloop_but_itself_and_its_errors() -> None:
    outside = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _package(module) == "engine"
        for target in targets
        if _package(target) not in {"engine", "errors"}
    )
    assert outside == []


def test_third_party_libraries_are_imported_only_where_they_belong() -> None:
    misplaced = []
    for module, path in MODULES.items():
        where = path.relative_to(SRC / "closedloop").as_posix()
        for name in _imports(module, path):
            top = name.partition(".")[0]
            if top == "closedloop" or top in sys.stdlib_module_names:
                continue
            allowed = TECHNOLOGIES.get(top)
            if allowed is None or not where.startswith(allowed):
                misplaced.append(f"{where} imports {top}")
    assert sorted(set(misplaced)) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_the_cycle_finder_finds_a_planted_cycle(
    source: dict[str, set[str]], expected: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", source)
    assert _cycles() == expected


ARCHITECTURE = SRC.parent / "docs" / "architecture.md"


def _named_on_the_page() -> list[str]:
    import re

    return re.findall(r"`([^`\s]+)`", ARCHITECTURE.read_text(encoding="utf-8"))


def test_every_file_the_architecture_page_names_exists() -> None:
    missing = []
    for name in _named_on_the_page():
        if not name.endswith((".py", "/")) or name.startswith("."):
            continue
        path = name.removeprefix("src/closedloop/").rstrip("/")
        places = [
            SRC / "closedloop" / path,
            SRC / "closedloop" / "engine" / path,
            SRC.parent / path,
        ]
        places += [SRC / "closedloop" / "adapters" / path]
        if not any(place.exists() for place in places):
            missing.append(name)
    assert missing == []


def test_every_class_the_architecture_page_names_is_defined() -> None:
    import re

    source = "\n".join(path.read_text(encoding="utf-8") for path in MODULES.values())
    defined = set(re.findall(r"^\s*class (\w+)", source, flags=re.M))
    named = {
        name.split(".")[0].split("(")[0]
        for name in _named_on_the_page()
        if re.fullmatch(r"[A-Z][A-Za-z]+(\.[a-z_]+)?(\(.*\))?", name)
    }
    assert sorted(named - defined) == []


CORE = {"transitions", "pydantic", "pydantic_core", "yaml", "sqlalchemy", "apscheduler"}
"""The core install's libraries; every other one comes with an extra."""


def _top_level_imports(path: Path) -> Iterator[str]:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module.partition(".")[0]


def test_the_engine_imports_an_extra_only_inside_the_function_that_needs_it() -> None:
    eager = sorted(
        f"{module} imports {name}"
        for module, path in MODULES.items()
        if _package(module) == "engine"
        for name in _top_level_imports(path)
        if name not in CORE and name != "closedloop" and name not in sys.stdlib_module_names
    )
    assert eager == []


def test_only_the_demo_imports_the_simulation_and_only_when_it_runs() -> None:
    importers = sorted(
        module
        for module, targets in GRAPH.items()
        if _package(module) != "simulation"
        and any(_package(target) == "simulation" for target in targets)
    )
    assert importers == ["closedloop.cli.demo"]
    top = ast.parse(MODULES["closedloop.cli.demo"].read_text(encoding="utf-8")).body
    eager = [
        node.module
        for node in top
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("closedloop.simulation")
    ]
    assert eager == []


def test_only_serve_imports_the_front_door_and_only_when_it_runs() -> None:
    importers = sorted(
        module
        for module, targets in GRAPH.items()
        if _package(module) != "adapters.http"
        and any(_package(target) == "adapters.http" for target in targets)
    )
    assert importers == ["closedloop.cli.serve"]
    top = ast.parse(MODULES["closedloop.cli.serve"].read_text(encoding="utf-8")).body
    eager = [
        name
        for node in top
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
        )
        if name.startswith(("closedloop.adapters.http", "fastapi", "starlette", "uvicorn"))
    ]
    assert eager == []
