"""What users submit, checked before anything is written.

Text is normalised to NFC; control characters other than newline and tab, lone
surrogates and bidirectional override/isolate characters are refused; lengths and
payload size and depth are bounded. Codes, identifiers, phone numbers and email
addresses are matched whole: whitespace or a line break before or after them is
refused, not trimmed (``"water\n"`` is not the unit ``water``). Every refusal is a
:class:`~closedloop.errors.ValidationError` naming the field.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from closedloop.engine.clock import utc
from closedloop.engine.definition import FieldSpec, TransitionSpec
from closedloop.engine.hierarchy import CODE_RULE, closest, is_code
from closedloop.engine.model import JSON, Actor, Location, MediaRef, ReporterContact, printable
from closedloop.errors import NaiveDatetime, UnknownCode, ValidationError

MAX_DESCRIPTION = 4000
"""Open311's limit for a report's description, in characters."""
MAX_PAYLOAD_BYTES = 16_384
MAX_PAYLOAD_DEPTH = 4
MAX_CODES = 50
MAX_MEDIA = 20
"""How many media references one report or command may carry."""
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_URL = re.compile(r"https?://[^\s]{1,2000}")

_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_ACTOR_ID = 200
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{1,29}[0-9]")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")
_PADDED = "begins or ends with whitespace or a line break"

Errors = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class NewReport:
    """A checked report, ready to become a case."""

    case_id: str
    reporter: Actor
    description: str
    location: Location
    category: str | None
    channel: str
    media: tuple[MediaRef, ...] = ()


def report(
    case_id: str,
    reporter: Any,
    description: Any,
    location_: Any,
    category: Any,
    channel: Any,
    contact_: Any,
    media_: Any = None,
) -> tuple[NewReport, ReporterContact | None]:
    """A checked report and its reporter's contact data.

    Raises:
        ValidationError: every field that is missing or malformed.
    """
    if not isinstance(reporter, Actor):
        raise ValidationError([("reporter", "must be an Actor")], subject="report")
    errors: Errors = []
    problem = actor_id_problem(reporter.id)
    if problem:
        errors.append(("reporter.id", problem))
    clean = text(description, "description", errors, max_length=MAX_DESCRIPTION, multiline=True)
    if not errors and not clean.strip():
        errors.append(("description", "must not be empty"))
    refs = media(media_, "media", errors)
    checked = NewReport(
        case_id=case_id,
        reporter=reporter,
        description=clean,
        location=location(location_, errors),
        category=optional_code(category, "category", errors),
        channel=code(channel, "channel", errors),
        media=tuple(MediaRef(**ref) for ref in refs),
    )
    checked_contact = contact(contact_, errors)
    if errors:
        raise ValidationError(errors, subject="report")
    return checked, checked_contact


def known_codes(
    codes: Mapping[str, str | None],
    *,
    categories: Collection[str] | None,
    areas: Collection[str] | None,
    subject: str,
) -> None:
    """Refuse category and area codes the catalogue or directory does not list.

    ``codes`` maps a field path to its code; a path ending in ``category`` is looked
    up in ``categories``, any other in ``areas``. A check without its list (no
    catalogue, no directory) passes, and so does ``None``.

    Raises:
        UnknownCode: a code is not listed; it names the field and the closest codes.
    """
    unknown: list[tuple[str, str, list[str]]] = []
    for field, value in codes.items():
        known = categories if field.endswith("category") else areas
        if value is None or known is None or value in known:
            continue
        unknown.append((field, value, closest(value, known)))
    if unknown:
        raise UnknownCode(unknown, subject=subject)


def text(value: Any, field: str, errors: Errors, *, max_length: int, multiline: bool) -> str:
    """``value`` as clean NFC text; problems are added to ``errors``."""
    if not isinstance(value, str):
        errors.append((field, f"must be text, got {type(value).__name__}"))
        return ""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        errors.append((field, "contains a lone surrogate; text must be valid Unicode"))
        return ""
    clean = unicodedata.normalize("NFC", value)
    allowed = "\n\t" if multiline else ""
    for char in clean:
        if unicodedata.category(char) == "Cc" and char not in allowed:
            errors.append((field, f"contains control character U+{ord(char):04X}; not allowed"))
            return ""
        if char in _BIDI_CONTROLS:
            errors.append((field, f"contains bidirectional control U+{ord(char):04X}"))
            return ""
    if len(clean) > max_length:
        errors.append((field, f"is {len(clean)} characters long; at most {max_length} allowed"))
    return clean


def actor_id_problem(value: object) -> str | None:
    """Why ``value`` cannot be an actor's id, or ``None`` when it can.

    An id is 1 to 200 printable characters of valid Unicode, with no whitespace at
    either end: ``"op-07 "`` would be another actor than ``"op-07"`` to every check
    that compares ids, and nobody could tell them apart on a screen.
    """
    if not isinstance(value, str) or not printable(value, MAX_ACTOR_ID):
        return f"must be 1 to {MAX_ACTOR_ID} printable characters of valid Unicode"
    # The id itself stays out of the message: a badly chosen one may be personal data.
    return _PADDED if value != value.strip() else None


def code(value: Any, field: str, errors: Errors) -> str:
    """``value`` as a short identifier (a category code, a unit id, a channel)."""
    if isinstance(value, str) and value != value.strip():
        errors.append((field, f"{_show(value)} {_PADDED}; a code is matched exactly"))
        return ""
    if not isinstance(value, str) or not is_code(value):
        errors.append(
            (field, f"{_show(value)} is not a code; use {CODE_RULE} (at most 128 characters)")
        )
        return ""
    return value


def optional_code(value: Any, field: str, errors: Errors) -> str | None:
    """Like :func:`code`, but ``None`` passes."""
    return None if value is None else code(value, field, errors)


def location(value: Any, errors: Errors) -> Location:
    """A :class:`Location` from a Location, an address string, a mapping or ``None``."""
    if value is None:
        return Location()
    if isinstance(value, str):
        value = {"address": value}
    if isinstance(value, Location):
        value = value.model_dump()
    if not isinstance(value, Mapping):
        errors.append(
            ("location", f"must be an address, a mapping or a Location, got {_show(value)}")
        )
        return Location()
    data = dict(value)
    unknown = {str(key) for key in data} - {"address", "area", "lat", "long"}
    if unknown or not all(isinstance(key, str) for key in data):
        errors.append(
            ("location", f"unknown fields {sorted(unknown)}; allowed: address, area, lat, long")
        )
        return Location()
    if data.get("address") is not None:
        data["address"] = text(
            data["address"], "location.address", errors, max_length=500, multiline=False
        )
    if data.get("area") is not None:
        data["area"] = code(data["area"], "location.area", errors)
    for axis, limit in (("lat", 90), ("long", 180)):
        number = data.get(axis)
        if number is not None and (_not_number(number) or abs(number) > limit):
            errors.append((f"location.{axis}", f"must be a number between -{limit} and {limit}"))
    if errors:
        return Location()
    return Location(**{k: data.get(k) for k in ("address", "area", "lat", "long")})


def contact(value: Any, errors: Errors) -> ReporterContact | None:
    """A reporter's contact data, checked field by field."""
    if value is None:
        return None
    if isinstance(value, ReporterContact):
        value = value.model_dump()
    if not isinstance(value, Mapping) or set(value) - {"name", "phone", "email"}:
        errors.append(("contact", "must have only the fields name, phone, email"))
        return None
    name, phone, email = value.get("name"), value.get("phone"), value.get("email")
    if name is not None:
        name = text(name, "contact.name", errors, max_length=100, multiline=False)
    for field, given, pattern, shape in (
        ("phone", phone, _PHONE, "must be digits, spaces or '-', optionally after '+'"),
        ("email", email, _EMAIL, "must be an address like name@example.org"),
    ):
        if given is None:
            continue
        if isinstance(given, str) and given != given.strip():
            errors.append((f"contact.{field}", f"{_PADDED}; give the {field} alone"))
        elif not isinstance(given, str) or not pattern.fullmatch(given):
            errors.append((f"contact.{field}", shape))
    return None if errors else ReporterContact(name=name, phone=phone, email=email)


