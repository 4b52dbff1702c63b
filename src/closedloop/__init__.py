"""closedloop: run citizen reports through a closed loop, and prove who did what, when.

The public names live here; adapters are imported from ``closedloop.adapters.<name>``.
"""

from __future__ import annotations

from closedloop import workflows
from closedloop.engine.audit import AuditReport
from closedloop.engine.clock import SystemClock
from closedloop.engine.definition import Workflow
from closedloop.engine.durations import Duration
from closedloop.engine.model import SYSTEM, Actor, AuditEvent, Case, Location, ReporterContact
from closedloop.engine.registry import Context, Registry
from closedloop.engine.service import Engine
from closedloop.errors import (
    CaseError,
    CaseNotFound,
    ClosedLoopError,
    ConcurrentModification,
    DefinitionError,
    GuardRejected,
    IdempotencyConflict,
    InputError,
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
    "Case",
    "CaseError",
    "CaseNotFound",
    "ClosedLoopError",
    "ConcurrentModification",
    "Context",
    "DefinitionError",
    "Duration",
    "Engine",
    "GuardRejected",
    "IdempotencyConflict",
    "InputError",
    "InvalidWorkflow",
    "Location",
    "PermissionDenied",
    "Registry",
    "ReporterContact",
    "StoreError",
    "SystemClock",
    "TransitionNotAllowed",
    "ValidationError",
    "Workflow",
    "workflows",
]
