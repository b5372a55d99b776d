"""What an automation's actions do in the database, and the run log they leave — each exactly once.

Every action is keyed on (run, attempt, position) — never on the activity's attempt — and writes its effect and
its step row in one transaction: a retried activity finds the step done and does nothing again; a killed worker
leaves either both or neither. Outgoing webhooks and order signals (activities/automation.py) cannot share a
transaction with the far end; they record their step right after it answered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlmodel import Session, select

from domain.durations import parse_duration
from domain.replenishment import Need
from models.contracts import RunRef, StepRecord
from models.tables import AutomationRun, AutomationStep, Notification, SalesOrder, Task
from rules.automation import Action, EventKind, Notify, Requisition, SetField, Todo, render
from services.automation.events import record_event
from services.automation.facts import SubjectGone, order_parcels
from services.notify.recipients import Recipient, staff_recipients, user_recipients
from services.notify.writer import NoticeWriter, customer_recipients
from services.replenishment import request_stock

ACTION = TypeAdapter(Action)
DETAIL_MAX = 2000


class ActionRefused(ValueError):
    """The action cannot be done on this subject, and trying again will not change that (the step fails)."""


def parse_action(raw: Mapping[str, Any]) -> Any:
    return ACTION.validate_python(dict(raw))


def step_key(run: RunRef, position: int) -> str:
    return f"{run.run_id}:a{run.attempt}:s{position}"


def done_detail(session: Session, run: RunRef, position: int) -> str | None:
    """The detail of this step when it is already done (a retried activity), else None."""
    return session.exec(
        select(AutomationStep.detail).where(
            AutomationStep.run_id == run.run_id,
            AutomationStep.attempt == run.attempt,
            AutomationStep.position == position,
            AutomationStep.state == "done",
        )
    ).first()


def perform(
    session: Session,
    run: RunRef,
    position: int,
    action: Any,
    values: Mapping[str, Any],
    now: datetime,
    *,
    lock: bool,
    notices: NoticeWriter,
) -> str:
    """Do one database action (notify, todo, set, requisition) in the caller's unit of work; what it did."""
    key = step_key(run, position)
    if isinstance(action, Notify):
        if action.template is not None:
            return _notify_templated(session, run, key, action, values, now, notices)
        return _notify(session, run, key, action, values)
    if isinstance(action, Todo):
        return _todo(session, run, key, action, values, now)
    if isinstance(action, SetField):
        return _set_field(session, run, key, action, values, now)
    if isinstance(action, Requisition):
        return _requisition(session, run, action, values, lock=lock)
    raise ActionRefused(f"{type(action).__name__} is not a database action")


@dataclass
class SequenceDone:
    """A sequence done in the caller's unit of work: the run's end state and its steps' rows, for the caller to
    write with the run's row (a dispatcher pass writes all of its runs' rows in one statement per table)."""

    state: str  # completed | failed
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def perform_sequence(
    session: Session,
    run: RunRef,
    actions: Sequence[Mapping[str, Any]],
    values: Mapping[str, Any],
    now: datetime,
    *,
    lock: bool,
    notices: NoticeWriter,
    reread: Callable[[], Mapping[str, Any]],
) -> SequenceDone:
    """Do a sequence of database actions in the caller's unit of work, for a run that has no steps yet: completed,
    or failed at the step that refused (the steps before it done). Every action refuses before it writes
    anything, so a failed step leaves no half effect. After a `set`, later steps see the facts anew (`reread`),
    as they would in a workflow."""
    done = SequenceDone("completed")
    stale = False
    for position, raw in enumerate(actions):
        action = parse_action(raw)
        step = {
            "run_id": run.run_id,
            "attempt": run.attempt,
            "position": position,
            "action": str(raw["type"]),
            "at": now,
        }
        try:
            if stale:
                values, stale = reread(), False
            detail = perform(session, run, position, action, values, now, lock=lock, notices=notices)
        except (ActionRefused, SubjectGone) as exc:
            done.steps.append({**step, "state": "failed", "detail": str(exc)[:DETAIL_MAX]})
            done.state, done.error = "failed", str(exc)[:DETAIL_MAX]
            return done
        done.steps.append({**step, "state": "done", "detail": detail[:DETAIL_MAX]})
        stale = isinstance(action, SetField)
    return done


