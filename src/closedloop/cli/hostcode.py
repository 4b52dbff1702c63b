"""Host code named on the command line: ``--registry module:attr``, ``--notifier ...``.

A host's guards, effects and notification channels are Python code; the command line
reaches them by name, ``module:attribute``. The module is imported the way
``python -m`` imports one: the current directory comes first on ``sys.path``, so a
``potholes.py`` beside the workflow file is found when the command runs from there.
The attribute is the object itself, or a callable taking no arguments that returns
it. Anything that goes wrong (no such module, an error while importing it, no such
attribute, an object of another type) is a :class:`~closedloop.errors.HostCodeUnusable`
naming the problem, which the command line reports on one line.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import cast

from closedloop.engine.delivery import notifier_problem
from closedloop.engine.ports import Notifier
from closedloop.engine.registry import Registry
from closedloop.errors import HostCodeUnusable


def _cwd_first() -> None:
    """Put the current directory first on ``sys.path``, as ``python -m`` does."""
    here = os.getcwd()
    if here in sys.path:
        sys.path.remove(here)
    sys.path.insert(0, here)


def _attribute(spec: str, wanted: str, example: str) -> object:
    """The object ``module:attr`` names (``attr`` may be dotted); ``example`` shows the
    form in the error when ``spec`` lacks it."""
    module_name, colon, path = spec.partition(":")
    if not colon or not module_name or not path:
        raise HostCodeUnusable(spec, wanted, f"write it as module:attribute, e.g. {example}")
    _cwd_first()
    try:
        found: object = importlib.import_module(module_name)
    except Exception as broken:  # host code: any error while importing is reported
        raise HostCodeUnusable(spec, wanted, _import_failure(module_name, broken)) from None
    for part in path.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            reason = f"{module_name!r} has no attribute {path!r}"
            raise HostCodeUnusable(spec, wanted, reason) from None
    return found


def _import_failure(module_name: str, error: Exception) -> str:
    """Why importing ``module_name`` failed, in one sentence."""
    missing = getattr(error, "name", None) if isinstance(error, ModuleNotFoundError) else None
    if missing and f"{module_name}.".startswith(f"{missing}."):
        return f"no module named {missing!r} in {os.getcwd()} or on sys.path"
    return f"importing {module_name!r} failed: {type(error).__name__}: {error}"


def _built(
    spec: str, wanted: str, found: object, problem: Callable[[object], str | None]
) -> object:
    """``found`` if it fits (``problem`` answers ``None``); else, if callable, what
    calling it with no arguments gives."""
    if problem(found) is None and not isinstance(found, type):
        return found
    if not callable(found):
        raise HostCodeUnusable(spec, wanted, f"it is {problem(found)}")
    try:
        made = found()
    except Exception as broken:  # host code: a failing factory is reported
        reason = f"calling it failed: {type(broken).__name__}: {broken}"
        raise HostCodeUnusable(spec, wanted, reason) from None
    wrong = problem(made)
    if wrong is not None:
        raise HostCodeUnusable(spec, wanted, f"calling it gave {wrong}")
    return made


def load_registry(spec: str) -> Registry:
    """The :class:`~closedloop.Registry` that ``spec`` (``module:attr``) names or makes.

    Raises:
        HostCodeUnusable: it cannot be imported, is missing or is not a registry.
    """
    wanted = "a Registry of guards and effects"
    found = _built(spec, wanted, _attribute(spec, wanted, "potholes:REGISTRY"), _registry_problem)
    return cast(Registry, found)


def _registry_problem(candidate: object) -> str | None:
    if isinstance(candidate, Registry):
        return None
    name = type(candidate).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def load_notifier(spec: str) -> Notifier:
    """The notifier (an object with a synchronous ``send``) that ``spec`` names or makes.

    Raises:
        HostCodeUnusable: it cannot be imported, is missing, has no ``send`` method or
            its ``send`` is ``async def``.
    """
    wanted = "a notifier (an object with a synchronous send(notification) method)"
    return cast(
        Notifier,
        _built(spec, wanted, _attribute(spec, wanted, "channels:SMSChannel"), notifier_problem),
    )


def load_notifiers(specs: list[str]) -> Mapping[str, Notifier]:
    """Notifiers by channel from ``--notifier`` values: ``module:attr`` serves every
    channel (``*``), ``channel=module:attr`` one channel.

    Raises:
        HostCodeUnusable: a value names unusable code, or two values name one channel.
    """
    named: dict[str, str] = {}
    for value in specs:
        channel, equals, spec = value.partition("=")
        if not equals:
            channel, spec = "*", value
        if not channel:
            raise HostCodeUnusable(value, "a notifier", "the channel before '=' is empty")
        if channel in named:
            reason = f"channel {channel!r} is given a notifier twice"
            raise HostCodeUnusable(value, "a notifier", reason)
        named[channel] = spec
    return {channel: load_notifier(spec) for channel, spec in named.items()}
