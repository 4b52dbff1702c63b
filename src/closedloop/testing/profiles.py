"""Hypothesis settings profiles for closedloop's property tests, and for yours.

* ``quick``: a handful of short examples, random, for a check that takes seconds
  (before a commit, or while writing a workflow).
* ``ci``: a bounded number of examples, no deadline (a commit on a loaded CI runner
  can take a while), derandomized so that every run tries the same examples, no
  example database, and a reproduction blob printed with every failure.
* ``dev``: the same number of examples, random and remembered, for the edit-test loop.
* ``thorough``: many examples and longer stateful runs, for a long local run.

No profile runs Hypothesis's *explain* phase: on a failing stateful test it replays
the program about a thousand times under a tracer, which for a workflow takes minutes
where shrinking took seconds.

Call :func:`register_profiles` once (in a ``conftest.py``), then
:func:`load_profile_from_env`::

    from closedloop.testing import load_profile_from_env, register_profiles

    register_profiles()
    load_profile_from_env()   # HYPOTHESIS_PROFILE=quick|ci|dev|thorough pytest ...

Requires ``hypothesis`` (in the ``dev`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import InvalidArgument

PROFILES: tuple[str, ...] = ("quick", "ci", "dev", "thorough")
"""The profiles :func:`register_profiles` registers."""

QUICK_EXAMPLES = 8
"""Examples per test under the ``quick`` profile."""
QUICK_STEPS = 20
"""Steps per stateful example under the ``quick`` profile (after the steered tour)."""
CI_EXAMPLES = 40
"""Examples per test under the ``ci`` and ``dev`` profiles."""
THOROUGH_EXAMPLES = 1000
"""Examples per test under the ``thorough`` profile."""


def register_profiles() -> None:
    """Register the ``quick``, ``ci``, ``dev`` and ``thorough`` profiles with Hypothesis.

    Registering again replaces them with the same values, so calling this from more
    than one ``conftest.py`` is harmless.
    """
    slow = [HealthCheck.too_slow]
    no_explain = [p for p in Phase if p is not Phase.explain]
    settings.register_profile(
        "quick",
        max_examples=QUICK_EXAMPLES,
        stateful_step_count=QUICK_STEPS,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=slow,
        phases=no_explain,
    )
    settings.register_profile(
        "ci",
        max_examples=CI_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=slow,
        phases=no_explain,
    )
    settings.register_profile("dev", max_examples=CI_EXAMPLES, deadline=None, phases=no_explain)
    settings.register_profile(
        "thorough",
        max_examples=THOROUGH_EXAMPLES,
        stateful_step_count=100,
        deadline=None,
        print_blob=True,
        suppress_health_check=slow,
        phases=no_explain,
    )


def load_profile_from_env(
    var: str = "HYPOTHESIS_PROFILE", *, environ: Mapping[str, str] | None = None
) -> str:
    """Load the profile named by the environment variable ``var``; return its name.

    Without ``var``, ``ci`` is loaded when the ``CI`` variable is set to anything but
    ``""``, ``0`` or ``false`` (as CI services do), and ``dev`` otherwise.
    Call :func:`register_profiles` first (this registers them if it was not).

    Args:
        var: The variable naming the profile.
        environ: Where to read variables; ``os.environ`` by default.

    Raises:
        hypothesis.errors.InvalidArgument: the variable names an unregistered profile.
    """
    env = os.environ if environ is None else environ
    try:
        settings.get_profile("ci")
    except InvalidArgument:
        register_profiles()
    name = env.get(var) or ("ci" if _truthy(env.get("CI", "")) else "dev")
    settings.load_profile(name)
    return name


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no")