def record_step(session: Session, record: StepRecord, now: datetime) -> None:
    """Write (or move on) the step's row and, when given, the run's state. Idempotent: the same record twice
    leaves one row."""
    run = record.run
    row = session.exec(
        select(AutomationStep).where(
            AutomationStep.run_id == run.run_id,
            AutomationStep.attempt == run.attempt,
            AutomationStep.position == record.position,
        )
    ).first()
    if row is None:
        session.add(
            AutomationStep(
                run_id=run.run_id,
                attempt=run.attempt,
                position=record.position,
                action=record.action,
                state=record.state,
                detail=record.detail[:DETAIL_MAX],
                at=now,
            )
        )
    elif row.state != "done":  # a done step stays done (a late duplicate of a 'waiting' record)
        row.state, row.detail, row.at = record.state, record.detail[:DETAIL_MAX], now
        session.add(row)
    if record.run_state is not None:
        state_run(session, run.run_id, record.run_state, now, error=record.detail if record.state == "failed" else None)


def state_run(session: Session, run_id: str, state: str, now: datetime, *, error: str | None = None) -> None:
    found = session.get(AutomationRun, run_id)
    if found is None:
        return
    found.state = state
    found.finished_at = now if state in ("completed", "failed", "skipped") else None
    found.error = error[:DETAIL_MAX] if error else None
    session.add(found)


# --- the actions ---------------------------------------------------------------------------------


def _notify(session: Session, run: RunRef, key: str, action: Notify, values: Mapping[str, Any]) -> str:
    recipients = _recipients(session, run, action.to, values)
    if action.channels is not None:
        recipients = [recipient for recipient in recipients if recipient[0] in action.channels]
    if not recipients:
        if action.to == "customer":
            return "the customer has no e-mail address or phone on file: nothing sent"
        raise ActionRefused(f"nobody to notify for {action.to!r} on the channels asked for")
    subject = render(action.subject, values)[:200]
    text = render(action.text, values)[:4000]
    order_no = str(values.get("order_no") or run.subject)[:64]
    for channel, address, _user in recipients:
        session.add(
            Notification(
                key="auto:" + hashlib.sha256(f"{key}|{channel}|{address}".encode()).hexdigest()[:40],
                order_no=order_no,
                kind=f"automation:{run.rule}"[:64],
                channel=channel,
                recipient=address,
                subject=subject,
                body=text,
            )
        )
    where = ", ".join(f"{channel} {address}" for channel, address, _ in recipients)
    return f"notified {where}: {subject or text[:80]}"


# The facts a notice template may use besides what the writer reads from the order (services/notify/templates.yaml).
TEMPLATE_FACTS = ("carrier", "tracking_no", "status", "signed_by")


def _notify_templated(
    session: Session,
    run: RunRef,
    key: str,
    action: Notify,
    values: Mapping[str, Any],
    now: datetime,
    notices: NoticeWriter,
) -> str:
    """The templates file's notice of that kind, written as the order workflow writes it (same texts and links,
    kept under the kind); keyed on the step."""
    assert action.template is not None
    kind = action.template.value
    order_no = run.subject
    if session.get(SalesOrder, order_no) is None:
        raise ActionRefused(f"order {order_no} is not in the database")
    recipients: list[Recipient] | None = None
    role: str | None = None
    if action.to == "sales_rep" or action.to.startswith("user:"):
        recipients = _recipients(session, run, action.to, values)
    elif action.to.startswith("role:"):
        role = action.to.partition(":")[2]
        recipients = staff_recipients(session, role)
    if recipients is not None and action.channels is not None:
        recipients = [recipient for recipient in recipients if recipient[0] in action.channels]
    if recipients == []:
        raise ActionRefused(f"nobody to notify for {action.to!r} on the channels asked for")
    variables = {name: str(values[name]) for name in TEMPLATE_FACTS if values.get(name) not in (None, "")}
    parcel = str(run.event_data.get("tracking_no") or "")
    if not parcel:  # about the order, not one parcel: all its parcels, as the order workflow named them
        numbers = ", ".join(p.tracking_no for p in reversed(order_parcels(session, order_no)))
        if numbers:
            variables["tracking_no"] = numbers
    variables.update({name: render(text, values) for name, text in (action.variables or {}).items()})
    # About one parcel (parcel_dispatched, tracking_event): the key the order workflow gives its per-parcel notices,
    # so each recipient hears once per parcel and kind whoever sends it (an order started before the rule took
    # over, a second rule). Otherwise the step's key, like any automation notice.
    suffix = parcel or "auto-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    written = notices.write(
        session,
        key=f"{order_no}:{kind}:{suffix}",
        order_no=order_no,
        kind=kind,
        now=now,
        customer=action.to == "customer",
        role=role,
        recipients=recipients,
        channels=action.channels,
        variables=variables,
    )
    if not written:
        return f"{kind} notice: nobody on file to send it to"
    return f"{kind} notice to " + ", ".join(f"{channel} {address}" for channel, address, _ in written)


