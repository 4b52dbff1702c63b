"""Masking of a reporter's personal data for viewers not entitled to see it in full."""

from __future__ import annotations

from closedloop.engine.model import ReporterContact


def mask_phone(phone: str) -> str:
    """``13812345678`` → ``138****5678``; short numbers keep only their last two digits."""
    digits = [c for c in phone if c.isdigit()]
    if len(digits) >= 11:
        return "".join(digits[:3]) + "****" + "".join(digits[-4:])
    if len(digits) >= 4:
        return "*" * (len(digits) - 2) + "".join(digits[-2:])
    return "*" * len(digits)


def mask_name(name: str) -> str:
    """``张三丰`` → ``张**``; ``Jane Doe`` → ``J*******``."""
    return name[:1] + "*" * (len(name) - 1) if name else name


def mask_email(email: str) -> str:
    """``li.lei@example.org`` → ``l***@example.org``."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def masked(contact: ReporterContact) -> ReporterContact:
    """The contact with every field masked."""
    return ReporterContact(
        name=mask_name(contact.name) if contact.name else None,
        phone=mask_phone(contact.phone) if contact.phone else None,
        email=mask_email(contact.email) if contact.email else None,
    )
