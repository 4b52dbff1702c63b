"""Open311's two statuses, and the notes that say more, from the workflow's states.

Open311 knows ``open`` and ``closed``. A request is ``closed`` once its case is in a
final state, ``open`` before; ``status_notes`` says where it stands in words a citizen
reads. The standard workflow's notes are below (docs/http.md has the table); a state
of another workflow without a note is described by its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from closedloop.engine.definition import Workflow
from closedloop.errors import DefinitionError

STANDARD_NOTES: Mapping[str, str] = {
    "reported": "Received; waiting to be classified.",
    "classified": "Classified; waiting to be assigned to a unit.",
    "assigned": "Assigned to a unit; waiting for the unit to take it on.",
    "returned": "Handed back by the unit; being assigned again.",
    "arbitration": "Being assigned after a dispute over which unit handles it.",
    "in_progress": "Being handled by the responsible unit.",
    "handled": "Handled; the result is being checked.",
    "awaiting_confirmation": "Handled; waiting for the reporter's confirmation.",
    "closed": "Resolved.",
    "rejected": "Not accepted: not a matter for this service.",
    "merged": "A duplicate of another request, which is followed instead.",
    "cancelled": "Cancelled.",
}
"""The notes of the standard workflow's states."""


@dataclass(frozen=True, slots=True)
class Status:
    """A case's state as Open311 shows it."""

    state: str
    status: str
    notes: str


def statuses(workflow: Workflow, notes: Mapping[str, str] | None = None) -> dict[str, Status]:
    """Every state of ``workflow`` as Open311 shows it; ``notes`` override the built-in.

    Raises:
        DefinitionError: ``notes`` names a state the workflow does not declare.
    """
    states = [state.name for state in workflow.states]
    unknown = sorted(set(notes or {}) - set(states))
    if unknown:
        raise DefinitionError(
            f"Open311Config.status_notes names {', '.join(map(repr, unknown))}, no state of"
            f" the workflow {workflow.name!r}; its states: {', '.join(states)}"
        )
    chosen = {**STANDARD_NOTES, **(notes or {})}
    table: dict[str, Status] = {}
    for state in workflow.states:
        note = chosen.get(state.name) or state.name.replace("_", " ").capitalize() + "."
        table[state.name] = Status(state.name, "closed" if state.final else "open", note)
    return table
