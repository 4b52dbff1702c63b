"""``closedloop serve`` over a SQLite file: Open311, the API and the console answer."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from closedloop import Actor, Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from tests.http_server import ANSWERS_WITHIN
from tests.integration.cli_runs import command, environment

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_open311_the_api_and_the_console_then_stops(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    store = SQLStore(f"sqlite:///{db}")
    engine = Engine(workflows.standard(), store=store)
    case = engine.report(Actor("citizen-1"), description="Street lamp out", location="3 Oak Rd")
    store.close()
    port = free_port()
    server = subprocess.Popen(
        command("serve", "--db", db, "--port", str(port), "--api-key", "k-1"),
        env=environment(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        given_up = time.monotonic() + ANSWERS_WITHIN
        while True:  # however slowly serve starts, it answers or ends (or hangs)
            try:
                services = httpx.get(f"{base}/open311/v2/services.json", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < given_up, "serve neither answered nor ended"
                time.sleep(0.1)
        assert "01.01" in [s["service_code"] for s in services.json()]  # the demo list's
        [shown] = httpx.get(f"{base}/open311/v2/requests/{case.id}.json").json()
        assert (shown["status"], shown["address"]) == ("open", "3 Oak Rd")
        posted = httpx.post(
            f"{base}/open311/v2/requests.json",
            data={"api_key": "k-1", "service_code": "03.01", "address_string": "5 Elm St"},
        )
        assert posted.status_code == 200
        assert httpx.get(f"{base}/api/inbox").status_code == 401
        sign_in = httpx.get(f"{base}/console/")
        assert "zhou.min" in sign_in.text  # the demo district's dispatcher
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert server.returncode == 0


def test_serve_on_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "cases.db"
    SQLStore(f"sqlite:///{db}").close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run(
            command("serve", "--db", db, "--port", str(port), "--no-worker"),
            env=environment(),
            text=True,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        f"closedloop: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
