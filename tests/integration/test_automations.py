"""Automations end to end (issue 12): rules as data fire on real orders through the event outbox, the dispatcher and
AutomationRun workflows on the time-skipping server — once per event, never in a loop, pinned to their version,
failed when a step failed, and retried from the failed step."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy import event as sqla_event
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.config import Settings
from core.db import unit_of_work
from integrations.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from models.status import OrderStatus
from models.tables import (
    AutomationEvent,
    AutomationRun,
    AutomationStep,
    PurchaseRequisition,
    SalesOrder,
    Shipment,
    Task,
    User,
)
from rules.automation import EventKind
from services import order_commands
from services.automation import dispatcher as dispatcher_module
from services.automation import runs as run_log
from services.automation.dispatcher import forget_runs
from services.automation.facts import SubjectGone, facts, preload
from tests.support.automations import dispatching, notices_of, runs_of, save_rules, steps_of, wait_for_run
from tests.support.cleanup import StartedOrders
from tests.support.orders import make_order
from tests.support.read_model import add_order
from tests.support.waiting import wait_for_status
from tests.support.webhook_receiver import running_webhook_receiver
from worker import running_worker

BIG = [("SKU-1001", 60, "199.00")]  # 11,940.00: over 10,000, so finance approves it


def number(prefix: str) -> str:
    return f"T-{prefix}-{uuid.uuid4().hex[:8]}"


def tasks(engine: Engine) -> list[Task]:
    with Session(engine) as session:
        return list(session.exec(select(Task).order_by(col(Task.id))).all())


@pytest.mark.parametrize("immediate", [True, False], ids=["at-once", "as-workflows"])
async def test_new_orders_tell_the_sales_rep_and_big_ones_open_a_director_todo(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders, immediate: bool
) -> None:
    small, big = number("SMALL"), number("BIG")
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, defaults=True, immediate=immediate) as dispatcher,
    ):
        await orders.start(make_order(small), task_queue)
        await orders.start(make_order(big, BIG), task_queue)
        for order_no in (small, big):
            await wait_for_run(engine, "new-order-tell-sales-rep", order_no, "completed")
        todo_run = await wait_for_run(engine, "big-order-director-todo", big, "completed")
    # Database-only firings are done in the dispatcher's transaction, or each as an AutomationRun workflow.
    assert dispatcher.done_at_once == (3 if immediate else 0)
    if not immediate:
        described = await client.get_workflow_handle(todo_run.run_id).describe()
        assert described.workflow_type == "AutomationRun"

    told = notices_of(engine, "new-order-tell-sales-rep")
    # Her console inbox, and the e-mail she chose to get notices by (the seed's choice).
    assert sorted((n.order_no, n.recipient, n.channel) for n in told) == sorted(
        (no, *where)
        for no in (small, big)
        for where in [("alice", "internal"), ("alice@staff.orderflow.test", "email")]
    )
    big_notice = next(n for n in told if n.order_no == big and n.channel == "email")
    assert big_notice.subject == f"New order {big}"
    assert "11,940.00 CNY (web)" in big_notice.body
    # Only the big order crossed 10,000: one to-do, for the finance director's role, due in a day.
    assert runs_of(engine, "big-order-director-todo", small) == []
    [todo] = tasks(engine)
    assert (todo.role, todo.order_no, todo.source, todo.state) == (
        "finance_director",
        big,
        "big-order-director-todo",
        "open",
    )
    assert todo.title.startswith(f"Look at {big}: 11,940.00 CNY from ")
    assert todo.due_at is not None and todo.due_at - todo.created_at == timedelta(days=1)
    # The run log: the facts it saw, the branch, each step done.
    assert todo_run.facts["total"] == "11940.00" and todo_run.branch == 0
    [step] = steps_of(engine, todo_run.run_id)
    assert (step.position, step.action, step.state) == (0, "todo", "done")


async def test_the_same_event_delivered_three_times_fires_once(
    client: Client, sqlite_engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    engine = sqlite_engine
    order_no = number("DUP")
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, defaults=True) as dispatcher,
    ):
        await orders.start(make_order(order_no), task_queue)
        await wait_for_run(engine, "new-order-tell-sales-rep", order_no, "completed")
        # Delivered again, twice: the event comes back unhandled (a dispatcher killed before it marked it, or a
        # second worker's dispatcher) and is dispatched anew.
        for _ in range(2):
            with Session(engine) as session:
                session.exec(
                    update(AutomationEvent)
                    .where(col(AutomationEvent.key) == f"created:{order_no}")
                    .values(handled_at=None, claimed_until=None)
                )
                session.commit()
            passes = dispatcher.passes
            while dispatcher.passes == passes:
                await dispatcher.pass_once()
    assert len(runs_of(engine, "new-order-tell-sales-rep", order_no)) == 1
    assert [n.channel for n in notices_of(engine, "new-order-tell-sales-rep")] == ["internal", "email"]


async def test_a_rule_that_changes_the_field_it_watches_does_not_loop(
    client: Client, sqlite_engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    engine = sqlite_engine
    tag_new = {
        "name": "tag-new-orders",
        "trigger": {"type": "order_created"},
        "then": [{"set": {"field": "tag", "value": "new"}}],
    }
    # Watches tags and changes tags: without the loop cut it would fire on its own change forever.
    retag = {
        "name": "tag-tagged-orders",
        "trigger": {"type": "field_changed", "field": "tags"},
        "then": [{"set": {"field": "tag", "value": "seen-{new_value}"}}],
    }
    order_no = number("LOOP")
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, [tag_new, retag]) as dispatcher,
    ):
        await orders.start(make_order(order_no), task_queue)
        await wait_for_run(engine, "tag-tagged-orders", order_no, "completed")
        for _ in range(10):  # give a loop every chance to show itself
            await dispatcher.pass_once()
    assert len(runs_of(engine, "tag-new-orders", order_no)) == 1
    assert len(runs_of(engine, "tag-tagged-orders", order_no)) == 1
    with Session(engine) as session:
        order = session.get(SalesOrder, order_no)
        assert order is not None and order.tags == ["new", "seen-new"]
        caused = session.exec(select(AutomationEvent).where(col(AutomationEvent.caused_by) != [])).all()
    # Each change names the rules behind it; the second one is where the chain stopped.
    assert sorted(event.caused_by for event in caused) == [["tag-new-orders"], ["tag-new-orders", "tag-tagged-orders"]]
    assert all(event.handled_at is not None for event in caused)


async def test_a_failing_webhook_fails_the_run_and_a_retry_from_the_failed_step_completes_it(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    order_no = number("HOOK")
    with running_webhook_receiver() as receiver:
        rule = {
            "name": "tell-the-erp",
            "trigger": {"type": "order_created"},
            "then": [
                {"notify": {"to": "role:ops", "text": "{order_no} is in"}},
                {"webhook": {"url": receiver.url + "/orders"}},
            ],
        }
        receiver.failing_status = 503
        async with running_worker(client, engine, settings, task_queue), dispatching(engine, client, settings, [rule]):
            await orders.start(make_order(order_no), task_queue)
            failed = await wait_for_run(engine, "tell-the-erp", order_no, "failed", timeout=60)
            assert failed.error is not None and "HTTP 503" in failed.error
            assert len(receiver.got()) == 5  # tried with backoff, then given up
            notify_step, hook_step = steps_of(engine, failed.run_id)
            assert (notify_step.state, hook_step.state) == ("done", "failed")
            assert "HTTP 503" in hook_step.detail

            receiver.failing_status = None
            await run_log.retry(engine, client, failed.run_id, from_start=False, task_queue=task_queue)
            done = await wait_for_run(engine, "tell-the-erp", order_no, "completed")

    assert done.attempt == 1
    retried = [step for step in steps_of(engine, done.run_id) if step.attempt == 1]
    assert [(step.position, step.state) for step in retried] == [(1, "done")]  # the notice was not sent again
    assert [n.recipient for n in notices_of(engine, "tell-the-erp") if n.channel == "internal"] == ["olga"]
    delivery = receiver.got()[-1]
    assert verify(settings.automation_webhook_secret, delivery.body, delivery.headers[SIGNATURE_HEADER])
    assert delivery.headers[DELIVERY_HEADER] == f"{done.run_id}:a1:s1"
    document: dict[str, Any] = json.loads(delivery.body)
    assert (document["rule"], document["subject"], document["facts"]["order_no"]) == (
        "tell-the-erp",
        order_no,
        order_no,
    )


async def test_editing_a_rule_while_runs_wait_keeps_their_version(
    client: Client,
    sqlite_engine: Engine,
    settings: Settings,
    task_queue: str,
    orders: StartedOrders,
    time_env: WorkflowEnvironment,
) -> None:
    engine = sqlite_engine

    def rule(text: str) -> dict[str, Any]:
        return {
            "name": "later-note",
            "trigger": {"type": "order_created"},
            "then": [{"wait": "1h"}, {"notify": {"to": "role:ops", "text": text}}],
        }

    first, second = number("V1"), number("V2")
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, [rule("v1 says {order_no}")]),
    ):
        await orders.start(make_order(first), task_queue)
        waiting = await wait_for_run(engine, "later-note", first, "waiting")
        [saved] = save_rules(engine, [rule("v2 says {order_no}")])
        assert saved.version == 2
        await orders.start(make_order(second), task_queue)
        await wait_for_run(engine, "later-note", second, "waiting")
        await time_env.sleep(timedelta(hours=1, minutes=1))
        for order_no in (first, second):
            await wait_for_run(engine, "later-note", order_no, "completed")

    assert waiting.version == 1 and runs_of(engine, "later-note", second)[0].version == 2
    internal = [n.body for n in notices_of(engine, "later-note") if n.channel == "internal"]
    assert sorted(internal) == [f"v1 says {first}", f"v2 says {second}"]


async def test_an_order_still_waiting_4h_for_approval_nudges_ops_and_a_decided_one_does_not(
    client: Client,
    sqlite_engine: Engine,
    settings: Settings,
    task_queue: str,
    orders: StartedOrders,
    time_env: WorkflowEnvironment,
) -> None:
    engine = sqlite_engine
    waits, decided = number("WAITS"), number("DECIDED")
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, defaults=True),
    ):
        handles = [await orders.start(make_order(no, BIG), task_queue) for no in (waits, decided)]
        for handle in handles:
            await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        for order_no in (waits, decided):
            await wait_for_run(engine, "approval-waiting-4h", order_no, "waiting")
        await order_commands.decide(
            client, engine, decided, user="fiona", decision="approve", comment="", secret=settings.decision_secret
        )
        await time_env.sleep(timedelta(hours=4, minutes=1))
        nudged = await wait_for_run(engine, "approval-waiting-4h", waits, "completed")
        skipped = await wait_for_run(engine, "approval-waiting-4h", decided, "skipped")

    [notice] = [n for n in notices_of(engine, "approval-waiting-4h") if n.channel == "internal"]
    assert (notice.order_no, notice.recipient, notice.subject) == (waits, "olga", f"{waits} waits for finance")
    assert nudged.facts["status"] == "AWAITING_APPROVAL"
    assert skipped.facts["status"] != "AWAITING_APPROVAL"
    [after] = steps_of(engine, skipped.run_id)
    assert (after.position, after.state) == (-1, "skipped")


async def test_stock_falling_below_50_opens_a_requisition_and_tells_purchasing(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    # SKU-1016 (网线 10m, 39.00) has 280 in Shanghai: taking 240 leaves 40, under 50.
    order_no = number("LOW")
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, defaults=True),
    ):
        handle = await orders.start(make_order(order_no, [("SKU-1016", 240, "39.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.PICKING)
        run = await wait_for_run(engine, "low-stock-requisition", "SKU-1016@WH-SH", "completed")

    assert (run.facts["available_before"], run.facts["available"]) == (280, 40)
    with Session(engine) as session:
        [requisition] = session.exec(select(PurchaseRequisition).where(PurchaseRequisition.sku == "SKU-1016")).all()
    assert (requisition.warehouse, requisition.qty, requisition.state) == ("WH-SH", 10, "open")
    [notice] = [n for n in notices_of(engine, "low-stock-requisition") if n.channel == "internal"]
    assert (notice.recipient, notice.subject) == ("olga", "SKU-1016 below 50 at WH-SH")
    assert "is down to 40 at WH-SH" in notice.body


def test_the_run_log_keeps_runs_unless_a_retention_is_set(engine: Engine) -> None:
    now = datetime.now(UTC)

    def run(run_id: str, finished: datetime | None) -> AutomationRun:
        return AutomationRun(
            run_id=run_id, rule="r", version=1, subject="S", trigger="order_created", event_key=run_id,
            state="completed" if finished else "waiting", started_at=now - timedelta(days=400), finished_at=finished,
        )  # fmt: skip

    with Session(engine) as session:
        session.add_all([run("old", now - timedelta(days=400)), run("recent", now), run("waiting", None)])
        session.add(AutomationStep(run_id="old", attempt=0, position=0, action="notify", state="done"))
        session.commit()
        forget_runs(session, now - timedelta(days=365))
        session.commit()
        kept = sorted(session.exec(select(AutomationRun.run_id)).all())
        steps = session.exec(select(AutomationStep)).all()
    assert kept == ["recent", "waiting"] and steps == []


async def test_an_immediate_firing_refused_at_a_step_is_failed_there_and_a_retry_completes_it(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    """Done in the dispatcher's transaction: the step before stays done, the refused one fails the run (never
    completed), and the retry — a workflow, attempt 1 — does only the failed step."""
    order_no = number("REFUSED")
    rule = {
        "name": "tag-then-tell-nobody",
        "trigger": {"type": "order_created"},
        "then": [
            {"set": {"field": "tag", "value": "seen"}},
            {"notify": {"to": "user:zoe", "text": "{order_no} is in"}},  # no such user yet
        ],
    }
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, [rule]) as dispatcher,
    ):
        await orders.start(make_order(order_no), task_queue)
        failed = await wait_for_run(engine, "tag-then-tell-nobody", order_no, "failed")
        assert failed.error is not None and "nobody to notify" in failed.error
        tag_step, notify_step = steps_of(engine, failed.run_id)
        assert (tag_step.state, notify_step.state) == ("done", "failed")
        # The event delivered again: the run's row says it failed — nothing is done again (people retry it).
        with Session(engine) as session:
            session.exec(
                update(AutomationEvent)
                .where(col(AutomationEvent.key) == f"created:{order_no}")
                .values(handled_at=None, claimed_until=None)
            )
            session.commit()
        passes = dispatcher.passes
        while dispatcher.passes == passes:
            await dispatcher.pass_once()
        assert [(s.attempt, s.state) for s in steps_of(engine, failed.run_id)] == [(0, "done"), (0, "failed")]

        with unit_of_work(engine) as session:
            session.add(User(name="zoe", role="ops", token_hash="-"))
        await run_log.retry(engine, client, failed.run_id, from_start=False, task_queue=task_queue)
        done = await wait_for_run(engine, "tag-then-tell-nobody", order_no, "completed")

    assert dispatcher.done_at_once == 1  # the first attempt; the retry is a workflow
    assert [(s.attempt, s.position, s.state) for s in steps_of(engine, done.run_id)] == [
        (0, 0, "done"),
        (0, 1, "failed"),
        (1, 1, "done"),
    ]
    with Session(engine) as session:
        order = session.get(SalesOrder, order_no)
        assert order is not None and order.tags == ["seen"]  # set once
    assert [n.recipient for n in notices_of(engine, "tag-then-tell-nobody")] == ["zoe"]


async def test_firings_that_cannot_be_done_at_once_run_as_workflows(
    client: Client,
    sqlite_engine: Engine,
    settings: Settings,
    task_queue: str,
    orders: StartedOrders,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dispatcher's write transaction fails (here: an injected error in the first firing): nothing of it
    stays, and every firing of the pass goes to an AutomationRun workflow instead, done once."""
    engine = sqlite_engine
    real = dispatcher_module.run_now
    broken: list[str] = []

    def run_now_once_broken(session: Session, firing: Any, now: datetime, *, lock: bool, notices: Any) -> Any:
        if not broken:
            broken.append(firing.row["run_id"])
            real(session, firing, now, lock=lock, notices=notices)  # its effects are written, then the tx fails
            raise RuntimeError("injected: the transaction breaks")
        return real(session, firing, now, lock=lock, notices=notices)

    monkeypatch.setattr(dispatcher_module, "run_now", run_now_once_broken)
    order_no = number("FALLBACK")
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, defaults=True) as dispatcher,
    ):
        await orders.start(make_order(order_no), task_queue)
        await wait_for_run(engine, "new-order-tell-sales-rep", order_no, "completed")
        [broken_id] = broken
        with Session(engine) as session:
            first = session.get(AutomationRun, broken_id)
            assert first is not None
        await wait_for_run(engine, first.rule, first.subject, "completed")
    # The workflow did the steps (the rolled-back attempt left none): each action once, done.
    steps = steps_of(engine, broken_id)
    assert steps and [(step.attempt, step.position, step.state) for step in steps] == [
        (0, position, "done") for position in range(len(steps))
    ]
    described = await client.get_workflow_handle(broken_id).describe()
    assert described.workflow_type == "AutomationRun"
    assert dispatcher.started >= 1
    assert [n.channel for n in notices_of(engine, "new-order-tell-sales-rep") if n.order_no == order_no] == [
        "internal",
        "email",
    ]


