"""The responsibility list (权责清单): who leads on which category in which area, and why.

``ResponsibilityList.resolve(category, area, at)`` gives a :class:`Routing` naming
exactly one lead unit (or demanding arbitration), the entry that decided and an
explanation. See ``docs/routing.md`` for the formats and the resolution order.
"""

from closedloop.engine.duties.catalog import CategoryCatalog, Precedence
from closedloop.engine.duties.consistency import Conflict
from closedloop.engine.duties.entries import CoUnit, Entry, Fallback
from closedloop.engine.duties.resolution import Routing
from closedloop.engine.duties.responsibility_list import ResponsibilityList

__all__ = [
    "CategoryCatalog",
    "CoUnit",
    "Conflict",
    "Entry",
    "Fallback",
    "Precedence",
    "ResponsibilityList",
    "Routing",
]
