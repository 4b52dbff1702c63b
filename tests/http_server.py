"""An ASGI application served by uvicorn on 127.0.0.1, in a thread of the test process.

The socket is bound before the server starts (port 0: the kernel picks a free port),
so a test's first request never races the server's start. Tests talk to it with
``timeout=ANSWERS_WITHIN``: the server runs in the test's own process and answers,
however long a loaded machine takes to get round to it; only a server that hangs takes
that long, and the test then fails instead of hanging the run.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ANSWERS_WITHIN = 120.0
"""Seconds a test waits for an answer of its own server (or a program it started to
start): far beyond a loaded machine's slowest, reached only by one that hangs."""


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` while the block runs; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def from_headers(request: Any) -> Any:
    """The test hosts' login: the actor named by ``X-Actor``, with the comma-separated
    roles of ``X-Roles`` and units of ``X-Units``; ``None`` without ``X-Actor``."""
    from closedloop import Actor

    who = request.headers.get("x-actor")
    if not who:
        return None

    def names(header: str) -> frozenset[str]:
        return frozenset(p.strip() for p in request.headers.get(header, "").split(",") if p)

    return Actor(who, roles=names("x-roles"), units=names("x-units"))
