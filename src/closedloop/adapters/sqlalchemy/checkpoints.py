"""The SQL store's checkpoints: the ``CheckpointStore`` port over two tables of its own."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy import true as sa_true

from closedloop.adapters.sqlalchemy.engines import begin, connect
from closedloop.adapters.sqlalchemy.failures import translated
from closedloop.adapters.sqlalchemy.schema import case_anchors, case_events, cases, checkpoints
from closedloop.engine.ports import CaseHead, Checkpoint
from closedloop.errors import CheckpointTaken, ValidationError

T = TypeVar("T")

_UNANCHORED = (
    select(cases.c.id, cases.c.version, case_events.c.hash)
    .join(
        case_events,
        and_(case_events.c.case_id == cases.c.id, case_events.c.seq == cases.c.version),
    )
    .outerjoin(case_anchors, case_anchors.c.case_id == cases.c.id)
    .where(or_(case_anchors.c.case_id.is_(None), case_anchors.c.seq != cases.c.version))
    .order_by(cases.c.row_id)
)


_NOT_INDEXED = frozenset({"row_id", "body"})


class SQLCheckpoints:
    """The checkpoint members of :class:`~closedloop.adapters.sqlalchemy.SQLStore`."""

    if TYPE_CHECKING:  # the store's own

        @property
        def engine(self) -> Engine: ...

        def _read(self, action: str, work: Callable[[Connection], T]) -> T: ...

    def unanchored_heads(self, *, limit: int) -> list[CaseHead]:
        """Current heads no checkpoint has signed, oldest case first, at most ``limit``."""
        _check_limit(limit)
        found = self._read(
            "read unanchored heads", lambda c: c.execute(_UNANCHORED.limit(limit)).all()
        )
        return [CaseHead(case_id=row.id, seq=row.version, hash=row.hash) for row in found]

    def last_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest number, or ``None``."""
        statement = select(checkpoints).order_by(checkpoints.c.number.desc()).limit(1)
        row = self._read("read the last checkpoint", lambda c: c.execute(statement).first())
        return None if row is None else _checkpoint(row._mapping)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store the checkpoint and anchor its cases to it, in one transaction.

        Raises:
            CheckpointTaken: a checkpoint with that number exists already.
        """
        values = checkpoint.model_dump(mode="json")
        values["made_at"] = checkpoint.made_at
        with (
            translated(
                "store a checkpoint",
                duplicate=lambda: CheckpointTaken(checkpoint.number),
                conflict=lambda: CheckpointTaken(checkpoint.number),
            ),
            connect(self.engine, read_only=False) as connection,
            begin(connection, write=True),
        ):
            connection.execute(insert(checkpoints).values(values))
            _anchor(connection, checkpoint)

    def checkpoints(self, *, after: int = 0, limit: int = 100) -> list[Checkpoint]:
        """Up to ``limit`` checkpoints numbered above ``after``, in number order."""
        _check_limit(limit)
        statement = (
            select(checkpoints)
            .where(checkpoints.c.number > after)
            .order_by(checkpoints.c.number)
            .limit(limit)
        )
        found = self._read("read checkpoints", lambda c: c.execute(statement).all())
        return [_checkpoint(row._mapping) for row in found]

    def indexed_columns(self, case_id: str) -> dict[str, object] | None:
        """The case's queryable columns as stored, or ``None`` for no case."""
        statement = select(*(c for c in cases.c if c.name not in _NOT_INDEXED)).where(
            cases.c.id == case_id
        )
        row = self._read("read a case's columns", lambda c: c.execute(statement).first())
        return None if row is None else dict(row._mapping)

    def signed_anchors(self, case_ids: Sequence[str]) -> dict[str, int]:
        """For each of ``case_ids`` some checkpoint signed a head of, the number of the
        latest such checkpoint, read from the checkpoints' own heads (the data their
        signatures cover), never from the anchor rows."""
        wanted = list(dict.fromkeys(case_ids))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            read = functools.partial(_signed, case_ids=chunk)
            found.update(self._read("read the checkpoints of cases", read))
        return found

    def anchor(self, case_id: str) -> int | None:
        """The number of the latest checkpoint that signed a head of the case."""
        statement = select(case_anchors.c.number).where(case_anchors.c.case_id == case_id)
        number = self._read("read a case's anchor", lambda c: c.execute(statement).scalar())
        return None if number is None else int(number)


def _signed(connection: Connection, case_ids: list[str]) -> dict[str, int]:
    if connection.dialect.name == "postgresql":
        element = func.json_array_elements(checkpoints.c.heads).table_valued("value")
        case_id: Any = element.c.value.op("->>")("case_id")
    else:
        element = func.json_each(checkpoints.c.heads).table_valued("value")
        case_id = func.json_extract(element.c.value, "$.case_id")
    statement = (
        select(case_id.label("case_id"), func.max(checkpoints.c.number).label("number"))
        .select_from(checkpoints)
        .join(element, sa_true())
        .where(case_id.in_(case_ids))
        .group_by(case_id)
    )
    return {row.case_id: int(row.number) for row in connection.execute(statement)}


def _anchor(connection: Connection, checkpoint: Checkpoint) -> None:
    ids = [head.case_id for head in checkpoint.heads]
    kept = dict(
        connection.execute(
            select(case_anchors.c.case_id, case_anchors.c.number).where(
                case_anchors.c.case_id.in_(ids)
            )
        ).all()
    )
    fresh = [h for h in checkpoint.heads if h.case_id not in kept]
    number = checkpoint.number
    later = [h for h in checkpoint.heads if kept.get(h.case_id, number) < number]
    if fresh:
        connection.execute(
            insert(case_anchors),
            [{"case_id": h.case_id, "number": checkpoint.number, "seq": h.seq} for h in fresh],
        )
    for head in later:
        connection.execute(
            update(case_anchors)
            .where(case_anchors.c.case_id == head.case_id)
            .values(number=checkpoint.number, seq=head.seq)
        )


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint.model_validate(dict(row))


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError([("limit", "must be a whole number of at least 1")])
