"""Fuzzing the workflow loader: whatever it is given, it loads or raises InvalidWorkflow.

Random JSON-like values, valid definitions with one node replaced, removed or added,
and random JSON and YAML text. Any other exception is a bug in the loader.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closedloop import InvalidWorkflow, Workflow
from closedloop.testing import workflows

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: YAML has them
    st.text(max_size=20),
    st.sampled_from(["", "final", "initial", "2 hours", "system", "reporter", "wait_0"]),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
        st.dictionaries(st.one_of(st.integers(), st.none(), st.booleans()), children, max_size=2),
    ),
    max_leaves=20,
)
"""JSON-like values, with the non-text keys a YAML document may hold."""


def load(data: Any) -> None:
    """Load ``data``; a refusal must be an InvalidWorkflow that lists its problems."""
    try:
        Workflow.from_dict(data)
    except InvalidWorkflow as exc:
        problems = exc.problems
    else:
        return
    assert problems, "a refusal must list its problems"
    assert all(isinstance(p, str) and p for p in problems)


@given(json_like)
def test_any_json_like_value_loads_or_is_refused(data: Any) -> None:
    load(data)


@given(
    st.dictionaries(
        st.sampled_from(["name", "roles", "clocks", "states", "transitions", "x"]), json_like
    )
)
def test_any_mapping_with_the_right_keys_loads_or_is_refused(data: dict[str, Any]) -> None:
    load(data)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``node`` (keys and indexes), the root's children first."""
    found: list[tuple[Any, ...]] = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


@st.composite
def mutated_definitions(draw: st.DrawFn) -> dict[str, Any]:
    """A valid definition with one node replaced or removed, or a key added."""
    data = copy.deepcopy(draw(workflows(as_dict=True)))
    path = draw(st.sampled_from(paths(data)))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(json_like)
    elif action == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = draw(json_like)
    else:
        parent.append(draw(json_like))
    return data


@given(mutated_definitions())
def test_a_damaged_definition_loads_or_is_refused(data: dict[str, Any]) -> None:
    load(data)


@given(st.text(max_size=200))
def test_any_json_text_loads_or_is_refused(text: str) -> None:
    with pytest.raises(InvalidWorkflow):
        Workflow.from_json("{" + text)


@given(st.one_of(st.text(max_size=200), json_like.map(json.dumps)))
def test_any_yaml_text_loads_or_is_refused(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "workflow.yaml")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as file:
            file.write(text)
        with contextlib.suppress(InvalidWorkflow):
            Workflow.from_yaml(path)


# -- found by fuzzing: the loader raises something else (engine bugs, reported) -----------


@pytest.mark.parametrize(
    "yaml_text",
    [
        pytest.param("? [a, b]\n: 1\n", id="a-list-as-a-mapping-key"),
        pytest.param("roles:\n  ? {name: x}\n  : 1\n", id="a-mapping-as-a-mapping-key"),
        pytest.param("[" * 5_000, id="deep-nesting"),
    ],
)
def test_hostile_yaml_is_refused_as_an_invalid_workflow(yaml_text: str, tmp_path: Path) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(InvalidWorkflow):
        Workflow.from_yaml(path)


@pytest.mark.parametrize(
    "json_text",
    [
        pytest.param('{"name": ' + "[" * 5_000 + "]" * 5_000 + "}", id="deep-nesting"),
        pytest.param('{"name": ' + "9" * 5000 + "}", id="an-integer-of-5000-digits"),
    ],
)
def test_hostile_json_is_refused_as_an_invalid_workflow(json_text: str) -> None:
    with pytest.raises(InvalidWorkflow):
        Workflow.from_json(json_text)
