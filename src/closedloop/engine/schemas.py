"""JSON Schema (draft 2020-12) of what a trigger accepts, from its declared ``fields:``.

:meth:`closedloop.Workflow.payload_schema` hands it to hosts: an HTTP layer publishes it
in OpenAPI or checks a request body with it before the engine does. The engine's own
check (:func:`closedloop.engine.inputs.payload`) stays the authority; a test holds the
two to the same answers.
"""

from __future__ import annotations

from typing import Any

from closedloop.engine.hierarchy import MAX_CODE_LENGTH
from closedloop.engine.specs import FieldSpec, TransitionSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"

CODE_PATTERN = r"^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$"
"""The grammar of a code (:func:`closedloop.engine.hierarchy.is_code`) as a pattern."""

MAX_LIST = 50
"""The longest list of codes a ``codes`` field takes (as ``inputs.MAX_CODES``)."""

MAX_MEDIA = 20
"""The most media references a ``media`` field takes (as ``inputs.MAX_MEDIA``)."""

MEDIA_REF: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "pattern": r"^https?://\S{1,2000}$"},
        "key": {"type": "string", "minLength": 1, "maxLength": 500},
        "content_type": {
            "type": "string",
            "pattern": r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$",
        },
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
    "required": ["content_type", "sha256"],
    "oneOf": [{"required": ["url"]}, {"required": ["key"]}],
    "additionalProperties": False,
}
"""A media reference (:class:`~closedloop.engine.model.MediaRef`): a url or a key."""


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    """The schema of one field's value (``null`` stands for "not given" unless required)."""
    code = {"type": "string", "pattern": CODE_PATTERN, "maxLength": MAX_CODE_LENGTH}
    shape: dict[str, Any]
    match spec.type:
        case "text":
            shape = {"type": "string", "minLength": 1, "maxLength": spec.max_length}
        case "code":
            shape = dict(code)
        case "codes":
            shape = {"type": "array", "items": code, "maxItems": MAX_LIST, "uniqueItems": True}
        case "choice":
            shape = {"type": "string", "enum": list(spec.choices)}
        case "bool":
            shape = {"type": "boolean"}
        case "int":
            shape = {"type": "integer", "minimum": -(2**53), "maximum": 2**53}
        case "number":
            shape = {"type": "number"}
        case "datetime":
            shape = {"type": "string", "format": "date-time"}
        case "media":
            shape = {"type": "array", "items": MEDIA_REF, "maxItems": MAX_MEDIA}
    if spec.default is not None:
        shape["default"] = spec.default
    if spec.required:  # a field required only on some channels may still be left out
        return shape
    return {"anyOf": [shape, {"type": "null"}], **_lifted(shape)}


def _lifted(shape: dict[str, Any]) -> dict[str, Any]:
    return {"default": shape["default"]} if "default" in shape else {}


def payload_schema(transition: TransitionSpec, workflow: str) -> dict[str, Any]:
    """The schema of the payload of ``transition`` (an object of its declared fields)."""
    return {
        "$schema": DIALECT,
        "title": f"{workflow}: {transition.name}",
        "description": transition.description or f"The payload of {transition.name!r}.",
        "type": "object",
        "properties": {name: field_schema(spec) for name, spec in transition.fields.items()},
        "required": [name for name, spec in transition.fields.items() if spec.required],
        "additionalProperties": False,
    }
