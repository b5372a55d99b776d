"""The dry run: what a rule would do on a subject now — the event it would see, the facts, the branch that holds
and each action rendered — in a read-only transaction that touches nothing (`orderflow automations test`, the
console's "Dry run" button)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from domain.tracking import EXCEPTION_STATUSES
from models.status import TrackingStatus
from models.tables import SalesOrder
from rules.automation import (
    Automation,
    EventKind,
    FieldChanged,
    OrderCreated,
    ParcelDispatched,
    Schedule,
    StatusChanged,
    StockCrossed,
    TrackingEvent,
    plan,
)
from services.automation.dispatcher import json_facts
from services.automation.facts import SubjectGone, facts, latest_parcel
from services.automation.schedules import digest_line, found_orders
from services.notify.writer import NoticeWriter
from services.queries.availability import stock_levels

_KIND = {
    OrderCreated: EventKind.ORDER_CREATED,
    StatusChanged: EventKind.STATUS_CHANGED,
    FieldChanged: EventKind.FIELD_CHANGED,
    TrackingEvent: EventKind.TRACKING_EVENT,
    ParcelDispatched: EventKind.PARCEL_DISPATCHED,
    StockCrossed: EventKind.STOCK_LEVEL,
    Schedule: EventKind.SCHEDULE,
}


@dataclass(frozen=True)
class DryRun:
    rule: str
    subject: str
    event: str
    notes: list[str]
    facts: dict[str, Any]
    branch: int | None  # 1-based, as people count; None: no branch holds, nothing would happen
    actions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "subject": self.subject,
            "event": self.event,
            "notes": self.notes,
            "fires": self.branch is not None,
            "branch": self.branch,
            "actions": self.actions,
            "facts": self.facts,
        }


def dry_run(
    session: Session, rule: Automation, subject: str, now: datetime, notices: NoticeWriter | None = None
) -> DryRun:
    """Raises SubjectGone when the order (or SKU@warehouse) is unknown. With `notices`, a notify that names a
    template shows that template's texts for these facts."""
    trigger = rule.trigger
    kind = _KIND[type(trigger)]
    notes: list[str] = []
    data: dict[str, Any] = {}
    if isinstance(trigger, StockCrossed):
        data = _stock_now(session, subject, now)
        notes.append("the rule fires when a movement crosses the level; shown: the facts as they are now")
    elif isinstance(trigger, Schedule):
        notes.append(f"fires on cron {trigger.cron!r} in {trigger.time_zone}")
        if trigger.digest:
            orders = found_orders(session, trigger.find, now)
            subject = f"schedule:{rule.name}"
            data = {
                "rule": rule.name,
                "order_nos": [order.order_no for order in orders],
                "lines": [digest_line(order, now) for order in orders],
            }
    else:
        order = session.get(SalesOrder, subject)
        if order is None:
            raise SubjectGone(f"order {subject} is not in the database")
        data = _event_of(session, trigger, order)
    if trigger.delay is not None:
        notes.append(f"fires {trigger.after} after the event, with the facts as they are then; shown: as now")
    values = facts(session, kind, subject, data, rule=rule.name, now=now)
    planned = plan(rule, values)
    return DryRun(
        rule=rule.name,
        subject=subject,
        event=kind.value,
        notes=notes,
        facts=json_facts(values),
        branch=None if planned.branch is None else planned.branch + 1,
        actions=[_with_template(action, values, notices) for action in planned.actions],
    )


def _with_template(action: dict[str, Any], values: Mapping[str, Any], notices: NoticeWriter | None) -> dict[str, Any]:
    if action.get("type") != "notify" or not action.get("template") or notices is None:
        return action
    shown = {name: str(value) for name, value in values.items() if isinstance(value, str | int | Decimal)}
    return {**action, **notices.preview(str(action["template"]), shown)}


def _event_of(session: Session, trigger: Any, order: SalesOrder) -> dict[str, Any]:
    """The event the trigger listens for, as if it happened to the order now."""
    if isinstance(trigger, StatusChanged):
        to = trigger.to.value if trigger.to else order.status
        return {"from_status": trigger.from_.value if trigger.from_ else "", "to_status": to}
    if isinstance(trigger, FieldChanged):
        current = {"paid": str(order.paid).lower(), "tags": ", ".join(order.tags or [])}
        value = current.get(trigger.field, str(getattr(order, trigger.field, "")))
        return {"field": trigger.field, "old_value": "", "new_value": value}
    if isinstance(trigger, TrackingEvent):
        status = trigger.status.value if trigger.status else TrackingStatus.IN_TRANSIT.value
        exception = trigger.exception if trigger.exception is not None else TrackingStatus(status) in EXCEPTION_STATUSES
        return {"event_status": status, "exception": exception}
    if isinstance(trigger, ParcelDispatched):
        parcel = latest_parcel(session, order.order_no)
        if parcel is None:
            return {"tracking_no": "SF0000000000", "carrier": "sf", "warehouse": ""}  # as if one left now
        return {"tracking_no": parcel.tracking_no, "carrier": parcel.carrier, "warehouse": parcel.warehouse}
    return {}


def _stock_now(session: Session, subject: str, now: datetime) -> dict[str, Any]:
    sku, _, warehouse = subject.partition("@")
    if not sku or not warehouse:
        raise SubjectGone(f"{subject!r}: a stock rule's subject is SKU@WAREHOUSE, e.g. SKU-1016@WH-SH")
    levels = [level for level in stock_levels(session, now, [sku]) if level.lot.warehouse == warehouse]
    if not levels:
        raise SubjectGone(f"no stock of {sku} at {warehouse}")
    available = sum(max(level.available, 0) for level in levels)
    return {"sku": sku, "warehouse": warehouse, "available": available, "available_before": available}