def test_a_pass_reads_its_orders_in_one_query_per_table_and_sees_what_each_order_alone_shows(engine: Engine) -> None:
    """The dispatcher's preload (orders, customers, parcels of a whole pass) gives every event the facts a read
    of its own order gives — the latest parcel first, everyone who signed — and an order that is gone is gone."""
    now = datetime.now(UTC)
    numbers = [number("PRELOAD") for _ in range(3)]
    for no in numbers:
        add_order(engine, no, rep="alice", sku="SKU-1001")
    with unit_of_work(engine) as session:
        for hours, tracking_no, signed_by in [(2, "P-OLD", "王五"), (1, "P-NEW", None)]:
            session.add(
                Shipment(order_no=numbers[0], warehouse="WH-SH", carrier="sim", tracking_no=tracking_no,
                         signed_by=signed_by, dispatched_at=now - timedelta(hours=hours))
            )  # fmt: skip
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    with Session(engine) as session:
        alone = [facts(session, EventKind.ORDER_CREATED, no, {}, rule="r", now=now) for no in numbers]
        sqla_event.listen(engine, "before_cursor_execute", count)
        try:
            preloaded = preload(session, [*numbers, "NOT-THERE"])
            together = [
                facts(session, EventKind.ORDER_CREATED, no, {}, rule="r", now=now, preloaded=preloaded)
                for no in numbers
            ]
            with pytest.raises(SubjectGone):
                facts(session, EventKind.ORDER_CREATED, "NOT-THERE", {}, rule="r", now=now, preloaded=preloaded)
        finally:
            sqla_event.remove(engine, "before_cursor_execute", count)
    assert together == alone
    assert alone[0]["tracking_no"] == "P-NEW" and alone[0]["signed_by"] == "王五" and alone[1]["tracking_no"] == ""
    assert len(statements) == 3, statements  # orders, customers, parcels: none per event
