"""Masking of a reporter's personal data for viewers not entitled to see it in full.

Every masker hides something of every value: a value too short to keep a part of it
hidden is masked whole, so a one-character name or a one-letter mailbox never shows
as itself.
"""

from __future__ import annotations

from closedloop.engine.model import ReporterContact, assembled

MIN_PHONE_DIGITS_SHOWN = 7
"""Below this many digits a phone number is masked whole (its last two would say too much)."""
MIN_LOCAL_PART_SHOWN = 3
"""Below this many characters an email's local part is masked whole."""


def mask_phone(phone: str) -> str:
    """``13812345678`` → ``138****5678``; ``6512 3456`` → ``******56``; ``12345`` → ``*****``.

    Eleven digits or more keep the first three and the last four (the usual display of a
    mobile number); seven to ten keep the last two; fewer keep nothing.
    """
    digits = "".join(filter(str.isdigit, phone))
    if len(digits) >= 11:
        return digits[:3] + "****" + digits[-4:]
    if len(digits) >= MIN_PHONE_DIGITS_SHOWN:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits)


def mask_name(name: str) -> str:
    """``张三丰`` → ``张**``; ``Jane Doe`` → ``J*******``; a one-character ``李`` → ``*``."""
    if len(name) <= 1:
        return "*" * len(name)
    return name[:1] + "*" * (len(name) - 1)


def mask_email(email: str) -> str:
    """``li.lei@example.org`` → ``l***@example.org``; ``li@example.org`` → ``***@example.org``."""
    local, _, domain = email.partition("@")
    shown = local[:1] if len(local) >= MIN_LOCAL_PART_SHOWN else ""
    return f"{shown}***@{domain}"


def masked(contact: ReporterContact) -> ReporterContact:
    """The contact with every field masked (each field counted as given, as
    ``ReporterContact(name=..., phone=..., email=...)`` counts them): made without
    validating, from the text of a contact already validated, as a page makes one per
    case."""
    fields = contact.__dict__
    name, phone, email = fields["name"], fields["phone"], fields["email"]
    return assembled(
        ReporterContact,
        {
            "name": mask_name(name) if name else None,
            "phone": mask_phone(phone) if phone else None,
            "email": mask_email(email) if email else None,
        },
    )
