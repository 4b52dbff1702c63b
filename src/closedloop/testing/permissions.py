"""Who may act on a case, read from the workflow's declared rules alone.

:func:`may_act` answers from the definition (the transition's roles, its counter rules,
its ``not_party`` rules, the roles' kinds and ``sees_all``) and the case's relations
(reporter, lead unit, co-units, the units a routing dispute named, duplicates' reporters),
without calling the engine's own authorisation. The generated state machine compares
the engine's answer to every command with it (:func:`check_permission`): a rule or a
guard in the engine that lets the wrong party act, or refuses the right one, shows as a
disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass

from closedloop.engine.definition import TransitionSpec, Workflow
from closedloop.engine.model import Actor, Case
from closedloop.errors import CaseNotFound, ClosedLoopError, GuardRejected, PermissionDenied

STRANGER = Actor("stranger")
"""Somebody with no role and no unit: related to no case."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the declared rules say about one actor firing one transition on one case.

    Attributes:
        sees: The actor may see the case (else the engine answers ``CaseNotFound``).
        roles: The roles that may fire the transition on this case, by its counters.
        holds: The roles the actor holds on the case.
        barred: Roles the actor holds but may not use here: they are party to the case
            and a ``not_party`` rule bars those roles to parties.
    """

    sees: bool
    roles: tuple[str, ...]
    holds: frozenset[str]
    barred: frozenset[str]

    @property
    def allowed(self) -> bool:
        return self.sees and bool((self.holds - self.barred) & set(self.roles))

    def explain(self) -> str:
        if not self.sees:
            return "may not see the case"
        why = f"may fire it as one of {list(self.roles)}, holds {sorted(self.holds)}"
        return why + (f", barred as a party from {sorted(self.barred)}" if self.barred else "")


def verdict(workflow: Workflow, case: Case, actor: Actor, transition: TransitionSpec) -> Verdict:
    """What the workflow's rules say about ``actor`` firing ``transition`` on ``case``."""
    kinds = {role.name: role for role in workflow.roles}
    holds = frozenset(name for name, role in kinds.items() if _holds(role.kind, name, case, actor))
    sees = any(kinds[n].kind != "global" or kinds[n].sees_all for n in holds) or any(
        duplicate.reporter == actor.id for duplicate in case.duplicates
    )
    roles = transition.roles
    named = list(transition.roles)
    barred: set[str] = set()
    for rule in transition.role_rules:
        if rule.not_party:
            barred.update(rule.roles or ("*",))
            continue
        named += [r for r in rule.roles if r not in named]
        reached = rule.counter is not None and rule.at_least is not None
        if reached and case.counters.get(rule.counter or "", 0) >= (rule.at_least or 0):
            roles = rule.roles  # the last rule whose counter is reached decides
    if "*" in barred:
        barred = (barred - {"*"}) | set(named)
    party = _party(case, actor)
    return Verdict(sees, tuple(roles), holds, frozenset(barred & holds) if party else frozenset())


def may_act(workflow: Workflow, case: Case, actor: Actor, transition: TransitionSpec) -> bool:
    """Whether the declared rules let ``actor`` fire ``transition`` on ``case``."""
    return verdict(workflow, case, actor, transition).allowed


def parties(workflow: Workflow, case: Case) -> list[Actor]:
    """Actors in every relation to ``case``: its reporter, a member of its lead unit and
    of each co-unit, each global role's holder who is also a member of the lead unit (or
    of a co-unit), and a stranger."""
    units = [u for u in (case.lead_unit, *case.co_units) if u]
    found = [Actor(case.reporter_id), STRANGER]
    found += [Actor(f"member-{u}", units=frozenset({u})) for u in units]
    for role in workflow.roles:
        if role.kind == "global" and units:
            found.append(
                Actor(
                    f"{role.name}-in-{units[0]}",
                    roles=frozenset({role.name}),
                    units=frozenset({units[0]}),
                )
            )
    return found


def check_permission(
    workflow: Workflow,
    case: Case,
    actor: Actor,
    transition: TransitionSpec,
    error: ClosedLoopError | None,
) -> None:
    """The engine's answer to one command agrees with the declared rules.

    Args:
        case: The case as it was before the command.
        error: What the command raised, or ``None`` if it changed the case.

    Raises:
        AssertionError: an actor the rules allow was refused for permission, or one
            they do not allow got past the permission check (the command changed the
            case, or only a guard refused it).
    """
    found = verdict(workflow, case, actor, transition)
    refused_for_permission = isinstance(error, PermissionDenied | CaseNotFound)
    got_past = error is None or isinstance(error, GuardRejected)
    where = f"case {case.id!r} in {case.state!r}: {actor.id!r} firing {transition.name!r}"
    if refused_for_permission:
        assert not found.allowed, (
            f"{where} was refused ({type(error).__name__}), but the rules allow it: "
            f"{found.explain()}"
        )
    elif got_past:
        outcome = "changed the case" if error is None else f"reached guard ({error})"
        assert found.allowed, f"{where} {outcome}, but the rules do not allow it: {found.explain()}"


def _holds(kind: str, name: str, case: Case, actor: Actor) -> bool:
    if kind == "global":
        return name in actor.roles
    if kind == "reporter":
        return actor.id == case.reporter_id
    if kind == "lead_unit":
        return case.lead_unit is not None and case.lead_unit in actor.units
    return bool(set(actor.units) & set(case.co_units))  # co_unit


def _party(case: Case, actor: Actor) -> bool:
    units: set[str] = {u for u in (case.lead_unit, *case.co_units) if u}
    if case.lead_unit is None and case.routing is not None:
        units.update(case.routing.candidates)
    return bool(units & set(actor.units))
