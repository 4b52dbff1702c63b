"""``closedloop validate`` and ``closedloop diagram``: a workflow file checked or drawn."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from closedloop.cli.diagram import Format, render
from closedloop.cli.failures import fail, one_line, reported
from closedloop.cli.hostcode import load_registry
from closedloop.cli.output import console
from closedloop.engine.definition import Workflow
from closedloop.engine.registry import Registry
from closedloop.errors import InvalidWorkflow

WorkflowFile = Annotated[
    Path, typer.Argument(help="A workflow definition (.yaml, .yml or .json).", show_default=False)
]
RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        metavar="MODULE:ATTR",
        help="The host's guards and effects: a Registry, or a function returning one "
        "(the module is imported from the current directory too).",
        show_default=False,
    ),
]


def registry_of(spec: str | None) -> Registry | None:
    """The registry ``--registry`` names; ``None`` (the built-in one) without it.

    Raises:
        HostCodeUnusable: the named code cannot be loaded or is not a registry.
    """
    return None if spec is None else load_registry(spec)


def load_workflow(path: Path, registry: Registry | None = None) -> Workflow:
    """Load a workflow from YAML, or JSON when the file name ends in ``.json``.

    Args:
        path: The definition file.
        registry: The guards and effects it may name; the built-in ones by default.

    Raises:
        InvalidWorkflow: the file is unreadable or the definition has problems.
    """
    if path.suffix.lower() == ".json":
        return Workflow.from_json(path, registry=registry)
    return Workflow.from_yaml(path, registry=registry)


REGISTRY_HINT = "(guards and effects of your own: --registry MODULE:ATTR)"
"""Said when a workflow loaded without ``--registry`` names guards or effects of its own."""


def _unknown_code(invalid: InvalidWorkflow) -> bool:
    return any("unknown guard" in p or "unknown effect" in p for p in invalid.problems)


def workflow_file(path: Path, registry: str | None) -> Workflow:
    """The workflow in ``path`` with the ``--registry`` code; when it names guards or
    effects unknown without one, the one-line error says how to give them.

    Raises:
        InvalidWorkflow: the file is unreadable or the definition has problems.
        HostCodeUnusable: the registry cannot be loaded.
    """
    try:
        return load_workflow(path, registry_of(registry))
    except InvalidWorkflow as invalid:
        if registry is None and _unknown_code(invalid):
            fail(f"{one_line(invalid)} {REGISTRY_HINT}")
        raise


@reported
def validate(workflow: WorkflowFile, registry: RegistryOption = None) -> None:
    """Check a workflow definition and list every problem with its path."""
    out = console()
    try:
        loaded = load_workflow(workflow, registry_of(registry))
    except InvalidWorkflow as invalid:
        out.print(f"{workflow}: {len(invalid.problems)} problem(s)", markup=False)
        for problem in invalid.problems:
            out.print(f"  - {problem}", markup=False)
        if registry is None and _unknown_code(invalid):
            out.print(f"  {REGISTRY_HINT}", markup=False)
        fail(one_line(invalid))
    finals = sum(1 for state in loaded.states if state.final)
    out.print(
        f"{workflow}: workflow {loaded.name!r} version {loaded.version} is valid: "
        f"{len(loaded.states)} states ({finals} final), {len(loaded.transitions)} transitions, "
        f"{len(loaded.clocks)} clocks.",
        markup=False,
    )
    out.print(party_rules(loaded), markup=False)


def party_rules(workflow: Workflow) -> str:
    """What the workflow's ``not_party`` rules bar a party to a case (a member of its
    lead unit or a co-unit) from, as one sentence."""
    barred = []
    for transition in workflow.transitions:
        roles = workflow.barred_to_parties(transition)
        if not roles:
            continue
        every = roles >= set(workflow.roles_named(transition))
        shown = "any role" if every else "as " + ", ".join(sorted(roles))
        barred.append(f"{transition.name} ({shown})")
    if not barred:
        return (
            "Conflicts of interest: no not_party rule; a member of a case's lead unit or "
            "co-unit may fire every transition their roles allow."
        )
    return "Conflicts of interest: a party to the case may not fire " + ", ".join(barred) + "."


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
    registry: RegistryOption = None,
) -> None:
    """Draw a workflow's states and transitions as Mermaid or Graphviz DOT text."""
    chosen: Format = "dot" if form is DiagramFormat.dot else "mermaid"
    typer.echo(render(workflow_file(workflow, registry), chosen), nl=False)
