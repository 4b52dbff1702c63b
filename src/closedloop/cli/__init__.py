"""The ``closedloop`` command line (the ``cli`` extra: Typer and Rich).

Only this package imports Typer and Rich. Commands: ``demo``, ``validate``,
``diagram``, ``route``, ``gaps``, ``db upgrade``, ``worker``, ``serve``, ``cases``,
``case show``, ``signals``, ``board``, ``deadlines recompute``, ``privacy purge``; see
``docs/cli.md``.
"""

from __future__ import annotations

from closedloop.cli.app import app, main

__all__ = ["app", "main"]
