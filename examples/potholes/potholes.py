"""The pothole workflow and the guard it names."""

from pathlib import Path

from closedloop import Context, Registry, Workflow


def photo_on_file(ctx: Context) -> str | None:
    """An inspector decides only once the crew's photo of the repair is on the case."""
    return None if ctx.case.attributes.get("photo") else "no photo of the repair on file"


REGISTRY = Registry.default().extended(guards={"photo_on_file": photo_on_file})
WORKFLOW_FILE = Path(__file__).with_name("potholes.yaml")


def load(path: Path = WORKFLOW_FILE) -> Workflow:
    return Workflow.from_yaml(path, registry=REGISTRY)
