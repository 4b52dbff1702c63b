"""What ``Engine.verify`` checks beyond the hash chain: the store's columns and anchors.

A SQL store keeps queryable columns beside the case's JSON (state, lead unit, area,
warning level, ...) for the queries of host screens; nothing in the chain covers them,
so one edited on its own would quietly move a case out of a unit's inbox.
:func:`column_problems` reports every column that disagrees with the case. A case's
anchor is the latest checkpoint whose signed heads name it (:func:`anchor_of`); the
trail is compared with it in :func:`closedloop.engine.checkpoints.anchor_problems`.
"""

from __future__ import annotations

from collections.abc import Mapping

from closedloop.engine.case_query import searchable, warning_level_of
from closedloop.engine.model import Case
from closedloop.engine.ports import CaseStore, Checkpoint, CheckpointStore, IndexedColumns


def indexed_values(case: Case) -> dict[str, object]:
    """The values a store's queryable columns hold for ``case``, by column name.

    Besides the case's own fields, the values its queries derive from it: the text a
    ``text`` criterion searches, the co-units and the reporters of the duplicates
    merged into it (each once, in the case's order), the supervision flag and the
    master it was merged into.
    """
    deadline = case.deadline
    return {
        "id": case.id,
        "workflow": case.workflow,
        "state": case.state,
        "category": case.category,
        "area": case.location.area,
        "lead_unit": case.lead_unit,
        "urgency": case.urgency,
        "version": case.version,
        "reporter_id": case.reporter_id,
        "channel": case.channel,
        "reported_at": case.reported_at,
        "updated_at": case.updated_at,
        "clock": None if deadline is None else deadline.clock,
        "warning_level": warning_level_of(case),
        "due_at": None if deadline is None else deadline.due_at,
        "paused_at": None if deadline is None else deadline.paused_at,
        "search_text": searchable(case),
        "co_units": list(case.co_units),
        "followers": list(dict.fromkeys(duplicate.reporter for duplicate in case.duplicates)),
        "supervised": case.supervised,
        "merged_into": case.merged_into,
    }


def column_problems(store: CaseStore, case: Case) -> list[str]:
    """Each stored column of ``case`` that disagrees with it (none for a store without
    columns, or when the case changed since it was read)."""
    if not isinstance(store, IndexedColumns):
        return []
    stored: Mapping[str, object] | None = store.indexed_columns(case.id)
    if stored is None or stored.get("version") != case.version:
        return []  # moved on (or gone) since the case was read: nothing to compare
    expected = indexed_values(case)
    return [
        f"the stored column {name} is {stored[name]!r} but the case says {value!r}"
        for name, value in expected.items()
        if name in stored and stored[name] != value
    ]


def anchor_of(store: CaseStore, case_id: str) -> tuple[int, Checkpoint | None, int | None] | None:
    """The case's anchor: the number of the latest checkpoint that signed a head of it,
    that checkpoint as stored (``None`` when it is missing) and the number the store's
    anchor row names (``None`` without a row); ``None`` when no checkpoint signed the
    case, or the store keeps none.

    The latest checkpoint is found in the checkpoints' own heads, the data their
    signatures cover, so deleting or editing the unsigned anchor row cannot hide it;
    only when no checkpoint's heads name the case is the row's checkpoint taken (it
    was then changed, or is missing).
    """
    if not isinstance(store, CheckpointStore):
        return None
    row = store.anchor(case_id)
    signed = store.signed_anchors([case_id]).get(case_id)
    number = signed if signed is not None else row
    if number is None:
        return None
    found = store.checkpoints(after=number - 1, limit=1)
    return number, (found[0] if found and found[0].number == number else None), row
