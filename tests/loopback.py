"""Real servers on 127.0.0.1 for channel tests: an HTTP receiver and an SMTP receiver;
and a TCP relay that can stop answering, as a hung database server does.

Each runs in threads of the test process, binds port 0 (the kernel picks a free port)
and records what it received, so a test asserts on what actually crossed a socket.
"""

from __future__ import annotations

import contextlib
import email
import socket
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

HANG = "hang"
"""An HTTP answer: say nothing until the client gives up."""


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HTTPReceiver:
    """An HTTP server answering each request with the next scripted answer, then 200.

    An answer is a status code, ``(status, {header: value})``, or :data:`HANG`.
    """

    def __init__(self, answers: Iterable[Any] = (), *, hang_seconds: float = 5.0) -> None:
        self.requests: list[ReceivedRequest] = []
        self.answers: deque[Any] = deque(answers)
        self.hang_seconds = hang_seconds
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def script(self, *answers: Any) -> None:
        with self._lock:
            self.answers.extend(answers)

    def record(self, request: ReceivedRequest) -> Any:
        with self._lock:
            self.requests.append(request)
            return self.answers.popleft() if self.answers else 200

    def close(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(receiver: HTTPReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = receiver.record(ReceivedRequest(self.command, self.path, headers, body))
            if answer == HANG:
                receiver.released.wait(receiver.hang_seconds)
                answer = 200
            status, extra = answer if isinstance(answer, tuple) else (answer, {})
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        do_POST = do_GET = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    """aiosmtpd calls the ``handle_<VERB>`` hooks by name."""

    def __init__(self, receiver: SMTPReceiver) -> None:
        self.receiver = receiver

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.receiver.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        self.receiver.mails.append(mail)
        return "250 Message accepted for delivery"


class _LoopbackController(Controller):
    """aiosmtpd's threaded controller, on the port the kernel picked."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SMTPReceiver:
    """An SMTP server (aiosmtpd) that keeps every message and refuses listed addresses."""

    def __init__(self) -> None:
        self.mails: list[ReceivedMail] = []
        self.refuse: set[str] = set()
        self._controller = _LoopbackController(
            _Handler(self), hostname="127.0.0.1", port=0, server_hostname="localhost"
        )
        self._controller.start()

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def close(self) -> None:
        self._controller.stop()


class FreezingRelay:
    """A TCP relay on 127.0.0.1 to ``host:port`` that can :meth:`freeze`: from then on it
    keeps every connection open and passes nothing on either way, as a server that hangs
    (or a network path that drops packets) does. ``stuck`` is set once a client waits for
    an answer that will never come: it asked after the freeze, or it asked before and the
    answer arrived after (the client, mid-statement, then never asks again)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.frozen = threading.Event()
        self.stuck = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self._target)
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.frozen.is_set():
                # A question, or the answer to one asked before the freeze: either way
                # the client now waits for ever.
                self.stuck.set()
                continue  # swallowed
            try:
                sink.sendall(data)
            except OSError:
                return
