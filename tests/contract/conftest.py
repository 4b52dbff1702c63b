"""Detailed assertion messages from the published contract suite."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("closedloop.testing.contract")
