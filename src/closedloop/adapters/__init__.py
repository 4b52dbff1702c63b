"""Adapters: one module per technology, implementing the ports of ``closedloop.engine.ports``.

Adapters are not re-exported from the package root, so their optional dependencies
stay optional: import them from their own module.
"""
