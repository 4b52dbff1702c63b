"""What users import in their own tests: a clock they control, a stateful fuzzer for
any workflow, Hypothesis strategies and contract suites for adapters.

Importing this package imports neither pytest nor hypothesis; the names that need
them load their module on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from closedloop.testing.clock import ManualClock

__all__ = ["ManualClock", "strategies", "workflow_state_machine"]

_LAZY = {
    "workflow_state_machine": ("closedloop.testing.state_machine", "workflow_state_machine"),
    "strategies": ("closedloop.testing.strategies", None),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'closedloop.testing' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
