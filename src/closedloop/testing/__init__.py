"""What users import in their own tests: a clock they control, and more to come.

Importing this module does not import pytest or hypothesis.
"""

from __future__ import annotations

from closedloop.testing.clock import ManualClock

__all__ = ["ManualClock"]