def media(value: Any, field: str, errors: Errors) -> list[dict[str, str]]:
    """``value`` as a list of media references (``None`` is none), each a mapping with
    a ``url`` (http or https) or a storage ``key``, a ``content_type`` such as
    ``image/jpeg`` and the ``sha256`` of the bytes in lowercase hex."""
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > MAX_MEDIA:
        errors.append((field, f"must be a list of at most {MAX_MEDIA} media references"))
        return []
    refs = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if isinstance(item, MediaRef):
            item = item.model_dump(exclude_none=True)
        if not isinstance(item, Mapping) or set(item) - {"url", "key", "content_type", "sha256"}:
            errors.append((where, "must have only the fields url or key, content_type, sha256"))
            continue
        ref = _media_ref(item, where, errors)
        if ref is not None:
            refs.append(ref)
    return refs


def _media_ref(item: Mapping[str, Any], where: str, errors: Errors) -> dict[str, str] | None:
    found = len(errors)
    url, key = item.get("url"), item.get("key")
    if (url is None) == (key is None):
        errors.append((where, "give either a url or a storage key"))
    elif url is not None and not (isinstance(url, str) and _URL.fullmatch(url)):
        errors.append((f"{where}.url", "must be an http or https URL without whitespace"))
    elif key is not None and (
        not printable(key, 500) or not isinstance(key, str) or key != key.strip()
    ):
        errors.append((f"{where}.key", f"must be 1 to 500 printable characters, {_PADDED} not"))
    kind, digest = item.get("content_type"), item.get("sha256")
    if not isinstance(kind, str) or not _CONTENT_TYPE.fullmatch(kind):
        errors.append((f"{where}.content_type", "must be a lowercase media type like image/jpeg"))
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        errors.append((f"{where}.sha256", "must be 64 lowercase hexadecimal digits"))
    if len(errors) > found:
        return None
    ref = {"content_type": str(kind), "sha256": str(digest)}
    ref.update({"url": str(url)} if url is not None else {"key": str(key)})
    return ref


