"""Cases with due timers claimed by many processes: each applied once; a killed holder
is taken over.

At store level (claim, write the case under the claim with an effect, commit), as a
sweeping engine does.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.adapters.sqlalchemy.schema import outbox
from closedloop.engine.ports import TimerClaim
from closedloop.errors import LeaseLost
from closedloop.testing.contract.base import LEASE, T0, commit, message, new_case, revise, timed
from tests.conftest import new_schema, postgres_url

# Worker processes come from a fork server that imported closedloop once: each starts in
# a fraction of the time a fresh interpreter takes, and none inherits an open database.
SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["closedloop.adapters.sqlalchemy", "closedloop.engine.service"])
NOW = T0 + timedelta(hours=1)


def apply_effect(store: SQLStore, claim: TimerClaim, worker: str) -> None:
    """Write the claimed case (its timer applied: none left) and record the effect (an
    outbox row) in one transaction."""
    effect = message(f"effect/{claim.case_id}/{worker}/{uuid.uuid4().hex}", claim.case_id)
    case, event = revise(*new_case(claim.case_id))
    commit(
        store,
        lambda tx: tx.update_case(case, 1, event, claim=claim),
        lambda tx: tx.add_outbox([effect]),
    )


def sweep_worker(url: str, schema: str, start: float) -> int:
    """Claim and apply due timers in batches until none are left; return how many."""
    store = SQLStore(url, schema=schema)
    worker = f"sweeper-{os.getpid()}"
    time.sleep(max(0.0, start - time.time()))  # start together, to collide
    applied = 0
    while claims := store.claim_due(NOW, owner=worker, lease=LEASE, limit=10):
        for claim in claims:
            apply_effect(store, claim, worker)
            applied += 1
    store.close()
    return applied


@pytest.mark.external_service
def test_four_sweepers_apply_the_due_timers_of_1000_cases_exactly_once() -> None:
    url, schema = postgres_url(), new_schema()
    store = SQLStore(url, schema=schema)
    with store.transaction() as tx:  # one transaction: setting up is not what is tested
        for case_id in (f"case-{c}" for c in range(1000)):
            case, opened = new_case(case_id)
            tx.add_case(case, None, opened, next_timer_at=T0)
        tx.commit()
    start = time.time() + 1.5  # once every worker process is up
    with SPAWN.Pool(4) as pool:
        applied = pool.starmap(sweep_worker, [(url, schema, start)] * 4)
    assert sum(applied) == 1000
    assert sum(1 for n in applied if n > 0) > 1  # the work was shared
    with store.engine.connect() as connection:
        effects = Counter(
            effect.split("/")[1]  # effect/<case>/<worker>/<nonce>
            for effect in connection.execute(select(outbox.c.id)).scalars()
        )
    assert len(effects) == 1000
    assert set(effects.values()) == {1}
    assert store.next_due_at() is None
    store.close()


# -- lease takeover after SIGKILL -------------------------------------------------------


def doomed_worker(url: str, schema: str | None, claimed: multiprocessing.Queue[str]) -> None:
    """Claim the case, start writing it (holding its row), report, and hang."""
    store = SQLStore(url, schema=schema)
    (claim,) = store.claim_due(T0, owner="doomed", lease=LEASE, limit=1)
    case, event = revise(*new_case(claim.case_id))
    with store.transaction() as tx:
        tx.update_case(case, 1, event, claim=claim)  # the row is now locked by this transaction
        claimed.put(claim.model_dump_json())
        time.sleep(600)  # killed long before this ends


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leases.db'}", None
    return postgres_url(), new_schema()


def test_a_killed_holder_is_taken_over_and_its_late_acknowledgement_discarded(
    database: tuple[str, str | None],
) -> None:
    store = SQLStore(database[0], schema=database[1])
    timed(store, "c1", T0)
    queue: multiprocessing.Queue[str] = SPAWN.Queue()
    doomed = SPAWN.Process(target=doomed_worker, args=(*database, queue))
    doomed.start()
    stale = TimerClaim.model_validate_json(queue.get(timeout=60))
    os.kill(doomed.pid or 0, signal.SIGKILL)
    doomed.join(timeout=30)
    assert doomed.exitcode == -signal.SIGKILL
    # The lease still runs: nobody else may take the case yet.
    early = T0 + LEASE - timedelta(seconds=1)
    assert store.claim_due(early, owner="heir", lease=LEASE, limit=1) == []
    heir = _claim_when_released(store, T0 + LEASE)
    assert (heir.case_id, heir.owner) == (stale.case_id, "heir")
    assert heir.token != stale.token
    apply_effect(store, heir, "heir")
    with pytest.raises(LeaseLost):  # the killed worker's acknowledgement, arriving late
        commit(store, lambda tx: tx.release_claim(stale, version=2, next_timer_at=None))
    assert store.claim_due(T0 + 100 * LEASE, owner="anyone", lease=LEASE, limit=1) == []
    store.close()


def _claim_when_released(store: SQLStore, now: datetime) -> TimerClaim:
    # The database notices the dead connection and releases its locks within moments.
    give_up = time.monotonic() + 20
    while time.monotonic() < give_up:
        claimed = store.claim_due(now, owner="heir", lease=LEASE, limit=1)
        if claimed:
            return claimed[0]
        time.sleep(0.05)
    raise AssertionError("the killed worker's claim was never released")
