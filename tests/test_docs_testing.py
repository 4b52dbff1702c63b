"""docs/testing.md runs as written: its worked example fails as shown, then passes once
fixed. (The page's other Python blocks run in tests/test_docs_and_examples.py.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
BLOCK = re.compile(r"```(\w+)(?: (\S+))?\n(.*?)```", flags=re.S)


def blocks() -> list[tuple[str, str | None, str]]:
    """(language, file name or None, text) of every fenced block on the page."""
    return [(m[1], m[2], m[3]) for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8"))]


def run_pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYPOTHESIS_PROFILE": "ci"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_potholes.py"],
        capture_output=True, text=True, cwd=folder, env=env, timeout=300, check=False,
    )  # fmt: skip


def apply(diff: str, path: Path) -> None:
    """Apply a one-hunk diff of whole lines, as the page shows it."""
    text = path.read_text(encoding="utf-8")
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    old, new = "\n".join(removed), "\n".join(added)
    assert text.count(old) == 1, f"the diff does not apply to {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def worked_example(tmp_path: Path) -> Path:
    for language, name, text in blocks():
        if name is not None and language in ("yaml", "python"):
            (tmp_path / name).write_text(text, encoding="utf-8")
    assert {"potholes.yaml", "potholes.py", "test_potholes.py", "conftest.py"} <= {
        p.name for p in tmp_path.iterdir()
    }
    return tmp_path


def test_the_worked_example_finds_the_trap_then_passes_once_fixed(worked_example: Path) -> None:
    failed = run_pytest(worked_example)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    shown = next(text for language, _, text in blocks() if language == "text")
    for line in shown.splitlines():
        wanted = line.removeprefix("E").strip()
        # The error and the first step are stable; how Hypothesis shrinks the steered
        # tour's draws may vary between its versions, so only its presence is checked.
        if wanted.startswith(("AssertionError:", "state.first_report")):
            assert wanted in failed.stdout, f"the page shows {wanted!r}; the run did not"
    assert "state.tour(data=data(...), steps=" in failed.stdout
    diff = next(text for language, name, text in blocks() if language == "diff")
    apply(diff, worked_example / "potholes.py")
    passed = run_pytest(worked_example)
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_the_example_folder_holds_the_pages_files_with_the_fix(worked_example: Path) -> None:
    diff = next(text for language, name, text in blocks() if language == "diff")
    apply(diff, worked_example / "potholes.py")
    folder = PAGE.parents[1] / "examples" / "potholes"
    for name in ("potholes.yaml", "potholes.py", "conftest.py", "test_potholes.py"):
        shown = (worked_example / name).read_text(encoding="utf-8")
        assert (folder / name).read_text(encoding="utf-8") == shown, name
