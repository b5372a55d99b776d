"""A worker SIGKILLed in the middle of automation sequences: after restarts every action of every run is done
exactly once (issue 12).

Real everything: a Temporal dev server, a SQLite file and `python worker.py` (its dispatcher included) as a child
process. One rule fires on every new order: notify ops → tag the order → a to-do → wait 1 min → set its priority →
notify ops again. The worker is killed the moment the first step of some run has committed (so other runs are
mid-activity or inside the durable wait), and again when a later step commits; a fresh worker takes over each
time. A killed worker's started activities come back when their start-to-close (AUTOMATING, 30 s) ends, and an
event it had claimed but not marked handled comes back when its lease (60 s) ends: the waits below allow both.

Exactly once is counted in the effects, not in the run log alone: one inbox notice per notify step for each ops
user, one tag, one to-do, one priority change per order, and every run completed with one row per step.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.codec import data_converter
from core.config import Settings
from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from core.secrets import with_local_secrets
from dev.seed import seed
from dev.stack import children_of
from models.status import Role
from models.tables import AutomationStep, Notification, SalesOrder, Task, User
from services import order_commands
from services.automation import store
from services.automation.dispatcher import LEASE
from tests.conftest import binary
from tests.e2e.test_worker_killed import terminate_all
from tests.support.orders import make_order
from tests.support.worker_process import WorkerProcesses, worker_env
from workflows import contract
from workflows.steps import AUTOMATING

ORDERS = 12
RULE = {
    "name": "six-step-sequence",
    "trigger": {"type": "order_created"},
    "then": [
        {"notify": {"to": "role:ops", "channels": ["internal"], "text": "first word on {order_no}"}},
        {"set": {"field": "tag", "value": "seen"}},
        {"todo": {"role": "ops", "title": "look at {order_no}"}},
        {"wait": "1m"},
        {"set": {"field": "priority", "value": "high"}},
        {"notify": {"to": "role:ops", "channels": ["internal"], "text": "last word on {order_no}"}},
    ],
}
STEPS = len(RULE["then"])
KILLS = 2
# A kill's wait: runs the killed worker held come back only after their start-to-close (30 s), under load later.
KILL_WAIT = 90.0
SETTLE_WAIT = AUTOMATING.start_to_close.total_seconds() + LEASE.total_seconds() + 60 + 40  # + the wait
BUDGET = 60 + KILLS * KILL_WAIT + SETTLE_WAIT + 30


def prepare(url: str) -> int:
    """The database with the one rule in force (the defaults are stored disabled: only this rule fires); returns
    how many ops users the notices go to."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        seed(engine, console_passwords=False)
        store.load_file(engine, Settings().automations_file, by="test", now=_now())
        with unit_of_work(engine) as session:
            for stored in store.current(session):
                store.set_enabled(session, stored.rule.name, False, by="test", now=_now())
            store.save(session, RULE, by="test", note="test", now=_now())
            return len(session.exec(select(User).where(User.role == Role.OPS.value)).all())
    finally:
        engine.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


