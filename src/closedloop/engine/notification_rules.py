"""The checks of a workflow's notification rules and templates, made when it loads.

:mod:`closedloop.engine.notifications` turns the rules into messages; this module
only knows the names a rule may use, so that validation needs nothing that sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from string import Template

from closedloop.engine.kinds import EngineTrigger
from closedloop.engine.specs import WorkflowSpec

ENGINE_EVENTS = frozenset(trigger.value for trigger in EngineTrigger)
"""Events a rule may name besides the workflow's transitions."""
TARGETS = frozenset(
    {"lead_unit", "co_units", "supervising_unit", "parent_unit", "reporter", "subtask_unit"}
)
VARIABLES = frozenset(
    {
        "case_id", "event", "state", "category", "category_name", "urgency", "description",
        "address", "area", "lead_unit", "actor", "reason", "due_at", "level", "seq", "unit",
        "merged_into", "outcome",
    }
)  # fmt: skip
"""The names a template may use, as ``${name}``."""


def rule_problems(workflow: WorkflowSpec) -> Iterator[str]:
    """Every problem of the workflow's notification rules and templates."""
    events = ENGINE_EVENTS | {t.name for t in workflow.transitions}
    roles = {r.name for r in workflow.roles}
    for index, rule in enumerate(workflow.notifications):
        where = f"notifications[{index}]"
        for name in rule.events:
            if name not in events:
                known = sorted(ENGINE_EVENTS)
                yield f"{where}.events: unknown event {name!r}; events: transitions and {known}"
        yield from _target_problems(f"{where}.to", rule.to, roles)
        if rule.template not in workflow.templates:
            yield f"{where}.template: unknown template {rule.template!r}"
    for clock in workflow.clocks:
        for step, rung in enumerate(clock.escalation):
            where = f"clocks.{clock.name}.escalation[{step}].notify"
            yield from _target_problems(where, rung.notify, roles)
    for name, spec in workflow.templates.items():
        for part in ("subject", "body"):
            template = Template(getattr(spec, part))
            if not template.is_valid():
                yield f"templates.{name}.{part}: not a valid template (write $$ for a dollar sign)"
                continue
            unknown = set(template.get_identifiers()) - VARIABLES
            if unknown:
                yield (
                    f"templates.{name}.{part}: unknown names {sorted(unknown)}; "
                    f"known: {sorted(VARIABLES)}"
                )


def _target_problems(where: str, targets: tuple[str, ...], roles: set[str]) -> Iterator[str]:
    """The recipients among ``targets`` that tell no one: neither one of :data:`TARGETS`
    nor ``role:`` and a declared role."""
    for target in targets:
        role = target.removeprefix("role:")
        if target not in TARGETS and not (target.startswith("role:") and role in roles):
            yield f"{where}: {target!r} is not {sorted(TARGETS)} or role:<declared role>"
