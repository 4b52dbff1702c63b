"""Quick start: one report through the whole loop, then its verified history.

It runs on the embedded default, a SQLite file (``closedloop-quickstart.db`` in the
current directory; no server). Run: python examples/quickstart.py
"""

from __future__ import annotations

from closedloop import Actor, Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore


def main() -> None:
    store = SQLStore("sqlite:///closedloop-quickstart.db")
    engine = Engine(workflows.standard(), store=store)

    # Actor ids are kept in the audit trail for good, never masked or purged: a reporter
    # gets an opaque id, and the phone number goes in `contact`, which is.
    citizen = Actor("citizen-7f3a9c")
    dispatcher = Actor("op-07", roles={"dispatcher"})
    water_crew = Actor("crew-3", units={"water-company"})

    case = engine.report(
        citizen,
        description="Manhole cover missing outside No. 12 Elm Street",
        location={"address": "12 Elm Street", "area": "D1.S1.C1.G01"},
        contact={"name": "Li Lei", "phone": "13812345678"},
        channel="hotline",
    )
    case = engine.trigger(case.id, "classify", by=dispatcher, category="01.01", urgency="urgent")
    case = engine.trigger(case.id, "dispatch", by=dispatcher, unit="water-company")
    case = engine.trigger(case.id, "accept", by=water_crew)
    case = engine.trigger(case.id, "submit_result", by=water_crew, result="Cover replaced")
    case = engine.trigger(case.id, "feedback", by=dispatcher, message="Cover replaced today")
    case = engine.trigger(case.id, "confirm", by=citizen, resolved="yes", rating="satisfied")

    print(f"case {case.id}: {case.state}, handled by {case.lead_unit}, version {case.version}")
    for event in engine.history(case.id):
        print(
            f"  {event.seq}. {event.trigger:<14} {event.from_state or '-':>22} -> "
            f"{event.to_state:<22} by {event.actor} ({event.role})"
        )
    report = engine.verify(case.id)
    print(f"audit chain verified: {report.ok} ({report.events} events)")
    store.close()


if __name__ == "__main__":
    main()
