"""Open311 documents in JSON and XML, one structure rendered both ways.

A document is a list of items (mappings) under a root element, each item an element
of its own; JSON is the list itself (the spec's Spark convention). Values are text,
numbers, booleans or ``None`` (an empty element, JSON ``null``), or lists of nested
items (a service definition's attributes and their values). XML goes through
:mod:`xml.etree.ElementTree`, which escapes every text; characters XML 1.0 cannot hold
are dropped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

FORMATS = ("json", "xml")
"""The formats every Open311 resource comes in (the suffix of its path)."""

MEDIA_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class Nested:
    """A list in an item: ``values`` of ``value`` elements, ``attributes`` of ``attribute``."""

    element: str
    items: Sequence[Mapping[str, object]]


def w3c(instant: datetime) -> str:
    """An instant in the W3C profile of ISO 8601, in UTC (``2026-03-02T09:00:00Z``)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(fmt: str, root: str, element: str, items: Sequence[Mapping[str, object]]) -> str:
    """The document: JSON, or XML with its declaration."""
    if fmt == "json":
        return json.dumps([_json(item) for item in items], ensure_ascii=False)
    top = ET.Element(root)
    for item in items:
        _xml(ET.SubElement(top, element), item)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="unicode")


def render_one(fmt: str, root: str, item: Mapping[str, object]) -> str:
    """A document of one item as its root (a service definition)."""
    if fmt == "json":
        return json.dumps(_json(item), ensure_ascii=False)
    top = ET.Element(root)
    _xml(top, item)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="unicode")


def _json(item: Mapping[str, object]) -> dict[str, object]:
    return {
        key: [_json(sub) for sub in value.items] if isinstance(value, Nested) else value
        for key, value in item.items()
    }


def _xml(parent: ET.Element, item: Mapping[str, object]) -> None:
    for key, value in item.items():
        child = ET.SubElement(parent, key)
        if isinstance(value, Nested):
            for sub in value.items:
                _xml(ET.SubElement(child, value.element), sub)
        elif value is not None:
            child.text = _text(value)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))