def unknown_fields(transition: TransitionSpec, names: Iterable[str]) -> Errors:
    """One error for each of ``names`` that is not a field of ``transition``, listing
    the fields it has."""
    unknown = set(names).difference(transition.fields)
    if not unknown:
        return []
    allowed = ", ".join(sorted(transition.fields)) or "none"
    return [
        (name, f"is not a field of {transition.name!r}; fields: {allowed}")
        for name in sorted(unknown)
    ]


def payload(
    transition: TransitionSpec, raw: Mapping[str, Any], *, channel: str | None = None
) -> dict[str, JSON]:
    """The payload of ``transition``, checked against its declared fields; a field
    required on ``channel`` (the case's) is required.

    Raises:
        ValidationError: unknown, missing or malformed fields, all listed.
    """
    errors: Errors = []
    _check_shape(raw, errors)
    if errors:
        raise ValidationError(errors, subject=f"payload of {transition.name!r}")
    errors += unknown_fields(transition, raw)
    result: dict[str, JSON] = {}
    for name, spec in transition.fields.items():
        if raw.get(name) is None or (spec.type == "media" and raw.get(name) == []):
            if spec.required or (channel is not None and channel in spec.required_channels):
                errors.append((name, "is required"))
            elif spec.default is not None:
                result[name] = spec.default
            continue
        result[name] = _value(raw[name], name, spec, errors)
    if errors:
        raise ValidationError(errors, subject=f"payload of {transition.name!r}")
    return result


def _value(value: Any, field: str, spec: FieldSpec, errors: Errors) -> JSON:
    match spec.type:
        case "text":
            return text(value, field, errors, max_length=spec.max_length, multiline=True)
        case "code":
            return code(value, field, errors)
        case "codes":
            return _codes(value, field, errors)
        case "choice":
            if value not in spec.choices:
                errors.append((field, f"{_show(value)} is not one of {list(spec.choices)}"))
            return value if isinstance(value, str) else None
        case "bool":
            if not isinstance(value, bool):
                errors.append((field, f"must be true or false, got {_show(value)}"))
            return value if isinstance(value, bool) else None
        case "int":
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
                errors.append((field, f"must be a whole number, got {_show(value)}"))
            return value if isinstance(value, int) else None
        case "number":
            if _not_number(value):
                errors.append((field, f"must be a finite number, got {_show(value)}"))
            return value if not _not_number(value) else None
        case "datetime":
            return _instant(value, field, errors)
        case "media":
            return media(value, field, errors)
    raise AssertionError(spec.type)  # pragma: no cover - FieldType is closed


