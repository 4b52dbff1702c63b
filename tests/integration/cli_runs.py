"""Running the ``closedloop`` command as a user runs it: a subprocess per command.

Commands run through ``python -m closedloop.cli`` (the same ``main`` as the console
script). Independent commands run side by side to keep the suite quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ran:
    """One finished command: its exit status and what it wrote."""

    returncode: int
    stdout: str
    stderr: str


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "closedloop.cli", *map(str, args)]


def command_without(modules: Sequence[str], *args: str | Path) -> list[str]:
    """The command run as if ``modules`` were not installed (importing one fails)."""
    blocked = "".join(f"sys.modules[{name!r}] = None; " for name in modules)
    program = f"import sys; {blocked}from closedloop.cli import main; main()"
    return [sys.executable, "-c", program, *map(str, args)]


def environment() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}


def run_all(
    cwd: Path,
    *commands: Sequence[str | Path],
    timeout: float = 120,
    without: Sequence[str] = (),
) -> list[Ran]:
    """Run the commands side by side (as if the ``without`` modules were not
    installed); their results in the same order."""
    started = [
        subprocess.Popen(
            command_without(without, *args) if without else command(*args),
            cwd=cwd,
            env=environment(),
            text=True,
            encoding="utf-8",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in commands
    ]
    done = []
    for process in started:
        out, err = process.communicate(timeout=timeout)
        done.append(Ran(process.returncode, out, err))
    return done


def run(cwd: Path, *args: str | Path) -> Ran:
    return run_all(cwd, args)[0]


def assert_one_line_error(ran: Ran, *fragments: str) -> None:
    """Exit status 1 and exactly one line on stderr, naming every fragment."""
    assert ran.returncode == 1, ran
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("closedloop: error: "), lines[0]
    assert "Traceback" not in ran.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