def _recipients(session: Session, run: RunRef, to: str, values: Mapping[str, Any]) -> list[Recipient]:
    if to == "customer":
        order = session.get(SalesOrder, run.subject)
        if order is None:
            raise ActionRefused(f"order {run.subject} is not in the database")
        return customer_recipients(session, order)
    if to == "sales_rep":
        return user_recipients(session, str(values.get("sales_rep", "")))
    kind, _, who = to.partition(":")
    return staff_recipients(session, who) if kind == "role" else user_recipients(session, who)


def _todo(session: Session, run: RunRef, key: str, action: Todo, values: Mapping[str, Any], now: datetime) -> str:
    title = render(action.title, values)[:200]
    order_no = str(values["order_no"]) if values.get("order_no") else None
    due = now + parse_duration(action.due_in) if action.due_in else None
    task = Task(
        key=key[:200],
        title=title,
        role=action.role.value if action.role else None,
        user=action.user,
        subject=run.subject[:100],
        order_no=order_no,
        source=run.rule,
        due_at=due,
        created_at=now,
    )
    session.add(task)
    session.flush()
    holder = f"role {action.role.value}" if action.role else f"user {action.user}"
    return f"to-do #{task.id} for {holder}: {title}"


def _set_field(
    session: Session, run: RunRef, key: str, action: SetField, values: Mapping[str, Any], now: datetime
) -> str:
    order = session.get(SalesOrder, run.subject)
    if order is None:
        raise ActionRefused(f"order {run.subject} is not in the database")
    value = render(action.value, values)[:64]
    field = "tags" if action.field == "tag" else action.field
    if field == "tags":
        old = ", ".join(order.tags or [])
        if value in (order.tags or []):
            return f"tag {value!r} was already set"
        order.tags = [*(order.tags or []), value]
        new = ", ".join(order.tags)
    else:
        old = getattr(order, field)
        if old == value:
            return f"{field} was already {value!r}"
        setattr(order, field, value)
        new = value
    session.add(order)
    # The change is an event like any other, marked with the rules that caused it: this rule is never
    # triggered by it again on this order, and chains of rules stop (rules/automation.py may_fire).
    record_event(
        session,
        EventKind.FIELD_CHANGED,
        run.subject,
        f"field:{key}",
        {"field": field, "old_value": old, "new_value": new},
        now,
        caused_by=[*run.caused_by, run.rule],
    )
    return f"{field}: {old!r} → {new!r}"


def _requisition(session: Session, run: RunRef, action: Requisition, values: Mapping[str, Any], *, lock: bool) -> str:
    sku, warehouse = str(values.get("sku", "")), str(values.get("warehouse", ""))
    qty = action.qty or int(values.get("reorder_level", 0)) - int(values.get("available", 0))
    if qty <= 0:
        return f"{sku} at {warehouse} stands at its reorder level: nothing to ask for"
    opened = request_stock(
        session, [Need(sku, warehouse, qty, "reorder_point")], order_no=None, lock=lock, announce=False
    )
    if opened:
        return f"requisition #{opened[0].id}: {qty} x {sku} for {warehouse}"
    return f"an open requisition for {sku} at {warehouse} covers it (raised to {qty} if it asked for less)"
