"""``closedloop serve``: Open311, the JSON API and the console over a database.

One process serves HTTP with uvicorn and, unless ``--no-worker`` (a separate
``closedloop worker`` runs), applies due timers and delivers notifications in a thread
beside it. The responsibility list (``--list``, with ``directory.yaml`` and
``categories.yaml`` beside it) routes dispatches, gives Open311 its services and the
console its sign-in choices; without one, the demo district's list is used, the one
``closedloop demo`` simulates, so ``closedloop demo && closedloop serve --db
closedloop-demo.db`` shows the simulated district in a browser.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from closedloop.cli.database import (
    CalendarZoneOption,
    SchemaOption,
    WorkflowOption,
    calendars_engine,
    open_store,
    workflow_of,
    zone_of,
)
from closedloop.cli.definitions import RegistryOption
from closedloop.cli.failures import fail, reported, require
from closedloop.cli.fitting import check_store
from closedloop.cli.routing import load_list
from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.model import Actor
from closedloop.engine.worker import Worker

DEMO_LIST = Path(__file__).resolve().parents[1] / "simulation" / "yunshan" / "duties.yaml"
"""The demo district's list (read as a file: serving never imports the simulation)."""


def console_actors(directory: InMemoryDirectory) -> list[tuple[Actor, str]]:
    """Whom the demo console offers: a holder of each role, a member of each unit, and
    a citizen."""
    chosen: dict[str, tuple[Actor, str]] = {}
    for unit in directory.units():
        for member in sorted(directory.members(unit.id)):
            actor = directory.actor(member)
            if actor is None:
                continue
            label = ", ".join(sorted(actor.roles)) or unit.name
            if actor.roles and not any(a.roles == actor.roles for a, _ in chosen.values()):
                chosen[actor.id] = (actor, f"{label}: {actor.id}")
            elif not actor.roles and unit.id not in {
                u for a, _ in chosen.values() for u in a.units
            }:
                chosen[actor.id] = (actor, f"{unit.name}: {actor.id}")
    citizen = Actor("citizen-demo")
    chosen[citizen.id] = (citizen, f"citizen: {citizen.id}")
    return list(chosen.values())


@reported
def serve(
    db: Annotated[str, typer.Option(help="Database URL or SQLite file path.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workflow: WorkflowOption = None,
    registry: RegistryOption = None,
    list_file: Annotated[
        Path | None,
        typer.Option("--list", help="Responsibility list (default: the demo district's)."),
    ] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Leave timers and notifications to a worker.")
    ] = False,
    timezone: CalendarZoneOption = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(envvar="CLOSEDLOOP_OPEN311_KEYS", help="An Open311 key that may POST."),
    ] = None,
    schema: SchemaOption = None,
) -> None:
    """Serve Open311, the JSON API and the dispatcher console (stop with Ctrl-C).

    Needs the ``server`` extra (``pip install 'closedloop[cli,server]'``).
    """
    require("closedloop serve", "uvicorn", "fastapi", "jinja2", "python_multipart|multipart")
    import uvicorn

    from closedloop.adapters.http import ConsoleActor, ConsoleConfig, Open311Config, create_app

    loaded = workflow_of(workflow, registry)
    duties, directory, catalogue = load_list(list_file or DEMO_LIST, None, None)
    store = open_store(db, schema)
    try:
        check_store(store, loaded)
        engine = calendars_engine(
            store,
            loaded,
            zone_of(timezone) if timezone is not None else None,
            responsibilities=duties,
            worker_id=f"serve-{socket.gethostname()}-{os.getpid()}",
        )
        people = [ConsoleActor(actor, label) for actor, label in console_actors(directory)]
        app: Any = create_app(
            engine,
            open311=Open311Config(categories=catalogue),
            api_keys=list(api_key or []),
            console=ConsoleConfig(actors=people),
        )
        listening = _listen(host, port)  # before anything starts: a port in use is one line
        running = None if no_worker else Worker(engine, interval=timedelta(seconds=5))
        if running is not None:
            threading.Thread(target=running.run, name="closedloop-worker", daemon=True).start()
        typer.echo(f"closedloop serve: http://{host}:{port}/console/ (Ctrl-C stops)", err=True)
        try:
            config = uvicorn.Config(app, log_level="warning")
            uvicorn.Server(config).run(sockets=[listening])
        except KeyboardInterrupt:
            pass  # uvicorn raises the Ctrl-C again once it has stopped, as uvicorn.run hides
        finally:
            listening.close()
            if running is not None:
                running.stop()
    finally:
        store.close()


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host`` and ``port``, or the one-line error (exit 1) saying
    why not: the port is in use, the address is not this machine's, ..."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    return listening
