"""Scheduled automations: one Temporal Schedule per enabled schedule rule, and the "get data" query it runs.

The schedule (id `automation-<rule>`, cron and time zone from the rule; Temporal computes the fire times, so a
daily 20:00 Asia/Shanghai is 12:00 UTC all year) starts an AutomationSchedule workflow, whose one activity runs the
rule's `find` and writes the firing to the event outbox: one event with the found orders as a digest, or one per
found order. The dispatcher then fires the rule like any other (run log, exactly once per firing).
`sync` makes Temporal's schedules match the rules in force: the worker calls it at start and whenever a rule is
saved, so a schedule rule edited in the console takes effect without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlmodel import Session, col, select
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from domain.durations import parse_duration
from models.contracts import ScheduleFire
from models.tables import SalesOrder
from rules.automation import EventKind, Find
from rules.automation import Schedule as ScheduleTrigger
from services.automation import store
from services.automation.events import record_event

log = structlog.get_logger(__name__)

SCHEDULE_PREFIX = "automation-"
SCHEDULE_WORKFLOW = "AutomationSchedule"


def schedule_id(rule: str) -> str:
    return f"{SCHEDULE_PREFIX}{rule}"


def found_orders(session: Session, find: Find, now: datetime) -> list[SalesOrder]:
    """The orders a scheduled rule looks at: in one of the statuses (for at least `older_than`), oldest first."""
    query = select(SalesOrder).where(col(SalesOrder.status).in_([status.value for status in find.status]))
    if find.older_than:
        query = query.where(col(SalesOrder.updated_at) <= now - parse_duration(find.older_than))
    if find.channel:
        query = query.where(SalesOrder.channel == find.channel)
    return list(session.exec(query.order_by(col(SalesOrder.updated_at)).limit(find.limit)).all())


def digest_line(order: SalesOrder, now: datetime) -> str:
    hours = int((now - order.updated_at).total_seconds() // 3600)
    return f"{order.order_no} · {order.status} · {hours} h · {order.total:,.2f} {order.currency} · {order.customer_id}"


def record_firing(session: Session, fire: ScheduleFire, firing_id: str, now: datetime) -> int:
    """The schedule fired (`firing_id`: its workflow's id, one per fire time): the events for the dispatcher."""
    stored = store.version_of(session, fire.rule, fire.version)
    if stored is None or not isinstance(stored.rule.trigger, ScheduleTrigger):
        return 0
    trigger = stored.rule.trigger
    orders = found_orders(session, trigger.find, now)
    if trigger.digest:
        data = {
            "rule": fire.rule,
            "order_nos": [order.order_no for order in orders],
            "lines": [digest_line(order, now) for order in orders],
        }
        record_event(session, EventKind.SCHEDULE, f"schedule:{fire.rule}", f"schedule:{firing_id}", data, now)
        return 1
    for order in orders:
        key = f"schedule:{firing_id}:{order.order_no}"
        record_event(session, EventKind.SCHEDULE, order.order_no, key, {"rule": fire.rule}, now)
    return len(orders)


def _schedule(rule: store.StoredRule, task_queue: str) -> Schedule:
    trigger = rule.rule.trigger
    assert isinstance(trigger, ScheduleTrigger)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULE_WORKFLOW,
            ScheduleFire(rule=rule.rule.name, version=rule.version),
            id=schedule_id(rule.rule.name),  # Temporal adds the fire time: one workflow per firing
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[trigger.cron], time_zone_name=trigger.time_zone),
        # A firing missed while Temporal was down runs once when it is back (within a day), never twice.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=parse_duration("1d")),
    )


async def sync(client: Client, rules: Sequence[store.StoredRule], task_queue: str) -> list[str]:
    """Create, update or delete the rules' schedules so that exactly the enabled schedule rules have one, at
    their version; returns the schedule ids in force."""
    wanted = {
        schedule_id(stored.rule.name): stored
        for stored in rules
        if stored.rule.enabled and isinstance(stored.rule.trigger, ScheduleTrigger)
    }
    existing = set()
    async for listed in await client.list_schedules():
        if listed.id.startswith(SCHEDULE_PREFIX):
            existing.add(listed.id)
    for gone in sorted(existing - set(wanted)):
        await client.get_schedule_handle(gone).delete()
        log.info("automation schedule removed", schedule=gone)
    for sid, stored in sorted(wanted.items()):
        schedule = _schedule(stored, task_queue)
        try:
            await client.create_schedule(sid, schedule)
            log.info("automation schedule created", schedule=sid, version=stored.version)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(sid).update(replace)
    return sorted(wanted)


async def sync_quietly(client: Client, rules: Sequence[store.StoredRule], task_queue: str) -> None:
    """`sync`, logging instead of raising: a server without schedules (the time-skipping test server) or a
    Temporal outage must not stop the dispatcher; the next rule change or restart syncs again."""
    try:
        await sync(client, rules, task_queue)
    except RPCError as exc:
        level = log.info if exc.status == RPCStatusCode.UNIMPLEMENTED else log.warning
        level("automation schedules not synced", error=exc.message)
