"""SMTPNotifier against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from closedloop import Engine, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.smtp import SMTPNotifier, one_line
from closedloop.engine.model import ReporterContact
from closedloop.errors import DeliveryFailed, ValidationError
from closedloop.testing.notifiers import sample_notification
from tests.cast import CITIZEN, DISPATCHER
from tests.loopback import ReceivedMail, SMTPReceiver

UNIT = ["ops@water.example", "chief@water.example"]
BOOK = {"unit:water-company": UNIT, "role:dispatcher": "dispatch@city.example"}
SENDER = "市民热线 <hotline@city.example>"
CATEGORY = "供水 › 管网漏损"


@pytest.fixture
def receiver() -> Iterator[SMTPReceiver]:
    server = SMTPReceiver()
    yield server
    server.close()


def smtp(receiver: SMTPReceiver, **changes: Any) -> SMTPNotifier:
    options: dict[str, Any] = {
        "sender": SENDER,
        "addresses": BOOK,
        "security": "none",
        "timeout": 5.0,
        **changes,
    }
    return SMTPNotifier("127.0.0.1", receiver.port, **options)


def test_a_dispatched_case_arrives_with_its_chinese_category_intact(
    receiver: SMTPReceiver,
) -> None:
    sent = sample_notification(
        id="ntf-dispatch-1",
        subject=f"新派单：CL-2026-0001（{CATEGORY}）请于 2 小时内签收",
        body=f"案件 CL-2026-0001 已派至贵单位。\n类别：{CATEGORY}\n地址：人民路 12 号\n",
    )
    smtp(receiver).send(sent)

    assert [m.rcpt_tos for m in receiver.mails] == [[a] for a in UNIT]  # one message each
    for mail, address in zip(receiver.mails, UNIT, strict=True):
        message = mail.message
        assert message["To"] == address
        assert message["Subject"] == sent.subject
        assert f"类别：{CATEGORY}" in message.get_content()
        assert message.get_content_charset() == "utf-8"
        assert message["From"].addresses[0].display_name == "市民热线"
        assert mail.mail_from == "hotline@city.example"
        assert message["Message-ID"] == "<ntf-dispatch-1@city.example>"
        assert message["X-Closedloop-Id"] == "ntf-dispatch-1"
        assert message["Auto-Submitted"] == "auto-generated"
        assert mail.raw.isascii()  # encoded words and base64: safe through any relay


def test_an_engine_id_arrives_as_is_in_x_closedloop_id_and_readable_in_message_id(
    receiver: SMTPReceiver,
) -> None:
    engine_id = "672f0a9c41d2/3/0/unit:water"  # the case, the event, the rule, the recipient
    smtp(receiver).send(sample_notification(id=engine_id, recipient="role:dispatcher"))
    (mail,) = receiver.mails
    assert mail.message["X-Closedloop-Id"] == engine_id  # a receiver matches the outbox id
    assert mail.message["Message-ID"] == "<672f0a9c41d2/3/0/unit=3Awater@city.example>"
    assert not mail.message["Message-ID"].defects  # a valid RFC 5322 msg-id


def test_a_long_chinese_subject_is_folded_and_decodes_intact(receiver: SMTPReceiver) -> None:
    subject = "【红牌预警】" + "人民路供水管道漏水，" * 12
    smtp(receiver).send(sample_notification(recipient="role:dispatcher", subject=subject))
    (mail,) = receiver.mails
    assert max(len(line) for line in mail.raw.split(b"\r\n")) <= 78
    assert mail.message["Subject"] == subject


HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "X-Closedloop-Id",
    "Auto-Submitted",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
]
"""The headers every message carries, in order, each once."""


def header_lines(mail: ReceivedMail) -> list[bytes]:
    """The raw header block as received, one entry per line (continuations included)."""
    return mail.raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


SMUGGLED = base64.b64encode(b"x\r\nBcc: evil@evil.example").decode()


ENCODED_INJECTIONS = [
    "=?utf-8?q?Pipe_burst=0D=0ABcc:_evil@evil.example?=",
    "=?UTF-8?Q?Pipe_burst=0ACc:_evil@evil.example?=",
    f"漏水 =?utf-8?b?{SMUGGLED}?= 人民路",
    "=?iso-8859-1?q?a=0D=0AX-Injected:_yes?= =?utf-8?q?=0D=0ABcc:_evil@evil.example?=",
    "=?utf-8?q?=0D=0A=0D=0Aforged_body?=",
    "Leak =?utf-8?q?=0D=0ABcc:_evil@evil.example?=\r\nCc: evil@evil.example",
    "=?utf-8?q?Pipe_burst=0D=0ABcc:_evil@evil.example?=" + " 管网漏损" * 12,
]


@pytest.mark.parametrize("subject", ENCODED_INJECTIONS)
def test_encoded_line_breaks_in_a_subject_cannot_add_a_header(
    receiver: SMTPReceiver, subject: str
) -> None:
    smtp(receiver).send(sample_notification(recipient="role:dispatcher", subject=subject))
    (mail,) = receiver.mails
    assert mail.rcpt_tos == ["dispatch@city.example"]
    assert list(mail.message.keys()) == HEADERS
    starts = [line.split(b":")[0].lower() for line in header_lines(mail) if line[:1] != b" "]
    assert starts == [name.lower().encode() for name in HEADERS]
    assert b"evil.example" not in b"\r\n".join(header_lines(mail))  # only inside base64
    assert max(len(line) for line in header_lines(mail)) <= 78
    # Kept, safely: a mail reader shows the characters that were written, on one line.
    assert mail.message["Subject"] == one_line(subject)


def test_a_host_template_with_the_description_in_the_subject_adds_no_header(
    receiver: SMTPReceiver,
) -> None:
    data = yaml.safe_load(workflows.standard_yaml())
    data["templates"]["assigned"]["subject"] = "【派单】${description}"
    workflow = Workflow.from_dict(data)
    notifier = smtp(receiver, addresses={"unit:water": "ops@water.example"})
    engine = Engine(workflow, store=InMemoryStore(), notifier=notifier)
    description = "=?utf-8?q?Pipe_burst=0D=0ABcc:_evil@evil.example?="
    case = engine.report(CITIZEN, description=description, location="人民路 12 号")
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")

    assert engine.deliver().delivered == 1
    (mail,) = receiver.mails
    assert mail.rcpt_tos == ["ops@water.example"]
    assert list(mail.message.keys()) == HEADERS
    assert mail.message["Subject"] == f"【派单】{description}"


def test_line_breaks_in_subject_or_description_cannot_add_a_header(
    receiver: SMTPReceiver,
) -> None:
    hostile = "漏水\r\nBcc: victim@evil.example\r\nX-Injected: yes\r\n\r\n伪造正文"
    smtp(receiver).send(
        sample_notification(
            recipient="role:dispatcher",
            subject=f"新派单：{hostile}",
            body=f"描述：{hostile}\n.\nQUIT\n",
        )
    )
    (mail,) = receiver.mails
    message = mail.message
    assert mail.rcpt_tos == ["dispatch@city.example"]
    assert set(message.keys()) == {
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "X-Closedloop-Id",
        "Auto-Submitted",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    }
    assert "\n" not in message["Subject"]
    assert "Bcc: victim@evil.example" in message["Subject"]  # kept as text, on one line
    text = message.get_content().replace("\r\n", "\n")
    assert text == f"描述：{hostile}\n.\nQUIT\n".replace("\r\n", "\n")  # all of it, as body


@pytest.mark.parametrize(
    "email",
    [
        "zhang@example.org\r\nBcc: victim@evil.example",
        "zhang@example.org, victim@evil.example",
        "张三 <zhang@example.org>",
        "zhang@example.org\n",
        "not an address",
    ],
)
def test_a_reporter_address_that_is_not_one_plain_address_is_refused(
    receiver: SMTPReceiver, email: str
) -> None:
    sent = sample_notification(recipient="reporter", contact=ReporterContact(email=email))
    with pytest.raises(DeliveryFailed, match="not usable") as raised:
        smtp(receiver).send(sent)
    assert "example.org" not in str(raised.value)  # reasons are stored: no contact data
    assert receiver.mails == []


def test_the_reporter_is_written_to_at_the_contact_address(receiver: SMTPReceiver) -> None:
    contact = ReporterContact(name="张三", email="zhang@example.org")
    smtp(receiver).send(sample_notification(recipient="reporter", contact=contact))
    assert [m.rcpt_tos for m in receiver.mails] == [["zhang@example.org"]]


def test_bcc_sends_one_message_that_reveals_no_recipient(receiver: SMTPReceiver) -> None:
    smtp(receiver, bcc=True).send(sample_notification())
    (mail,) = receiver.mails
    assert mail.rcpt_tos == UNIT
    assert mail.message["To"] == "undisclosed-recipients:;"
    assert "Bcc" not in mail.message
    assert not any(address.encode() in mail.raw for address in UNIT)


def test_a_refused_address_fails_and_the_retry_goes_only_to_it(receiver: SMTPReceiver) -> None:
    notifier = smtp(receiver)
    receiver.refuse = {"chief@water.example"}
    with pytest.raises(DeliveryFailed, match=r"1 of 2 address\(es\) refused \(550\)") as raised:
        notifier.send(sample_notification(attempt=1))
    assert "chief" not in raised.value.reason
    receiver.refuse = set()
    notifier.send(sample_notification(attempt=2))
    assert [m.rcpt_tos for m in receiver.mails] == [["ops@water.example"], ["chief@water.example"]]


def test_a_recipient_without_an_address_is_a_retryable_failure(receiver: SMTPReceiver) -> None:
    with pytest.raises(DeliveryFailed, match="no email address for 'unit:nobody'"):
        smtp(receiver).send(sample_notification(recipient="unit:nobody"))


def test_addresses_may_come_from_a_host_function(receiver: SMTPReceiver) -> None:
    def lookup(recipient: str) -> list[str]:
        if recipient == "unit:broken":
            raise KeyError(recipient)
        return [f"{recipient.partition(':')[2]}@units.example"]

    notifier = smtp(receiver, addresses=lookup)
    notifier.send(sample_notification(recipient="unit:roads"))
    assert receiver.mails[0].rcpt_tos == ["roads@units.example"]
    with pytest.raises(DeliveryFailed, match="KeyError"):
        notifier.send(sample_notification(recipient="unit:broken"))


def test_starttls_is_never_skipped_when_the_server_lacks_it(receiver: SMTPReceiver) -> None:
    with pytest.raises(DeliveryFailed, match="STARTTLS"):
        smtp(receiver, security="starttls").send(sample_notification())
    assert receiver.mails == []


def test_a_server_that_is_down_is_a_retryable_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notifier = SMTPNotifier("127.0.0.1", port, sender=SENDER, addresses=BOOK, security="none")
    with pytest.raises(DeliveryFailed, match="ConnectionRefused"):
        notifier.send(sample_notification())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sender": "hotline@city.example\r\nBcc: victim@evil.example"}, "sender"),
        ({"sender": "a@city.example, b@city.example"}, "sender"),
        ({"addresses": {"unit:x": "ops@x.example\nBcc: victim@evil.example"}}, "addresses"),
        ({"addresses": {"unit:x": ["Ops <ops@x.example>"]}}, "addresses"),
        ({"security": "tls"}, "security"),
        ({"username": "hotline", "password": "secret"}, "username"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"addresses": 42}, "addresses"),
        ({"addresses": {"unit:x": 7}}, "addresses['unit:x']"),
    ],
)
def test_unsafe_settings_are_refused(changes: dict[str, Any], field: str) -> None:
    options: dict[str, Any] = {"sender": SENDER, "addresses": BOOK, "security": "none"}
    with pytest.raises(ValidationError) as raised:
        SMTPNotifier("127.0.0.1", 25, **{**options, **changes})
    assert any(path.startswith(field) for path in raised.value.fields)
