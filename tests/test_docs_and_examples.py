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
