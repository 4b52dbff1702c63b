"""``python -m closedloop.cli``: the same as the ``closedloop`` command."""

from __future__ import annotations

from closedloop.cli import main

main()
