"""The noise-complaint workflow and the guard it names."""

from datetime import datetime
from pathlib import Path

from closedloop import Context, Registry, Workflow


def appointment_reached(ctx: Context) -> str | None:
    """The mediation happens on site at the agreed time, not before."""
    when = ctx.case.attributes.get("appointment")
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when is None:
        return "no appointment is set"
    return None if ctx.now >= when else "the appointment is still ahead"


REGISTRY = Registry.default().extended(guards={"appointment_reached": appointment_reached})
WORKFLOW_FILE = Path(__file__).with_name("noise.yaml")


def load(path: Path = WORKFLOW_FILE) -> Workflow:
    return Workflow.from_yaml(path, registry=REGISTRY)
