"""The SQL store: SQLite embedded by default, PostgreSQL for many processes.

>>> from closedloop.adapters.sqlalchemy import SQLStore  # doctest: +SKIP
>>> store = SQLStore("sqlite:///cases.db")  # doctest: +SKIP

Needs only the core dependencies for SQLite. PostgreSQL needs the ``postgres`` extra
(psycopg 3); :func:`upgrade` needs Alembic (in the ``postgres`` and ``cli`` extras).
See ``docs/storage.md``.
"""

from __future__ import annotations

from closedloop.adapters.sqlalchemy.migrate import upgrade
from closedloop.adapters.sqlalchemy.schema import HEAD_REVISION, metadata
from closedloop.adapters.sqlalchemy.store import SQLStore
from closedloop.adapters.sqlalchemy.transaction import SQLTransaction
from closedloop.engine.case_query import CasePage

__all__ = ["HEAD_REVISION", "CasePage", "SQLStore", "SQLTransaction", "metadata", "upgrade"]
