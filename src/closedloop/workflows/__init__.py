"""Built-in workflow definitions, shipped as package data."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

from closedloop.engine.definition import Workflow
from closedloop.engine.loading import parse_yaml
from closedloop.engine.registry import Registry

__all__ = ["standard", "standard_yaml"]


def standard_yaml() -> str:
    """The text of the standard workflow (``workflows/standard.yaml``), to copy and adapt."""
    return resources.files(__package__).joinpath("standard.yaml").read_text(encoding="utf-8")


def standard(
    *, registry: Registry | None = None, after_photo: bool | Iterable[str] = False
) -> Workflow:
    """The standard six-step loop: report, classify, assign, handle, feedback, confirm.

    Args:
        registry: Guards and effects to validate against; the built-in ones by default.
        after_photo: Require ``after_photos`` (media references) with ``submit_result``:
            ``True`` on every case, or the channels whose cases need them
            (``["grid"]``); optional by default.
    """
    data = copy.deepcopy(_standard_data())
    if after_photo is not False:
        submit = next(t for t in data["transitions"] if t["name"] == "submit_result")
        field = submit["fields"]["after_photos"]
        if after_photo is True:
            field["required"] = True
        else:
            field["required_channels"] = list(after_photo)
    return Workflow.from_dict(data, registry=registry, source="closedloop:standard.yaml")


@cache
def _standard_data() -> Any:
    # Parsing the YAML is most of the cost of standard(); each call still gets its own
    # Workflow (and registry), built from a private copy of the parsed data.
    return parse_yaml(standard_yaml())
