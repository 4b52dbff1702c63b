"""Email over SMTP: the :class:`SMTPNotifier` channel, standard library only.

Messages are built with :class:`email.message.EmailMessage` under the ``SMTP`` policy:
UTF-8 subjects become encoded words, UTF-8 bodies are base64, so Chinese text arrives
intact through any relay. No field can add a header: a subject's line breaks are
folded to spaces, a subject that holds RFC 2047 encoded words (``=?utf-8?q?...?=``) is
sent as exactly that text, never decoded, and an address that is not one plain
``local@domain`` is refused.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import Policy
from email.utils import formatdate
from typing import Any, ClassVar, Literal

from closedloop.engine.ports import Notification
from closedloop.errors import DeliveryFailed, ValidationError

__all__ = ["AddressBook", "SMTPNotifier", "Security"]

Security = Literal["starttls", "ssl", "none"]
AddressBook = Mapping[str, str | Iterable[str]] | Callable[[str], str | Iterable[str]]
"""Logical recipient (``unit:water``, ``role:dispatcher``) to email address(es)."""

_PLAIN_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,256}")
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_REMEMBERED = 10_000


def plain_address(text: object) -> str:
    """``text`` if it is one plain ``local@domain`` address, with nothing around it.

    Raises:
        ValueError: it is not (a display name, a list, a line break, a bracket...).
    """
    if not isinstance(text, str) or not _PLAIN_ADDRESS.fullmatch(text):
        raise ValueError("not one plain local@domain address")
    try:
        parsed = Address(addr_spec=text)
    except Exception as exc:  # the parser raises ValueError, IndexError, HeaderParseError
        raise ValueError("not one plain local@domain address") from exc
    return parsed.addr_spec


def one_line(text: str) -> str:
    """``text`` with every line break and control character turned into a space."""
    return _CONTROL.sub(" ", text)


class _LiteralSubject(BaseHeader):
    """A ``Subject`` whose value is exactly its text, and that encodes itself.

    The standard header classes decode RFC 2047 encoded words found in the text they
    are given, and on output may write the decoded content as it is, line breaks
    included: a subject ``=?utf-8?q?Leak=0D=0ABcc:_x@evil.example?=`` would go on the
    wire as ``Subject: Leak`` plus a real ``Bcc:`` header. Here nothing is decoded;
    a text that contains ``=?`` goes out as base64 encoded words of all of it, so a
    mail reader shows the characters that were written, and no header can appear.
    """

    max_count: ClassVar[Literal[1]] = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        """Keep ``value`` as it is (the header API's parse step)."""
        kwds["parse_tree"] = None
        kwds["decoded"] = value

    def fold(self, *, policy: Policy) -> str:
        """The header line(s), each within the policy's line length, ending in linesep."""
        text = str(self)
        if "=?" not in text:
            return _STANDARD_HEADERS(self.name, text).fold(policy=policy)
        words = Header(text, "utf-8", header_name=self.name).encode(linesep=policy.linesep)
        return f"{self.name}: {words}{policy.linesep}"


_STANDARD_HEADERS = HeaderRegistry()
_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("subject", _LiteralSubject)
_POLICY = SMTP_POLICY.clone(header_factory=_HEADERS)


def _as_list(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _checked_book(addresses: AddressBook) -> AddressBook:
    if callable(addresses):
        return addresses
    if not isinstance(addresses, Mapping):
        problem = (
            "must be a mapping from logical recipient to address(es), or a function "
            f"recipient -> address(es); got {type(addresses).__name__}"
        )
        raise ValidationError([("addresses", problem)], subject="SMTPNotifier addresses")
    problems: list[tuple[str, str]] = []
    for recipient, value in addresses.items():
        if not isinstance(value, str) and not (
            isinstance(value, Iterable) and all(isinstance(v, str) for v in value)
        ):
            problem = f"must be an address or a list of addresses; got {value!r}"
            problems.append((f"addresses[{recipient!r}]", problem))
            continue
        for index, text in enumerate(_as_list(value)):
            try:
                plain_address(text)
            except ValueError as exc:
                problems.append((f"addresses[{recipient!r}][{index}]", str(exc)))
    if problems:
        raise ValidationError(problems, subject="SMTPNotifier addresses")
    return {key: tuple(_as_list(value)) for key, value in addresses.items()}


def _checked_sender(sender: str) -> tuple[str, str]:
    """The ``From`` header value and the envelope sender of ``sender``."""
    problem = ValidationError(
        [("sender", "must be 'local@domain' or 'Display Name <local@domain>' on one line")]
    )
    if not isinstance(sender, str) or _CONTROL.search(sender):
        raise problem
    probe = EmailMessage(policy=SMTP_POLICY)
    try:
        probe["From"] = sender
        header = probe["From"]
        (mailbox,) = header.addresses
        envelope = plain_address(mailbox.addr_spec)
    except Exception as exc:
        raise problem from exc
    if header.defects:
        raise problem
    return str(header), envelope


class _Sent:
    """Which addresses already took each recent notification, so a retry skips them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: OrderedDict[str, set[str]] = OrderedDict()

    def pending(self, message_id: str, addresses: Iterable[str]) -> list[str]:
        with self._lock:
            done = self._done.get(message_id, set())
            return [a for a in addresses if a not in done]

    def record(self, message_id: str, addresses: Iterable[str]) -> None:
        with self._lock:
            self._done.setdefault(message_id, set()).update(addresses)
            self._done.move_to_end(message_id)
            while len(self._done) > _REMEMBERED:
                self._done.popitem(last=False)


class SMTPNotifier:
    """Sends each notification as a plain-text UTF-8 email.

    The reporter's address comes from ``notification.contact``; every other logical
    recipient is looked up in ``addresses``. With ``bcc=False`` each address gets its
    own message (``To:`` that address); with ``bcc=True`` one message goes to all of
    them as blind copies (``To: undisclosed-recipients:;``), so no recipient learns the
    others. Every message carries the notification id in ``X-Closedloop-Id``, a
    ``Message-ID`` made from it (both the same on every retry) and
    ``Auto-Submitted: auto-generated``. The subject is
    sent as exactly its text, on one line: line breaks become spaces and encoded words
    in it are never decoded, so case data in a subject cannot add a header.

    Every failure raises :class:`~closedloop.errors.DeliveryFailed`, also a server's
    permanent (5xx) refusal of a recipient and a recipient without an address: the
    outbox retries, and after its attempt limit the message waits as a dead letter
    where an operator sees it, instead of a warning vanishing. Addresses that accepted
    a message are remembered (in this process), so a retry goes only to the rest.
    Failure reasons name codes, never addresses: they are stored with the outbox row.

    Args:
        host: The SMTP server.
        port: Its port (587 for STARTTLS, 465 for SSL, 25 for a relay).
        sender: ``From``: ``hotline@city.example`` or ``市民热线 <hotline@city.example>``.
        addresses: A mapping or a callable from logical recipient to address(es).
        security: ``starttls`` (refuses to send if the server does not offer it),
            ``ssl`` (TLS from the first byte) or ``none`` (a trusted local relay).
        username: Login name, if the server needs one (not with ``security="none"``).
        password: Login password.
        timeout: Seconds allowed for each network operation.
        bcc: One blind-copy message per notification instead of one per address.
        ssl_context: TLS settings (a private CA, say); verified defaults otherwise.

    Raises:
        ValidationError: an argument is not acceptable, listed by field.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        addresses: AddressBook,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        bcc: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        problems: list[tuple[str, str]] = []
        if security not in ("starttls", "ssl", "none"):
            problems.append(("security", "must be 'starttls', 'ssl' or 'none'"))
        if username is not None and security == "none":
            problems.append(
                ("username", "a login over security='none' sends the password in clear")
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            problems.append(("timeout", f"must be a positive number of seconds, got {timeout!r}"))
        if problems:
            raise ValidationError(problems, subject="SMTPNotifier settings")
        self._from, self._envelope_sender = _checked_sender(sender)
        self._book = _checked_book(addresses)
        self._host = host
        self._port = port
        self._security = security
        self._login = (username, password or "") if username is not None else None
        self._timeout = float(timeout)
        self._bcc = bcc
        self._context = ssl_context
        self._sent = _Sent()

    def send(self, notification: Notification) -> None:
        """Email one notification to every address of its recipient.

        Raises:
            DeliveryFailed: the recipient has no usable address, the server could not
                be reached or refused, or some addresses did not accept it.
        """
        addresses = self._sent.pending(notification.id, self._addresses(notification))
        if not addresses:
            return  # every address took it on an earlier attempt
        batches = [addresses] if self._bcc else [[a] for a in addresses]
        refused: list[str] = []
        try:
            with self._connect() as smtp:
                for batch in batches:
                    refused += self._transmit(smtp, notification, batch)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._failed(notification, _describe(exc)) from exc
        if refused:
            shown = ", ".join(refused)
            reason = f"{len(refused)} of {len(addresses)} address(es) refused ({shown})"
            raise self._failed(notification, reason)

    def _transmit(
        self, smtp: smtplib.SMTP, notification: Notification, batch: list[str]
    ) -> list[str]:
        """Send one message to ``batch``; the refusal codes of the addresses that refused."""
        message = self._message(notification, None if self._bcc else batch[0])
        try:
            refusals = smtp.send_message(message, self._envelope_sender, batch)
            rejected = {address: code for address, (code, _) in refusals.items()}
        except smtplib.SMTPRecipientsRefused as exc:
            rejected = {address: code for address, (code, _) in exc.recipients.items()}
        except smtplib.SMTPDataError as exc:  # the message itself was refused, for all
            rejected = dict.fromkeys(batch, exc.smtp_code)
        self._sent.record(notification.id, [a for a in batch if a not in rejected])
        return [str(code) for code in rejected.values()]

    def _addresses(self, notification: Notification) -> list[str]:
        recipient = notification.recipient
        try:
            if recipient == "reporter":
                email = notification.contact.email if notification.contact else None
                found = [email] if email else []
            elif callable(self._book):
                found = _as_list(self._book(recipient))
            else:
                found = _as_list(self._book.get(recipient, ()))
            checked = [plain_address(text) for text in found]
        except Exception as exc:  # a host's lookup may fail any way; it stays retryable
            reason = f"the address of {recipient!r} is not usable ({type(exc).__name__})"
            raise self._failed(notification, reason) from exc
        if not checked:
            raise self._failed(notification, f"no email address for {recipient!r}")
        return list(dict.fromkeys(checked))

    def _message(self, notification: Notification, to: str | None) -> EmailMessage:
        message = EmailMessage(policy=_POLICY)
        message["From"] = self._from
        message["To"] = to if to is not None else "undisclosed-recipients:;"
        message["Subject"] = one_line(notification.subject)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{_message_id_part(notification.id)}@{self._domain}>"
        message["X-Closedloop-Id"] = _header_id(notification.id)
        message["Auto-Submitted"] = "auto-generated"
        body = notification.body
        message.set_content(body, charset="utf-8", cte=None if body.isascii() else "base64")
        return message

    @property
    def _domain(self) -> str:
        domain = self._envelope_sender.rpartition("@")[2]
        try:
            return domain.encode("idna").decode("ascii")
        except UnicodeError:
            return "closedloop.invalid"

    def _connect(self) -> smtplib.SMTP:
        context = self._context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self._security == "ssl":
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context)
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            if self._security == "starttls":
                smtp.starttls(context=context)  # SMTPNotSupportedError: never fall back
            if self._login is not None:
                smtp.login(*self._login)
        except BaseException:
            smtp.close()
            raise
        return smtp

    @staticmethod
    def _failed(notification: Notification, reason: str) -> DeliveryFailed:
        return DeliveryFailed(notification.channel, notification.id, reason)


def _header_id(message_id: str) -> str:
    """``message_id`` as it is (engine ids such as ``<case>/3/0/unit:water`` are), when
    it is 1 to 256 printable ASCII characters without spaces; otherwise a digest of it."""
    if _HEADER_SAFE.fullmatch(message_id):
        return message_id
    return "sha256-" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:40]


def _message_id_part(message_id: str) -> str:
    """The left part of ``Message-ID``: the id with every character outside RFC 5322's
    dot-atom (``:``, ``=`` ...) written as ``=XX``, so it stays the same on every retry
    and still reads as the id; a digest when the id is not printable ASCII."""
    if not _HEADER_SAFE.fullmatch(message_id):
        return _header_id(message_id)

    def kept(c: str, dots: bool) -> str:
        return c if (_ATEXT.fullmatch(c) and c != "=") or (dots and c == ".") else f"={ord(c):02X}"

    part = "".join(kept(c, True) for c in message_id)
    if _DOT_ATOM.fullmatch(part):
        return part
    return "".join(kept(c, False) for c in message_id)  # "a..b", ".a": every dot written


def _describe(exc: BaseException) -> str:
    """A reason without addresses (the server's text may echo them)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _ in exc.recipients.values()})
        return f"every address refused ({', '.join(codes)})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"the server does not support it: {exc}"
    return f"{type(exc).__name__}: {exc}"[:300]
