"""closedloop: run citizen reports through a closed loop, and prove who did what, when.

The public names live here; adapters are imported from ``closedloop.adapters.<name>``.
"""

from __future__ import annotations

from closedloop import workflows
from closedloop.engine.audit import AuditReport
from closedloop.engine.calendars import (
    ChineseHolidays,
    CountryHolidays,
    HolidayTable,
    LayeredHolidays,
    NaturalCalendar,
    WorkingCalendar,
)
from closedloop.engine.clock import SystemClock
from closedloop.engine.context import Context
from closedloop.engine.definition import Workflow
from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.durations import Duration
from closedloop.engine.duties import CategoryCatalog, ResponsibilityList, Routing
from closedloop.engine.model import (
    SYSTEM,
    Actor,
    AuditEvent,
    Case,
    Deadline,
    Location,
    ReporterContact,
)
from closedloop.engine.registry import Registry
from closedloop.engine.service import Engine
from closedloop.engine.ticking import TickReport
from closedloop.engine.worker import Worker
from closedloop.errors import (
    CalendarNotCovered,
    CaseError,
    CaseNotFound,
    ClosedLoopError,
    ConcurrentModification,
    DefinitionError,
    GuardRejected,
    IdempotencyConflict,
    InputError,
    InvalidDirectory,
    InvalidResponsibilityList,
    InvalidWorkflow,
    PermissionDenied,
    StoreError,
    TransitionNotAllowed,
    ValidationError,
)

__all__ = [
    "SYSTEM",
    "Actor",
    "AuditEvent",
    "AuditReport",
    "CalendarNotCovered",
    "Case",
    "CaseError",
    "CaseNotFound",
    "CategoryCatalog",
    "ChineseHolidays",
    "ClosedLoopError",
    "ConcurrentModification",
    "Context",
    "CountryHolidays",
    "Deadline",
    "DefinitionError",
    "Duration",
    "Engine",
    "GuardRejected",
    "HolidayTable",
    "IdempotencyConflict",
    "InMemoryDirectory",
    "InputError",
    "InvalidDirectory",
    "InvalidResponsibilityList",
    "InvalidWorkflow",
    "LayeredHolidays",
    "Location",
    "NaturalCalendar",
    "PermissionDenied",
    "Registry",
    "ReporterContact",
    "ResponsibilityList",
    "Routing",
    "StoreError",
    "SystemClock",
    "TickReport",
    "TransitionNotAllowed",
    "ValidationError",
    "Worker",
    "Workflow",
    "WorkingCalendar",
    "workflows",
]
