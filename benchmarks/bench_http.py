"""The front door beside a bare FastAPI endpoint doing the same store write, same run.

Both applications are served by uvicorn on 127.0.0.1 (each on its own port, in threads
of this process) over one SQLite file, and driven by an httpx client pool (threads
sharing one ``httpx.Client``).

* **Open311 POST**: ``POST /open311/v2/requests.json`` (form parsing, the api_key,
  the service code, the location and contact fields, the JSON document), beside a bare
  endpoint that reads the same form and calls ``engine.report`` with the same fields.
* **GET inbox**: ``GET /api/inbox`` as a dispatcher (the actor from a header, the
  named response model), beside a bare endpoint returning
  ``engine.inbox(actor).to_json()``.

A ratio is the front door's time over the bare endpoint's for the same requests
(median of the per-repeat ratios); the goal is the Open311 POST within 2x of the bare
endpoint. p95 latencies are shown for information.

Run it with ``python benchmarks/bench_http.py [--requests N] [--repeats R] [--pool P]``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from table import Row, median_ratio, print_table

from closedloop import Actor, CategoryCatalog, Engine, workflows
from closedloop.adapters.http import Open311Config, create_app
from closedloop.adapters.sqlalchemy import SQLStore

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
FORM = {
    "api_key": KEY,
    "service_code": "01.01",
    "lat": "30.25",
    "long": "120.16",
    "address_string": "1 School Road",
    "description": "Manhole cover missing by the school gate",
    "email": "li.lei@example.org",
    "phone": "13812345678",
}
DISPATCHER = Actor("disp-1", roles=frozenset({"dispatcher"}))


def who(request: Any) -> Actor | None:
    return DISPATCHER if request.headers.get("x-actor") == DISPATCHER.id else None


def bare_app(engine: Engine) -> FastAPI:
    """The same work with nothing around it."""
    app = FastAPI()

    @app.post("/report")
    async def report(request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))

        def write() -> str:
            case = engine.report(
                Actor(f"open311:bench:email:{form['email']}"),
                description=form["description"],
                location={
                    "address": form["address_string"],
                    "lat": float(form["lat"]),
                    "long": float(form["long"]),
                },
                category=form["service_code"],
                channel="open311",
                contact={"email": form["email"], "phone": form["phone"]},
            )
            return case.id

        from starlette.concurrency import run_in_threadpool

        return JSONResponse([{"service_request_id": await run_in_threadpool(write)}])

    @app.get("/inbox")
    def inbox() -> JSONResponse:
        return JSONResponse(engine.inbox(DISPATCHER).to_json())

    return app


@contextmanager
def serving(app: Any) -> Iterator[str]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def drive(
    pool: ThreadPoolExecutor, count: int, send: Callable[[], httpx.Response]
) -> tuple[float, list[float]]:
    """Seconds for ``count`` requests through the pool, and each one's latency."""

    def one(_: int) -> float:
        start = time.perf_counter()
        answer = send()
        assert answer.status_code == 200, answer.text
        return time.perf_counter() - start

    start = time.perf_counter()
    latencies = list(pool.map(one, range(count)))
    return time.perf_counter() - start, latencies


def p95(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pool", type=int, default=4)
    options = parser.parse_args()
    categories = CategoryCatalog.from_yaml(ROOT / "examples" / "district" / "categories.yaml")
    with tempfile.TemporaryDirectory() as folder:
        store = SQLStore(f"sqlite:///{Path(folder) / 'bench.db'}", synchronous="NORMAL")
        engine = Engine(workflows.standard(), store=store)
        front = create_app(
            engine,
            open311=Open311Config(categories=categories),
            actor_from_request=who,
            api_keys={KEY: "bench"},
        )
        with (
            serving(front) as ours,
            serving(bare_app(engine)) as bare,
            httpx.Client(limits=httpx.Limits(max_connections=options.pool)) as http,
            ThreadPoolExecutor(options.pool) as pool,
        ):
            rows = measure(options, pool, http, ours, bare)
        store.close()
    notes = [
        f"{options.requests} requests per side per repeat, {options.repeats} repeats, "
        f"a pool of {options.pool} client threads; uvicorn in threads of this process",
        "ratio: the front door's time over the bare endpoint's (lower is better)",
    ]
    print_table("HTTP front door", rows, notes)


def measure(
    options: argparse.Namespace, pool: ThreadPoolExecutor, http: httpx.Client, ours: str, bare: str
) -> list[Row]:
    posts = (
        lambda: http.post(f"{ours}/open311/v2/requests.json", data=FORM),
        lambda: http.post(f"{bare}/report", data=FORM),
    )
    inboxes = (
        lambda: http.get(f"{ours}/api/inbox", headers={"x-actor": DISPATCHER.id}),
        lambda: http.get(f"{bare}/inbox"),
    )
    rows = []
    for name, (mine, theirs) in (("Open311 POST requests", posts), ("GET inbox", inboxes)):
        ours_s, bare_s, ours_lat, bare_lat = [], [], [], []
        for n in range(options.repeats):
            order = [(mine, ours_s, ours_lat), (theirs, bare_s, bare_lat)]
            for send, seconds, latencies in order[:: 1 if n % 2 == 0 else -1]:
                took, each = drive(pool, options.requests, send)
                seconds.append(took)
                latencies.extend(each)
        count = options.requests
        rows.append(
            Row(
                f"{name} vs bare FastAPI, requests/s",
                f"{count / statistics.median(bare_s):,.0f}/s",
                f"{count / statistics.median(ours_s):,.0f}/s",
                median_ratio(ours_s, bare_s),
                goal=2.0 if name.startswith("Open311") else None,
                most=True,
            )
        )
        rows.append(
            Row(
                f"{name}, p95 ms",
                f"{p95(bare_lat):.1f}",
                f"{p95(ours_lat):.1f}",
                p95(ours_lat) / p95(bare_lat),
            )
        )
    return rows


if __name__ == "__main__":
    main()
