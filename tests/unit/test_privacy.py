"""Masked contact data hides something of every value, however short."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closedloop import Engine
from closedloop.engine.privacy import mask_email, mask_name, mask_phone
from tests.cast import CITIZEN, SUPERVISOR


@pytest.mark.parametrize(
    ("name", "shown"),
    [("李", "*"), ("X", "*"), ("李雷", "李*"), ("张三丰", "张**"), ("Jane Doe", "J*******")],
)
def test_names(name: str, shown: str) -> None:
    assert mask_name(name) == shown


@pytest.mark.parametrize(
    ("phone", "shown"),
    [
        ("13812345678", "138****5678"),
        ("+86 138 1234 5678", "861****5678"),
        ("010-8888-6666", "010****6666"),
        ("6512 3456", "******56"),
        ("1234567", "*****67"),
        ("123456", "******"),
        ("1234", "****"),
        ("110", "***"),
    ],
)
def test_phones(phone: str, shown: str) -> None:
    assert mask_phone(phone) == shown


@pytest.mark.parametrize(
    ("email", "shown"),
    [
        ("li.lei@example.org", "l***@example.org"),
        ("lil@example.org", "l***@example.org"),
        ("li@example.org", "***@example.org"),
        ("a@example.org", "***@example.org"),
    ],
)
def test_emails(email: str, shown: str) -> None:
    assert mask_email(email) == shown


@given(st.text(min_size=1, max_size=30))
def test_no_name_shows_more_than_its_first_character(name: str) -> None:
    # A name of stars ("*", "a**") masks to itself: it shows nothing more.
    shown = mask_name(name)
    assert len(shown) == len(name)
    assert shown[1:] == "*" * (len(name) - 1)
    assert shown[:1] == (name[:1] if len(name) > 1 else "*")


@given(st.from_regex(r"\+?[0-9][0-9 \-]{1,29}[0-9]", fullmatch=True))
def test_no_phone_shows_more_than_seven_digits_or_half_of_a_short_one(phone: str) -> None:
    digits = sum(c.isdigit() for c in phone)
    shown = sum(c.isdigit() for c in mask_phone(phone))
    assert shown <= 7
    assert shown <= digits // 2 if digits < 11 else shown == 7


@given(st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True))
def test_no_mailbox_is_shown_as_itself(local: str) -> None:
    assert not mask_email(f"{local}@example.org").startswith(f"{local}@")


def test_a_one_character_name_is_masked_for_a_supervisor(engine: Engine) -> None:
    contact = {"name": "李", "phone": "1234", "email": "a@example.org"}
    case = engine.report(CITIZEN, description="Lamp out", contact=contact)
    shown = engine.get(case.id, viewer=SUPERVISOR).contact
    assert shown is not None
    assert (shown.name, shown.phone, shown.email) == ("*", "****", "***@example.org")
    mine = engine.get(case.id, viewer=CITIZEN).contact
    assert mine is not None
    assert (mine.name, mine.phone, mine.email) == ("李", "1234", "a@example.org")
