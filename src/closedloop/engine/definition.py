"""Workflow definitions: states, transitions, roles and clocks, as declarative data.

A definition is loaded with :meth:`Workflow.from_yaml`, :meth:`Workflow.from_json` or
:meth:`Workflow.from_dict` and validated eagerly: a definition that loads is a closed
loop (see :mod:`closedloop.engine.validation`). Guards and effects are named; their
code lives in a :class:`~closedloop.engine.registry.Registry`, never in strings that
are imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr
from pydantic import ValidationError as PydanticValidationError

from closedloop.engine.loading import NotYAML, parse_yaml
from closedloop.engine.registry import Registry, default_registry
from closedloop.engine.schemas import payload_schema
from closedloop.engine.specs import (
    ClockSpec,
    Divert,
    EscalationStep,
    ExpirySpec,
    FieldSpec,
    FieldType,
    NotificationRule,
    PrivacySpec,
    RoleKind,
    RoleRule,
    RoleSpec,
    SlaRow,
    StateSpec,
    TemplateSpec,
    TransitionSpec,
    WorkflowSpec,
)
from closedloop.engine.validation import check_workflow
from closedloop.errors import InvalidWorkflow, UnknownName

__all__ = [
    "ClockSpec",
    "Divert",
    "EscalationStep",
    "ExpirySpec",
    "FieldSpec",
    "FieldType",
    "NotificationRule",
    "PrivacySpec",
    "RoleKind",
    "RoleRule",
    "RoleSpec",
    "SlaRow",
    "StateSpec",
    "TemplateSpec",
    "TransitionSpec",
    "Workflow",
]


class Workflow(WorkflowSpec):
    """A validated workflow definition. Build one with ``from_yaml``/``from_json``/``from_dict``."""

    _registry: Registry = PrivateAttr(default_factory=default_registry)

    # -- loading -----------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: Any, *, registry: Registry | None = None, source: str | None = None
    ) -> Workflow:
        """Build and validate a workflow from plain data.

        Args:
            data: The definition as dicts and lists (as YAML or JSON would give).
            registry: Guards and effects the definition may name; the built-in ones
                by default.
            source: Where the data came from, for error messages.

        Raises:
            InvalidWorkflow: listing every problem found, each with its path.
        """
        if not isinstance(data, Mapping):
            raise InvalidWorkflow(
                [f"<root>: expected a mapping, got {type(data).__name__}"], source=source
            )
        try:
            workflow = cls.model_validate(dict(data))
        except PydanticValidationError as exc:
            raise InvalidWorkflow(_pydantic_problems(exc), source=source) from None
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidWorkflow([f"<root>: {exc}"], source=source) from None
        registry = registry or default_registry()
        problems = check_workflow(workflow, registry)
        if problems:
            raise InvalidWorkflow(problems, source=source)
        workflow._registry = registry
        return workflow

    @classmethod
    def from_yaml(cls, path: str | Path, *, registry: Registry | None = None) -> Workflow:
        """Load a workflow from a YAML file; duplicate keys are reported as problems.

        Raises:
            InvalidWorkflow: the file is unreadable, not YAML, or not a valid workflow.
        """
        text = _read(path)
        try:
            data = parse_yaml(text, source=str(path))
        except NotYAML as exc:
            raise InvalidWorkflow([f"not valid YAML: {exc}"], source=str(path)) from None
        return cls.from_dict(data, registry=registry, source=str(path))

    @classmethod
    def from_json(cls, text_or_path: str | Path, *, registry: Registry | None = None) -> Workflow:
        """Load a workflow from JSON text or a ``.json`` file path.

        Raises:
            InvalidWorkflow: not JSON (duplicate keys included) or not a valid workflow.
        """
        source: str | None = None
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("{"):
            source = str(text_or_path)
            text = _read(text_or_path)
        try:
            data = json.loads(text, object_pairs_hook=_unique_pairs)
        except (ValueError, RecursionError) as exc:  # bad JSON, duplicates, huge numbers
            raise InvalidWorkflow([f"<json>: {exc}"], source=source) from None
        return cls.from_dict(data, registry=registry, source=source)

    def payload_schema(self, trigger: str) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of the payload ``trigger`` accepts.

        An object of the transition's declared ``fields:``: types, ``required``,
        choices, lengths and defaults; no other property. A field not required may be
        ``null`` (not given).

        Raises:
            UnknownName: the workflow declares no such trigger.
        """
        try:
            transition = self.transition(trigger)
        except KeyError:
            raise UnknownName("trigger", trigger, (t.name for t in self.transitions)) from None
        return payload_schema(transition, self.name)

    @property
    def registry(self) -> Registry:
        """The guards and effects this workflow was validated against."""
        return self._registry


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: undecodable, or a NUL in the path
        raise InvalidWorkflow([f"<file>: cannot read: {exc}"], source=str(path)) from None


def _pydantic_problems(exc: PydanticValidationError) -> list[str]:
    problems = []
    errors = exc.errors(include_url=False)
    for error in errors:
        if _follows_from_items(error, errors):
            continue
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{path.lstrip('.') or '<root>'}: {message}")
    return problems


def _follows_from_items(error: Any, errors: Sequence[Any]) -> bool:
    """Whether ``error`` says a list is too short only because items of it were refused
    (reported on their own): ``data: [phone]`` is one problem, not two."""
    loc = tuple(error["loc"])
    return error["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {key!r}")
        result[key] = value
    return result
