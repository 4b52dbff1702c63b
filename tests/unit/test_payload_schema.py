"""A trigger's JSON Schema says what the engine's own payload check says."""

from __future__ import annotations

from typing import Any

import pytest

from closedloop import ValidationError, Workflow, workflows
from closedloop.engine import inputs
from closedloop.engine.schemas import MAX_LIST, MAX_MEDIA
from closedloop.errors import UnknownName

jsonschema = pytest.importorskip("jsonschema")

STANDARD = workflows.standard()
EVERY_TYPE = Workflow.from_dict(
    {
        "name": "types",
        "version": "1",
        "roles": [{"name": "clerk"}],
        "clocks": [{"name": "work", "duration": "1 day"}],
        "states": [
            {"name": "open", "initial": True, "owner": "clerk", "clock": "work"},
            {"name": "done", "final": True},
        ],
        "transitions": [
            {
                "name": "finish",
                "from": ["open"],
                "to": "done",
                "roles": ["clerk"],
                "fields": {
                    "note": {"type": "text", "max_length": 10},
                    "unit": {"type": "code", "required": True},
                    "units": {"type": "codes"},
                    "size": {"type": "choice", "choices": ["s", "m"], "default": "s"},
                    "ok": {"type": "bool"},
                    "count": {"type": "int"},
                    "weight": {"type": "number"},
                    "when": {"type": "datetime"},
                    "photos": {"type": "media"},
                },
            }
        ],
    }
)


def agree(workflow: Workflow, trigger: str, payload: dict[str, Any]) -> bool:
    """Whether the schema and the engine give the same answer; returns the answer."""
    schema = workflow.payload_schema(trigger)
    by_schema = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker()
    ).is_valid(payload)
    try:
        inputs.payload(workflow.transition(trigger), payload)
        by_engine = True
    except ValidationError:
        by_engine = False
    assert by_schema == by_engine, (trigger, payload)
    return by_engine


def test_every_trigger_has_a_valid_draft_2020_12_schema() -> None:
    for transition in (*STANDARD.transitions, *EVERY_TYPE.transitions):
        schema = STANDARD.payload_schema(transition.name) if transition in STANDARD.transitions \
            else EVERY_TYPE.payload_schema(transition.name)  # fmt: skip
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert set(schema["properties"]) == set(transition.fields)


def test_the_dispatch_schema_reads_as_documented() -> None:
    schema = STANDARD.payload_schema("classify")
    assert schema["required"] == ["category"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["urgency"] == {
        "anyOf": [
            {"type": "string", "enum": ["normal", "urgent", "emergency"], "default": "normal"},
            {"type": "null"},
        ],
        "default": "normal",
    }


@pytest.mark.parametrize(
    ("payload", "accepted"),
    [
        ({"unit": "water"}, True),
        ({"unit": "D1.S1", "units": ["a", "b.c"], "size": "m", "ok": False}, True),
        ({"unit": "w", "count": 3, "weight": 2.5, "when": "2026-01-05T09:00:00+08:00"}, True),
        ({"unit": "w", "note": "short", "size": None}, True),
        ({}, False),
        ({"unit": "not a code"}, False),
        ({"unit": "w", "units": ["a", "a"]}, False),
        ({"unit": "w", "units": [f"u{n}" for n in range(MAX_LIST + 1)]}, False),
        ({"unit": "w", "size": "xl"}, False),
        ({"unit": "w", "ok": 1}, False),
        ({"unit": "w", "count": 1.5}, False),
        ({"unit": "w", "count": True}, False),
        ({"unit": "w", "weight": "2"}, False),
        ({"unit": "w", "note": "far too long here"}, False),
        ({"unit": "w", "extra": 1}, False),
        (
            {
                "unit": "w",
                "photos": [
                    {
                        "url": "https://x.example/1.jpg",
                        "content_type": "image/jpeg",
                        "sha256": "a" * 64,
                    }
                ],
            },
            True,
        ),
        (
            {
                "unit": "w",
                "photos": [{"key": "k1", "content_type": "image/jpeg", "sha256": "a" * 64}],
            },
            True,
        ),
        (
            {
                "unit": "w",
                "photos": [
                    {
                        "url": "https://x",
                        "key": "k",
                        "content_type": "image/jpeg",
                        "sha256": "a" * 64,
                    }
                ],
            },
            False,
        ),
        (
            {"unit": "w", "photos": [{"key": "k1", "content_type": "image/jpeg", "sha256": "A"}]},
            False,
        ),
    ],
)
def test_the_schema_and_the_engine_agree(payload: dict[str, Any], accepted: bool) -> None:
    assert agree(EVERY_TYPE, "finish", payload) is accepted


def test_the_limits_are_the_engines() -> None:
    assert MAX_LIST == inputs.MAX_CODES
    assert MAX_MEDIA == inputs.MAX_MEDIA


def test_an_unknown_trigger_is_named() -> None:
    with pytest.raises(UnknownName, match="unknown trigger 'fly'"):
        STANDARD.payload_schema("fly")
