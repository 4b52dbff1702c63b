"""``closedloop outbox``: the notifications given up on, and sending them again.

``outbox dead URL`` lists the dead letters - messages that reached the attempt limit
(``dead``) or whose endpoint said it is gone (``disabled``) - oldest first, one line
each: id, status, attempts, channel, event, case and the last error. ``outbox requeue
URL ID`` (or ``--all``) puts them back in the outbox, due now with their attempts
reset, for the next worker round to send.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from closedloop.cli.database import SchemaOption, open_store
from closedloop.cli.failures import reported
from closedloop.cli.output import console
from closedloop.engine.ports import OutboxMessage
from closedloop.errors import MessageNotFound

outbox_app = typer.Typer(
    help="Look at the notifications given up on, and send them again.", no_args_is_help=True
)

EVERY = 1_000_000
"""How many dead letters ``requeue --all`` takes at once (every one, in practice)."""


def _line(message: OutboxMessage) -> str:
    error = " ".join((message.last_error or "").split())
    attempts = f"{message.attempts} {'attempt' if message.attempts == 1 else 'attempts'}"
    return (
        f"{message.id}  {message.status}  {attempts}  {message.channel}  "
        f"{message.event}  {message.case_id or '-'}  {error}"
    )


@outbox_app.command("dead")
@reported
def dead(
    url: Annotated[str, typer.Argument(help="Database URL or SQLite file path.")],
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    schema: SchemaOption = None,
) -> None:
    """List the dead letters (dead or disabled notifications), oldest first."""
    store = open_store(url, schema)
    try:
        letters = store.dead_letters(limit=limit + 1)  # one more: whether the limit cut
    finally:
        store.close()
    cut = len(letters) > limit
    letters = letters[:limit]
    out = console()
    for message in letters:
        if as_json:
            shown = message.model_dump(
                mode="json",
                include={"id", "status", "attempts", "channel", "event", "case_id",
                         "recipient", "created_at", "last_error"},
            )  # fmt: skip
            out.print(json.dumps(shown, ensure_ascii=False), markup=False)
        else:
            out.print(_line(message), markup=False)
    count = len(letters)
    said = f"{count} dead {'letter' if count == 1 else 'letters'}"
    if cut:
        console(stderr=True).print(
            f"{said} shown, the oldest; more exist (a larger --limit lists them)", markup=False
        )
    elif not as_json:
        console(stderr=True).print(said, markup=False)


@outbox_app.command("requeue")
@reported
def requeue(
    url: Annotated[str, typer.Argument(help="Database URL or SQLite file path.")],
    message_id: Annotated[
        str | None, typer.Argument(help="The dead letter's id.", show_default=False)
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Re-queue every dead or disabled notification.")
    ] = False,
    schema: SchemaOption = None,
) -> None:
    """Put a dead letter (or --all of them) back in the outbox, due now, attempts reset."""
    if (message_id is None) == (not every):  # a usage error: exit status 2
        raise typer.BadParameter(
            "give the id of one dead letter, or --all for every one, not both "
            "(closedloop outbox dead lists them)"
            if every
            else "give the id of one dead letter, or --all for every one "
            "(closedloop outbox dead lists them)",
            param_hint="'MESSAGE_ID' / '--all'",
        )
    store = open_store(url, schema)
    now = datetime.now(UTC)
    try:
        if message_id is not None:
            store.requeue(message_id, now=now)
            ids = [message_id]
        else:
            ids = []
            for message in store.dead_letters(limit=EVERY):
                try:
                    store.requeue(message.id, now=now)
                except MessageNotFound:  # another worker or operator moved it meanwhile
                    continue
                ids.append(message.id)
    finally:
        store.close()
    out = console()
    for done in ids:
        out.print(done, markup=False)
    count = len(ids)
    console(stderr=True).print(
        f"{count} {'notification' if count == 1 else 'notifications'} re-queued", markup=False
    )
