"""The pure core: definitions, validation, the machine, audit and the Engine service.

Nothing in this package performs I/O of its own, reads the wall clock except through
an injected :class:`~closedloop.engine.ports.Clock`, or imports an adapter.
"""
