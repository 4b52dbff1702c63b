"""``closedloop validate`` and ``closedloop diagram``: a workflow file checked or drawn."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from closedloop.cli.diagram import Format, render
from closedloop.cli.failures import fail, one_line, reported
from closedloop.cli.output import console
from closedloop.engine.definition import Workflow
from closedloop.errors import InvalidWorkflow

WorkflowFile = Annotated[
    Path, typer.Argument(help="A workflow definition (.yaml, .yml or .json).", show_default=False)
]


def load_workflow(path: Path) -> Workflow:
    """Load a workflow from YAML, or JSON when the file name ends in ``.json``.

    Raises:
        InvalidWorkflow: the file is unreadable or the definition has problems.
    """
    if path.suffix.lower() == ".json":
        return Workflow.from_json(path)
    return Workflow.from_yaml(path)


@reported
def validate(workflow: WorkflowFile) -> None:
    """Check a workflow definition and list every problem with its path."""
    out = console()
    try:
        loaded = load_workflow(workflow)
    except InvalidWorkflow as invalid:
        out.print(f"{workflow}: {len(invalid.problems)} problem(s)", markup=False)
        for problem in invalid.problems:
            out.print(f"  - {problem}", markup=False)
        fail(one_line(invalid))
    finals = sum(1 for state in loaded.states if state.final)
    out.print(
        f"{workflow}: workflow {loaded.name!r} version {loaded.version} is valid: "
        f"{len(loaded.states)} states ({finals} final), {len(loaded.transitions)} transitions, "
        f"{len(loaded.clocks)} clocks.",
        markup=False,
    )


class DiagramFormat(StrEnum):
    """The text formats ``closedloop diagram`` writes."""

    mermaid = "mermaid"
    dot = "dot"


@reported
def diagram(
    workflow: WorkflowFile,
    form: Annotated[
        DiagramFormat, typer.Option("--format", "-f", help="Mermaid, or Graphviz DOT.")
    ] = DiagramFormat.mermaid,
) -> None:
    """Draw a workflow's states and transitions as Mermaid or Graphviz DOT text."""
    chosen: Format = "dot" if form is DiagramFormat.dot else "mermaid"
    typer.echo(render(load_workflow(workflow), chosen), nl=False)
