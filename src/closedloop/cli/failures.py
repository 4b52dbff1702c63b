"""How the command line fails: one line on stderr, exit status 1, no traceback.

A domain error (any :class:`~closedloop.errors.ClosedLoopError`), a file that cannot be
read and a database that cannot be reached are the user's to fix, so they are reported
as one line naming the problem; usage errors stay Typer's (exit status 2). Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

from closedloop.errors import ClosedLoopError

P = ParamSpec("P")
R = TypeVar("R")

DOMAIN_ERROR = 1
"""The exit status of a domain error."""


def one_line(error: BaseException) -> str:
    """The error's message on one line, every listed problem included."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    text = str(error) or type(error).__name__
    problems = getattr(error, "problems", None)
    if isinstance(problems, tuple) and problems:
        text = f"{text.splitlines()[0]}: " + "; ".join(str(p) for p in problems)
    return " ".join(text.split())


def fail(message: str) -> NoReturn:
    """Print ``message`` as the one error line and exit with status 1."""
    print(f"closedloop: error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(DOMAIN_ERROR)


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command``, turning a domain error or an unreadable file into :func:`fail`."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (ClosedLoopError, OSError) as error:
            fail(one_line(error))

    return run
