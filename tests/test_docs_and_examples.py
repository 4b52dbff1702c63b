"""The README's code runs as written, and every example script runs to completion."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_readme_quick_start_runs_as_written() -> None:
    blocks = python_blocks(ROOT / "README.md")
    assert blocks, "the README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_quickstart_example_closes_the_loop(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True, text=True, check=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    out = done.stdout
    assert "closed, handled by water-company" in out
    for trigger in (
        "report",
        "classify",
        "dispatch",
        "accept",
        "submit_result",
        "feedback",
        "confirm",
    ):
        assert re.search(rf"\d\. {trigger}\b", out), trigger
    assert "audit chain verified: True (7 events)" in out


@pytest.mark.parametrize(
    "script", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").rglob("*.py"))
)
def test_every_example_script_runs(script: str, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / script)],
        capture_output=True,
        check=True,
        cwd=tmp_path,
        timeout=120,
    )


ACTOR_ID = re.compile(r"""Actor\(\s*f?["']([^"']*)["']""")
PERSONAL = re.compile(r"\d{7,}|@|\{[^}]*phone[^}]*\}")


def test_examples_give_actors_opaque_ids_never_phone_numbers_or_emails() -> None:
    """Actor ids stay in the hash-chained trail for good: no example may teach putting
    a phone number or an email address there."""
    sources = [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "examples").rglob("*.py"),
    ]
    sources += (ROOT / "src" / "closedloop" / "simulation").rglob("*.py")
    found = {
        (path.relative_to(ROOT).as_posix(), actor_id)
        for path in sources
        for actor_id in ACTOR_ID.findall(path.read_text(encoding="utf-8"))
    }
    assert len(found) > 10, "the pattern no longer finds the examples' actors"
    assert sorted(item for item in found if PERSONAL.search(item[1])) == []


def test_the_security_page_names_only_tests_that_exist() -> None:
    page = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    files = set(re.findall(r"`(tests/[\w/]+\.py)", page))
    names = set(re.findall(r"`(?:tests/[\w/]+\.py::)?(test_\w+)`", page))
    assert files, "the page names no test file"
    assert names, "the page names no test"
    assert sorted(f for f in files if not (ROOT / f).is_file()) == []
    defined = {
        match
        for path in (ROOT / "tests").rglob("test_*.py")
        for match in re.findall(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), re.M)
    }
    assert sorted(names - defined) == []