def done_steps(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM automation_steps WHERE state = 'done'").fetchone()[0])


def kill_when(worker: Any, db_path: Path, at_least: int, timeout: float, workers: WorkerProcesses) -> int:
    """SIGKILL the worker as soon as `at_least` steps are done (a tight read loop, so runs are mid-flight)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None, timeout=10)
    deadline = time.monotonic() + timeout
    try:
        while (done := done_steps(db)) < at_least:
            if worker.poll() is not None:
                raise AssertionError(f"the worker died on its own\n{workers.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"only {done} steps done after {timeout:.0f}s\n{workers.tail()}")
            time.sleep(0.001)
        dispatcher = children_of(worker.pid)  # its outbox process: the automation dispatcher, the notice relay
        assert len(dispatcher) == 1, dispatcher
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        db.close()
    worker.wait(timeout=10)
    # The kernel takes the outbox process with it: no orphan keeps firing beside the next worker.
    deadline = time.monotonic() + 5
    while Path(f"/proc/{dispatcher[0]}").exists() and _alive(dispatcher[0]):
        assert time.monotonic() < deadline, f"dispatcher {dispatcher[0]} outlived its worker"
        time.sleep(0.01)
    return done


def _alive(pid: int) -> bool:
    """Running (not a zombie waiting for its reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.timeout(BUDGET)
async def test_a_worker_killed_mid_sequence_does_every_action_exactly_once(tmp_path: Path) -> None:
    db_path = tmp_path / "orderflow.db"
    url = f"sqlite:///{db_path}"
    ops_users = prepare(url)
    assert ops_users >= 1
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        search_attributes=contract.SEARCH_ATTRIBUTES,
        data_converter=data_converter(with_local_secrets(Settings(state_dir=tmp_path))),
    )
    client = env.client
    task_queue = "killed-automation"
    workers = WorkerProcesses(
        worker_env(
            temporal_address=client.service_client.config.target_host,
            database_url=url,
            task_queue=task_queue,
            state_dir=tmp_path,
            automation_interval="0.1",
        ),
        tmp_path,
    )
    handles: list[WorkflowHandle[Any, Any]] = []
    numbers = [f"AKILL-{i:03d}" for i in range(1, ORDERS + 1)]
    try:
        for number in numbers:
            handles.append(await order_commands.start(client, make_order(number), task_queue))
        seen = []
        # First kill: the first step of some run has committed; the rest of the runs are starting or mid-step.
        # Second kill: a third of all steps done — some runs inside their durable wait, some mid-activity.
        for at_least in (1, ORDERS * STEPS // 3):
            worker = workers.start()
            seen.append(await asyncio.to_thread(kill_when, worker, db_path, at_least, KILL_WAIT, workers))
        assert seen[-1] < ORDERS * STEPS, "every step was done before the last kill: it proved nothing"
        last = workers.start()

        probe = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None, timeout=10)
        deadline = time.monotonic() + SETTLE_WAIT
        while True:
            states = Counter(s for (s,) in probe.execute("SELECT state FROM automation_runs"))
            if states == {"completed": ORDERS}:
                break
            assert time.monotonic() < deadline, f"runs did not all complete: {states}\n{workers.tail()}"
            await asyncio.sleep(0.2)
        probe.close()
        # The other way round: its outbox process killed, the worker stops too (rc 1), for a supervisor to
        # restart the pair — never a worker left running with nobody sending notices or firing rules.
        [outboxes] = children_of(last.pid)
        # Background work: niced below the worker (ORDERFLOW_OUTBOX_NICE, 10), so orders go first on a busy machine.
        assert os.getpriority(os.PRIO_PROCESS, outboxes) == os.getpriority(os.PRIO_PROCESS, last.pid) + 10
        os.kill(outboxes, signal.SIGKILL)
        assert await asyncio.to_thread(last.wait, 30) == 1, workers.tail()
    finally:
        await terminate_all(handles)
        workers.stop_all()
        await env.shutdown()

    engine = make_engine(url)
    try:
        with unit_of_work(engine) as session:
            notices = session.exec(select(Notification).where(Notification.channel == "internal")).all()
            tasks = session.exec(select(Task)).all()
            steps = [(s.run_id, s.attempt, s.position, s.state) for s in session.exec(select(AutomationStep))]
            orders = {order.order_no: order for order in session.exec(select(SalesOrder))}
    finally:
        engine.dispose()
    words = Counter((n.order_no, n.body.split(" on ")[0]) for n in notices if "word on" in n.body)
    assert words == {(no, word): ops_users for no in numbers for word in ("first word", "last word")}
    assert Counter(task.order_no for task in tasks) == dict.fromkeys(numbers, 1)
    assert all(orders[no].tags == ["seen"] and orders[no].priority == "high" for no in numbers)
    assert Counter(position for _, _, position, state in steps if state == "done") == dict.fromkeys(
        range(STEPS), ORDERS
    )
    assert len({(run, attempt, position) for run, attempt, position, _ in steps}) == len(steps)
