"""What users import in their own tests: a clock they control, a stateful fuzzer for
any workflow, Hypothesis strategies and profiles, and contract suites for adapters.

* :class:`ManualClock` - time that moves only when the test says so.
* :func:`workflow_state_machine` - a Hypothesis ``RuleBasedStateMachine`` for ANY
  workflow, checking the closed loop's invariants after every step.
* :mod:`strategies <closedloop.testing.strategies>` - actors, reports, payloads, and
  :func:`workflows` (random valid workflow definitions).
* :func:`register_profiles` / :func:`load_profile_from_env` - the ``ci``, ``dev`` and
  ``thorough`` Hypothesis profiles.
* :class:`CaseStoreContract` / :class:`NotifierContract` - the contract suites, for
  third-party stores and notification channels; :class:`RecordingNotifier` keeps what
  it was sent.

Importing this package imports neither pytest nor hypothesis; the names that need
them load their module on first use. See ``docs/testing.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from closedloop.testing.clock import ManualClock

if TYPE_CHECKING:
    from closedloop.testing import strategies
    from closedloop.testing.contract import CaseStoreContract
    from closedloop.testing.definitions import workflows
    from closedloop.testing.notifiers import NotifierContract
    from closedloop.testing.profiles import load_profile_from_env, register_profiles
    from closedloop.testing.recording import RecordingNotifier
    from closedloop.testing.state_machine import workflow_state_machine
    from closedloop.testing.strategies import actors, payloads, reports

__all__ = [
    "CaseStoreContract",
    "ManualClock",
    "NotifierContract",
    "RecordingNotifier",
    "actors",
    "load_profile_from_env",
    "payloads",
    "register_profiles",
    "reports",
    "strategies",
    "workflow_state_machine",
    "workflows",
]

_LAZY: dict[str, tuple[str, str | None]] = {
    "CaseStoreContract": ("closedloop.testing.contract", "CaseStoreContract"),
    "NotifierContract": ("closedloop.testing.notifiers", "NotifierContract"),
    "RecordingNotifier": ("closedloop.testing.recording", "RecordingNotifier"),
    "actors": ("closedloop.testing.strategies", "actors"),
    "load_profile_from_env": ("closedloop.testing.profiles", "load_profile_from_env"),
    "payloads": ("closedloop.testing.strategies", "payloads"),
    "register_profiles": ("closedloop.testing.profiles", "register_profiles"),
    "reports": ("closedloop.testing.strategies", "reports"),
    "strategies": ("closedloop.testing.strategies", None),
    "workflow_state_machine": ("closedloop.testing.state_machine", "workflow_state_machine"),
    "workflows": ("closedloop.testing.definitions", "workflows"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'closedloop.testing' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
