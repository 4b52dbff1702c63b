"""How the command line fails: one line on stderr, exit status 1, no traceback.

A domain error (any :class:`~closedloop.errors.ClosedLoopError`), a file that cannot be
read, a database that cannot be reached and an optional package that is not installed
are the user's to fix, so they are reported as one line naming the problem (for a
package: the extra that installs it); usage errors stay Typer's (exit status 2).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

from closedloop.errors import ClosedLoopError, MissingDependency

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


EXTRAS: dict[str, tuple[str, str]] = {
    "uvicorn": ("uvicorn", "server"),
    "fastapi": ("fastapi", "server"),
    "starlette": ("fastapi", "server"),
    "jinja2": ("Jinja2", "server"),
    "python_multipart": ("python-multipart", "server"),
    "multipart": ("python-multipart", "server"),
    "httpx": ("httpx", "http"),
    "psycopg": ("psycopg", "postgres"),
    "alembic": ("alembic", "cli"),
    "matplotlib": ("matplotlib", "cli"),
    "chinese_calendar": ("chinesecalendar", "cn"),
    "holidays": ("holidays", "holidays"),
}
"""The optional modules commands import, by top-level name: their package and the
closedloop extra that installs it (as ``pyproject.toml`` declares them)."""


def require(command: str, *modules: str) -> None:
    """Import each optional module ``command`` needs now, so a missing one stops it
    before it starts anything; a module named ``a|b`` may be either (a package's old
    and new names).

    Raises:
        MissingDependency: one is not installed (naming its package and extra).
    """
    for names in modules:
        alternatives = names.split("|")
        for name in alternatives:
            try:
                importlib.import_module(name)
                break
            except ImportError:
                continue
        else:
            package, extra = EXTRAS[alternatives[0]]
            raise MissingDependency(package, extra, command)


def missing_dependency(error: ImportError) -> MissingDependency | None:
    """The optional package ``error`` says is not installed, with its extra; ``None``
    when it names no module :data:`EXTRAS` knows (a bug, not the user's to fix)."""
    if not isinstance(error, ModuleNotFoundError) or error.name is None:
        return None
    known = EXTRAS.get(error.name.partition(".")[0])
    if known is None:
        return None
    return MissingDependency(known[0], known[1], "this command")


def fail(message: str) -> NoReturn:
    """Print ``message`` as the one error line and exit with status 1."""
    print(f"closedloop: error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(DOMAIN_ERROR)


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command``, turning a domain error, an unreadable file or a missing optional
    package into :func:`fail`."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (ClosedLoopError, OSError) as error:
            fail(one_line(error))
        except ImportError as error:
            missing = missing_dependency(error)
            if missing is None:
                raise
            fail(one_line(missing))

    return run