def _codes(value: Any, field: str, errors: Errors) -> list[str]:
    if not isinstance(value, list | tuple) or len(value) > MAX_CODES:
        errors.append((field, f"must be a list of at most {MAX_CODES} codes"))
        return []
    items = [code(item, f"{field}[{i}]", errors) for i, item in enumerate(value)]
    if len(set(items)) != len(items):
        errors.append((field, "lists a code twice"))
    return items


def _instant(value: Any, field: str, errors: Errors) -> str | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            errors.append((field, f"{_show(value)} is not an ISO 8601 instant"))
            return None
    try:
        return utc(value, field).isoformat()
    except NaiveDatetime:
        errors.append((field, "must be a timezone-aware datetime or ISO 8601 instant"))
        return None
    except OverflowError:
        errors.append((field, "is outside the years 1 to 9999 once converted to UTC"))
        return None


def _not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)


_SIZED = json.JSONEncoder(default=str, ensure_ascii=False)
"""What ``json.dumps`` builds for these options on every call, built once."""


def _check_shape(raw: Any, errors: Errors) -> None:
    if type(raw) is not dict and not isinstance(raw, Mapping):
        errors.append(("<payload>", "must be a mapping of field names to values"))
        return
    problem = _shape_problem(raw, 1)
    if problem is not None:
        errors.append(("<payload>", problem))
        return
    if _within_size(raw):
        return  # its encoding could not reach the limit: not encoded to be measured
    try:
        size = len(_SIZED.encode(raw).encode("utf-8", "replace"))
    except (TypeError, ValueError):
        errors.append(("<payload>", "is not JSON-compatible data"))
        return
    if size > MAX_PAYLOAD_BYTES:
        errors.append(("<payload>", f"is {size} bytes; at most {MAX_PAYLOAD_BYTES} allowed"))


def _within_size(raw: Any) -> bool:
    """Whether ``raw`` is a dict of text keys to plain values (text, whole numbers,
    floats, booleans, ``None``, each of exactly that type) whose encoding surely stays
    within :data:`MAX_PAYLOAD_BYTES`: a character takes at most 6 bytes (an escape;
    else at most 4 in UTF-8), a whole number a digit for every 3 bits and its sign, a
    float, ``true``, ``false`` or ``null`` at most 24. Such a payload always encodes,
    so nothing is lost by not encoding it."""
    if type(raw) is not dict:
        return False
    bound = 2
    for key, value in raw.items():
        kind = type(value)
        if type(key) is not str:
            return False
        if kind is str:
            bound += 6 * (len(key) + len(value)) + 8
        elif kind is int:
            bound += 6 * len(key) + value.bit_length() // 3 + 8
        elif kind is float or kind is bool or value is None:
            bound += 6 * len(key) + 30
        else:
            return False
        if bound > MAX_PAYLOAD_BYTES:
            return False
    return True


_SCALARS = frozenset({str, int, float, bool, type(None)})
"""Types none of whose values is a container (told without asking the ``Mapping`` ABC)."""


def _shape_problem(node: Any, depth: int) -> str | None:
    """The first problem of the shape of ``node`` (at ``depth``) and its parts, parents
    before their children: nested too deep, or a mapping with a key that is not text."""
    if depth > MAX_PAYLOAD_DEPTH:
        return f"is nested deeper than {MAX_PAYLOAD_DEPTH} levels"
    children: Iterable[Any]
    if type(node) is dict or isinstance(node, Mapping):
        if not all(isinstance(k, str) for k in node):
            return "has a key that is not text"
        children = node.values()
    elif isinstance(node, list | tuple):
        children = node
    else:
        return None
    deepest = depth >= MAX_PAYLOAD_DEPTH  # then even a plain value is too deep
    for child in children:
        if deepest or (type(child) not in _SCALARS and isinstance(child, Mapping | list | tuple)):
            problem = _shape_problem(child, depth + 1)
            if problem is not None:
                return problem
    return None


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
