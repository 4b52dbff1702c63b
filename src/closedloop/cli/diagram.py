"""A workflow as a diagram: Mermaid ``stateDiagram-v2`` or Graphviz DOT text.

Each state is a node (the initial state entered from the start marker, final states
leading to the end marker in Mermaid and drawn double in DOT); each pair of states
joined by transitions is one edge labelled with their trigger names. Diversions
(``divert:`` destinations taken when a condition holds) are drawn dashed in DOT and
marked ``(divert)`` in Mermaid.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from closedloop.engine.definition import Workflow

Format = Literal["mermaid", "dot"]
Edge = tuple[str, str, bool]
"""(from state, to state, is a diversion)."""


def edges(workflow: Workflow) -> dict[Edge, list[str]]:
    """The trigger names on each edge, in declaration order."""
    found: dict[Edge, list[str]] = {}
    for transition in workflow.transitions:
        for source in transition.source:
            found.setdefault((source, transition.dest, False), []).append(transition.name)
            for divert in transition.divert:
                found.setdefault((source, divert.to, True), []).append(transition.name)
    return found


def mermaid(workflow: Workflow) -> str:
    """The workflow as a Mermaid state diagram."""
    lines = ["stateDiagram-v2", f"    [*] --> {workflow.initial.name}"]
    for (source, dest, diverted), names in edges(workflow).items():
        label = ", ".join(names) + (" (divert)" if diverted else "")
        lines.append(f"    {source} --> {dest}: {label}")
    lines += [f"    {state.name} --> [*]" for state in workflow.states if state.final]
    return "\n".join(lines) + "\n"


def dot(workflow: Workflow) -> str:
    """The workflow as a Graphviz digraph."""
    return "\n".join(_dot_lines(workflow)) + "\n"


def _dot_lines(workflow: Workflow) -> Iterator[str]:
    yield f"digraph {_quoted(workflow.name)} {{"
    yield "    rankdir=LR;"
    yield '    node [shape=box, style=rounded, fontname="Helvetica"];'
    yield '    edge [fontname="Helvetica", fontsize=10];'
    yield '    __start__ [shape=point, label=""];'
    yield f"    __start__ -> {_quoted(workflow.initial.name)};"
    for state in workflow.states:
        shape = " [shape=doubleoctagon]" if state.final else ""
        yield f"    {_quoted(state.name)}{shape};"
    for (source, dest, diverted), names in edges(workflow).items():
        style = ", style=dashed" if diverted else ""
        label = _quoted("\\n".join(names))
        yield f"    {_quoted(source)} -> {_quoted(dest)} [label={label}{style}];"
    yield "}"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def render(workflow: Workflow, form: Format) -> str:
    """The workflow in ``form``."""
    return mermaid(workflow) if form == "mermaid" else dot(workflow)
