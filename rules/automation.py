"""Automations: the business's "IF … THEN …" rules as data — schema, validation, matching and planning, pure.

A rule has a trigger (what happened, or a schedule), branches (if / else-if / else, conditions in the one
expression language of rules/expressions.py over the trigger's documented fact set) and, per branch, a
sequence of actions whose texts are templates with {variables} in English or Chinese names ({order_no} or
{订单号}). Everything a rule names is checked when it is saved: an unknown fact, variable, role, status or
duration is an error naming the rule and the field, and the rule set in force stays as it was.

What runs a rule (the event outbox, the dispatcher, the AutomationRun workflow) lives in services/automation
and workflows/automation.py; this module only decides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.durations import parse_duration
from models.status import NoticeKind, OrderStatus, Role, TrackingStatus
from rules.expressions import Condition, ExpressionError, FactType, compile_condition
from rules.validation_errors import describe

MAX_ACTIONS = 20
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class AutomationError(ValueError):
    """A rule set that cannot be used; the message names the rule and the field."""


class EventKind(StrEnum):
    """What the event outbox records (services/automation/events.py writes them in the change's transaction)."""

    ORDER_CREATED = "order_created"
    STATUS_CHANGED = "status_changed"
    FIELD_CHANGED = "field_changed"
    TRACKING_EVENT = "tracking_event"
    STOCK_LEVEL = "stock_level"
    PARCEL_DISPATCHED = "parcel_dispatched"  # one per parcel handed to a carrier
    SCHEDULE = "schedule"  # a rule's Temporal Schedule fired (its found orders, or their digest)


# --- durations -----------------------------------------------------------------------------------

Duration = Annotated[str, Field(description="30m, 4h, 2d or 1w")]


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


# --- facts and variables -------------------------------------------------------------------------

ORDER_FACTS: dict[str, FactType] = {
    "order_no": FactType.TEXT,
    "status": FactType.TEXT,
    "channel": FactType.TEXT,
    "customer_id": FactType.TEXT,
    "customer_name": FactType.TEXT,
    "customer_email": FactType.TEXT,
    "region": FactType.TEXT,
    "sales_rep": FactType.TEXT,
    "order_type": FactType.TEXT,
    "payment_method": FactType.TEXT,
    "paid": FactType.FLAG,
    "total": FactType.NUMBER,
    "currency": FactType.TEXT,
    "line_count": FactType.NUMBER,
    "units": FactType.NUMBER,
    "skus": FactType.TEXTS,
    "tags": FactType.TEXTS,
    "priority": FactType.TEXT,
    "assignee": FactType.TEXT,
    "hours_in_status": FactType.NUMBER,
    "awaiting_role": FactType.TEXT,
    "tracking_no": FactType.TEXT,  # the order's latest parcel ("" before dispatch)
    "carrier": FactType.TEXT,
    "parcel_status": FactType.TEXT,
    "signed_by": FactType.TEXT,  # who signed for the order's parcels, comma-separated ("" until one is)
}
# detail: what the order's timeline says of the change (the shortages of a backorder, why it was cancelled …)
STATUS_FACTS: dict[str, FactType] = {"from_status": FactType.TEXT, "to_status": FactType.TEXT, "detail": FactType.TEXT}
FIELD_FACTS: dict[str, FactType] = {"field": FactType.TEXT, "old_value": FactType.TEXT, "new_value": FactType.TEXT}
TRACKING_FACTS: dict[str, FactType] = {"event_status": FactType.TEXT, "exception": FactType.FLAG}
PARCEL_FACTS: dict[str, FactType] = {"warehouse": FactType.TEXT}  # tracking_no, carrier: this parcel's
STOCK_FACTS: dict[str, FactType] = {
    "sku": FactType.TEXT,
    "product_name": FactType.TEXT,
    "warehouse": FactType.TEXT,
    "available": FactType.NUMBER,
    "available_before": FactType.NUMBER,
    "reorder_level": FactType.NUMBER,
}
DIGEST_FACTS: dict[str, FactType] = {"count": FactType.NUMBER, "order_nos": FactType.TEXTS, "orders": FactType.TEXT}
RUN_FACTS: dict[str, FactType] = {"rule": FactType.TEXT, "fired_at": FactType.TIME}

# The Chinese names of the variables, as the business writes them: {订单号} is {order_no}.
ALIASES: dict[str, str] = {
    "订单号": "order_no",
    "客户姓名": "customer_name",
    "客户": "customer_id",
    "物流单号": "tracking_no",
    "承运商": "carrier",
    "金额": "total",
    "币种": "currency",
    "渠道": "channel",
    "地区": "region",
    "状态": "status",
    "销售": "sales_rep",
    "商品": "sku",
    "商品名称": "product_name",
    "仓库": "warehouse",
    "可用库存": "available",
    "订单数": "count",
    "订单列表": "orders",
}


# --- triggers ------------------------------------------------------------------------------------


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    # "Time after the event": the rule fires this long after the event, on a durable timer, with the facts
    # as they are then (e.g. after: 4h on entering AWAITING_APPROVAL, if: status == "AWAITING_APPROVAL").
    after: Duration | None = None

    @field_validator("after")
    @classmethod
    def _after(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @property
    def delay(self) -> timedelta | None:
        return None if self.after is None else parse_duration(self.after)

    def facts(self) -> dict[str, FactType]:
        return {**ORDER_FACTS, **RUN_FACTS}

    def matches(self, event: Event) -> bool:
        raise NotImplementedError


class OrderCreated(_Trigger):
    type: Literal["order_created"]

    def matches(self, event: Event) -> bool:
        return event.kind == EventKind.ORDER_CREATED


class StatusChanged(_Trigger):
    type: Literal["status_changed"]
    from_: OrderStatus | None = Field(default=None, alias="from")
    to: OrderStatus | None = None

    def facts(self) -> dict[str, FactType]:
        return {**super().facts(), **STATUS_FACTS}

    def matches(self, event: Event) -> bool:
        return (
            event.kind == EventKind.STATUS_CHANGED
            and event.data.get("from_status") != event.data.get("to_status")
            and (self.from_ is None or event.data.get("from_status") == self.from_.value)
            and (self.to is None or event.data.get("to_status") == self.to.value)
        )


# The order fields whose change is an event: a payment recorded, and the marks automations and people set.
WATCHED_FIELDS = ("paid", "tags", "priority", "assignee")


class FieldChanged(_Trigger):
    type: Literal["field_changed"]
    field: Literal["paid", "tags", "priority", "assignee"]

    def facts(self) -> dict[str, FactType]:
        return {**super().facts(), **FIELD_FACTS}

    def matches(self, event: Event) -> bool:
        return event.kind == EventKind.FIELD_CHANGED and event.data.get("field") == self.field


class TrackingEvent(_Trigger):
    type: Literal["tracking_event"]
    status: TrackingStatus | None = None  # the carrier's canonical status; none: any
    exception: bool | None = None  # true: only exceptions (EXCEPTION, ATTEMPT_FAILED, REFUSED, RETURNING …)

    def facts(self) -> dict[str, FactType]:
        return {**super().facts(), **TRACKING_FACTS}

    def matches(self, event: Event) -> bool:
        return (
            event.kind == EventKind.TRACKING_EVENT
            and (self.status is None or event.data.get("event_status") == self.status.value)
            and (self.exception is None or bool(event.data.get("exception")) == self.exception)
        )


class ParcelDispatched(_Trigger):
    """A parcel left with its carrier: once per parcel (an order from two warehouses dispatches twice), with
    that parcel's `tracking_no`, `carrier` and `warehouse`; the order's status is DISPATCHED once the last one left."""

    type: Literal["parcel_dispatched"]

    def facts(self) -> dict[str, FactType]:
        return {**super().facts(), **PARCEL_FACTS}

    def matches(self, event: Event) -> bool:
        return event.kind == EventKind.PARCEL_DISPATCHED


class StockCrossed(_Trigger):
    """Available stock of a SKU in a warehouse fell below a level: a number, or the product's reorder level.
    `below: 1` is a stock-out. Fires on the crossing only, not on every movement under the level."""

    type: Literal["stock_crossed"]
    below: int | Literal["reorder_level"] = "reorder_level"

    @field_validator("below")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("below must be at least 1 (1 is a stock-out)")
        return value

    def facts(self) -> dict[str, FactType]:
        return {**STOCK_FACTS, **RUN_FACTS}

    def matches(self, event: Event) -> bool:
        if event.kind != EventKind.STOCK_LEVEL:
            return False
        level = event.data.get("reorder_level", 0) if self.below == "reorder_level" else self.below
        before, after = int(event.data.get("available_before", 0)), int(event.data.get("available", 0))
        return after < int(level) <= before


class Find(BaseModel):
    """The "get data" of a scheduled rule: which orders it looks at when it fires."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: list[OrderStatus] = Field(min_length=1)
    older_than: Duration | None = None  # time in that status
    channel: str | None = None
    limit: int = Field(default=500, ge=1, le=5000)

    @field_validator("older_than")
    @classmethod
    def _older(cls, value: str | None) -> str | None:
        return _check_duration(value)


_CRON_FIELD = re.compile(r"^[\d*/,\-]+$")


class Schedule(_Trigger):
    """A Temporal Schedule: `cron` (minute hour day-of-month month day-of-week) in `time_zone`. With `digest`
    the rule runs once with the found orders as a list; without it once per found order."""

    type: Literal["schedule"]
    cron: str
    time_zone: str = "UTC"
    find: Find
    digest: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        parts = value.split()
        if len(parts) != 5 or not all(_CRON_FIELD.match(part) for part in parts):
            raise ValueError(f"{value!r} is not a cron line (five fields: minute hour day month weekday)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _no_after(self) -> Schedule:
        if self.after is not None:
            raise ValueError("a schedule has no `after`: say when in `cron`")
        return self

    def facts(self) -> dict[str, FactType]:
        return {**DIGEST_FACTS, **RUN_FACTS} if self.digest else super().facts()

    def matches(self, event: Event) -> bool:
        return event.kind == EventKind.SCHEDULE


Trigger = Annotated[
    OrderCreated | StatusChanged | FieldChanged | TrackingEvent | ParcelDispatched | StockCrossed | Schedule,
    Field(discriminator="type"),
]


# --- actions -------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\{([^{}\s]+)\}")


def template_variables(text: str) -> list[str]:
    return _VARIABLE.findall(text)


def render(text: str, values: Mapping[str, Any]) -> str:
    """Fill {name} / {中文名} with the facts' values (lists joined by ", "); nothing else is interpreted."""

    def value(found: re.Match[str]) -> str:
        name = ALIASES.get(found.group(1), found.group(1))
        if name not in values:
            return found.group(0)  # not a variable: left as written
        item = values[name]
        if isinstance(item, list | tuple):
            return ", ".join(str(part) for part in item)
        if isinstance(item, Decimal):
            return f"{item:,.2f}" if name == "total" else str(item)
        return "" if item is None else str(item)

    return _VARIABLE.sub(value, text)


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def templates(self) -> dict[str, str]:
        """The action's texts that are templates, by field name (checked against the facts at save)."""
        return {}

    def rendered(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The action with its templates filled: what it would do (the dry run shows this)."""
        data = self.model_dump(mode="json", by_alias=True)
        for field_name, text in self.templates().items():
            data[field_name] = render(text, values)
        return data


Channel = Literal["internal", "email", "sms"]


class Notify(_Action):
    """A notice: `to` is customer, sales_rep, role:<role> or user:<name>. Staff get the console inbox and the
    channels they chose (/console/me) unless `channels` narrows it; a customer gets e-mail and SMS."""

    type: Literal["notify"]
    to: str
    subject: str = ""
    text: str = Field(default="", max_length=4000)
    channels: list[Channel] | None = None
    # Instead of subject and text: a notice kind of the notice templates (services/notify/templates.yaml), sent
    # as the order workflow sends it (same texts, the customer's tracking link, kept under that kind).
    template: NoticeKind | None = None
    # The template's variables besides those the order and the facts give it, each a text with {facts}, e.g.
    # {reason: "{detail}"} for the cancellation template (services/notify/templates.yaml lists its variables).
    variables: dict[str, str] | None = None

    @model_validator(mode="after")
    def _text_or_template(self) -> Notify:
        if self.template is None and not self.text.strip():
            raise ValueError("write a text, or name a template (a notice kind of the templates file)")
        if self.template is not None and (self.text or self.subject):
            raise ValueError("a template brings its own subject and text: give one or the other")
        if self.variables is not None and self.template is None:
            raise ValueError("variables go with a template")
        return self

    @field_validator("to")
    @classmethod
    def _audience(cls, value: str) -> str:
        kind, _, who = value.partition(":")
        if value in ("customer", "sales_rep") or (kind == "user" and who):
            return value
        if kind == "role" and who in {role.value for role in Role}:
            return value
        raise ValueError(
            f"{value!r}: write customer, sales_rep, role:<{'|'.join(r.value for r in Role)}> or user:<name>"
        )

    def templates(self) -> dict[str, str]:
        texts = {"subject": self.subject, "text": self.text}
        texts.update({f"variables.{name}": text for name, text in (self.variables or {}).items()})
        return texts

    def rendered(self, values: Mapping[str, Any]) -> dict[str, Any]:
        data = self.model_dump(mode="json", by_alias=True)
        data.update(subject=render(self.subject, values), text=render(self.text, values))
        if self.template is None:
            del data["template"], data["variables"]
        else:  # the templates file's texts: the dry run shows them (services/automation/dry_run.py)
            del data["subject"], data["text"]
            data["variables"] = {name: render(text, values) for name, text in (self.variables or {}).items()}
        return data


class Webhook(_Action):
    """POST to `url` (JSON: the rule, the run, the facts; or `body`), signed `X-Orderflow-Signature:
    sha256=<HMAC of the body>` with the webhook secret; retried with backoff, then the step fails."""

    type: Literal["webhook"]
    url: str
    body: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    def templates(self) -> dict[str, str]:
        return {"body": self.body} if self.body is not None else {}


class SetField(_Action):
    """Mark the order: add a tag, or set its priority or assignee (shown on the order page and list)."""

    type: Literal["set"]
    field: Literal["tag", "priority", "assignee"]
    value: str = Field(min_length=1, max_length=64)

    def templates(self) -> dict[str, str]:
        return {"value": self.value}


class Todo(_Action):
    """A to-do in the console inbox of a role or a user, linked to the subject; done by whoever holds it."""

    type: Literal["todo"]
    title: str = Field(min_length=1, max_length=200)
    role: Role | None = None
    user: str | None = None
    due_in: Duration | None = None

    @field_validator("due_in")
    @classmethod
    def _due(cls, value: str | None) -> str | None:
        return _check_duration(value)

    @model_validator(mode="after")
    def _someone(self) -> Todo:
        if (self.role is None) == (self.user is None):
            raise ValueError("a to-do is for one role or one user: give `role` or `user`")
        return self

    def templates(self) -> dict[str, str]:
        return {"title": self.title}


class Requisition(_Action):
    """A purchase requisition for the subject's SKU and warehouse (stock triggers), topped up to the reorder
    level unless `qty` says how many; an open one for the same SKU and warehouse is raised, not duplicated."""

    type: Literal["requisition"]
    qty: int | None = Field(default=None, gt=0)


class SignalOrder(_Action):
    """Send the order a command. `cancel` (with the reason) before dispatch, like a person's cancel."""

    type: Literal["signal"]
    signal: Literal["cancel"]
    reason: str = Field(min_length=1, max_length=500)

    def templates(self) -> dict[str, str]:
        return {"reason": self.reason}


class Wait(_Action):
    """Pause the sequence on a durable timer (up to 90 days); the rest runs with the facts as they are then."""

    type: Literal["wait"]
    for_: Duration = Field(alias="for")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("for_")
    @classmethod
    def _for(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def duration(self) -> timedelta:
        return parse_duration(self.for_)


Action = Annotated[Notify | Webhook | SetField | Todo | Requisition | SignalOrder | Wait, Field(discriminator="type")]
ACTION_TYPES = ("notify", "webhook", "set", "todo", "requisition", "signal", "wait")
ORDER_ACTIONS = frozenset({"set", "signal"})  # need an order as the subject
STOCK_ACTIONS = frozenset({"requisition"})  # need a SKU and warehouse as the subject


def _as_tagged(value: Any) -> Any:
    """`- notify: {to: …}` (how people write it) → `{type: notify, to: …}` (what the union discriminates)."""
    if isinstance(value, dict) and "type" not in value and len(value) == 1:
        ((kind, body),) = value.items()
        if kind not in ACTION_TYPES:
            raise ValueError(f"unknown action {kind!r} (one of {', '.join(ACTION_TYPES)})")
        if kind == "wait" and isinstance(body, str):
            return {"type": "wait", "for": body}
        if isinstance(body, dict):
            return {"type": kind, **body}
    return value


class Branch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    if_: str | None = Field(default=None, alias="if")  # none: the else branch (last only)
    then: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)

    @field_validator("then", mode="before")
    @classmethod
    def _tagged(cls, value: Any) -> Any:
        return [_as_tagged(item) for item in value] if isinstance(value, list) else value


class Automation(BaseModel):
    """One rule. Write `if`/`then`/`else` for one condition, or `branches` for if / else-if / else."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    owner: str = Field(default="admin", min_length=1, max_length=64)
    trigger: Trigger
    branches: list[Branch] = Field(min_length=1, max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "branches" in value or "then" not in value:
            return value
        value = dict(value)
        branches: list[dict[str, Any]] = [{"if": value.pop("if", None), "then": value.pop("then")}]
        if "else" in value:
            branches.append({"then": value.pop("else")})
        return {**value, "branches": branches}

    @model_validator(mode="after")
    def _consistent(self) -> Automation:
        facts = self.trigger.facts()
        known = set(facts) | set(ALIASES)
        for index, branch in enumerate(self.branches):
            where = f"branches.{index}"
            if branch.if_ is None and index != len(self.branches) - 1:
                raise ValueError(f"{where}: only the last branch may be the else (no `if`)")
            if branch.if_ is not None:
                try:
                    compile_condition(branch.if_, facts)
                except ExpressionError as exc:
                    raise ValueError(f"{where}.if: {exc}") from exc
            for position, action in enumerate(branch.then):
                spot = f"{where}.then.{position} ({action.type})"
                for field_name, text in action.templates().items():
                    unknown = [name for name in template_variables(text) if name not in known]
                    if unknown:
                        raise ValueError(f"{spot}.{field_name}: unknown variable {{{unknown[0]}}}")
                kind = action.type
                if kind in ORDER_ACTIONS and not self.about_orders:
                    raise ValueError(f"{spot}: needs an order; this trigger's subject is not one")
                if kind in STOCK_ACTIONS and not isinstance(self.trigger, StockCrossed):
                    raise ValueError(f"{spot}: needs a SKU and warehouse; use it with a stock_crossed trigger")
                if isinstance(action, Notify) and action.to in ("customer", "sales_rep") and not self.about_orders:
                    raise ValueError(f"{spot}.to: {action.to} needs an order; this trigger's subject is not one")
        return self

    @property
    def about_orders(self) -> bool:
        """Whether each run is about one order (so order actions and the customer make sense)."""
        return not isinstance(self.trigger, StockCrossed) and not (
            isinstance(self.trigger, Schedule) and self.trigger.digest
        )

    @cached_property
    def conditions(self) -> list[Condition | None]:
        facts = self.trigger.facts()
        return [None if branch.if_ is None else compile_condition(branch.if_, facts) for branch in self.branches]

    def definition(self) -> dict[str, Any]:
        """The rule as stored (JSON), in the canonical `branches` form."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class AutomationSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    automations: list[Automation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AutomationSet:
        seen: set[str] = set()
        for rule in self.automations:
            if rule.name in seen:
                raise ValueError(f"rule {rule.name!r} is defined twice")
            seen.add(rule.name)
        return self


def parse_set(raw: Any, *, source: str = "rules") -> AutomationSet:
    """Validate a whole set (a YAML file's content); AutomationError names each bad rule and field."""
    try:
        return AutomationSet.model_validate(raw)
    except ValidationError as exc:
        raise AutomationError(f"invalid automations in {source}: {describe(exc, raw, 'automations')}") from exc


def parse_rule(raw: Any) -> Automation:
    """Validate one rule (the console form, a stored version)."""
    try:
        return Automation.model_validate(raw)
    except ValidationError as exc:
        raise AutomationError(describe(exc, raw, None)) from exc


# --- events and plans ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something that happened to a subject (an order number, or SKU@warehouse); `key` is unique per event."""

    kind: EventKind
    subject: str
    key: str
    data: Mapping[str, Any]
    caused_by: tuple[str, ...] = ()  # the rules whose actions led to this event, oldest first


MAX_CHAIN = 3  # how many rules' actions may lead to one another before a chain is cut


def may_fire(rule: Automation, event: Event) -> bool:
    """The trigger matches and firing would not loop: a rule's own action never re-triggers it on the same
    subject, and chains of rules triggering rules stop at MAX_CHAIN."""
    if event.kind == EventKind.SCHEDULE and event.data.get("rule") != rule.name:
        return False  # a schedule's firing is its own rule's only
    return rule.trigger.matches(event) and rule.name not in event.caused_by and len(event.caused_by) < MAX_CHAIN


def choose_branch(rule: Automation, facts: Mapping[str, Any]) -> int | None:
    """The first branch whose condition holds (or the else); None when none applies."""
    for index, condition in enumerate(rule.conditions):
        if condition is None or condition.holds(facts):
            return index
    return None


@dataclass(frozen=True)
class Plan:
    """What a rule would do on these facts: the branch and each action rendered."""

    branch: int | None
    actions: list[dict[str, Any]]

    @property
    def fires(self) -> bool:
        return self.branch is not None


def plan(rule: Automation, facts: Mapping[str, Any]) -> Plan:
    branch = choose_branch(rule, facts)
    if branch is None:
        return Plan(None, [])
    return Plan(branch, [action.rendered(facts) for action in rule.branches[branch].then])
