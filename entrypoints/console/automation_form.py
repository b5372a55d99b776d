"""The automation editor's form: its fields become a rule definition (the same dict a YAML file holds) that
services.automation.store.save validates whole, and a stored rule becomes the form's fields again.

The form covers the rules people write most — one trigger, one condition, a sequence of actions; a rule with
else-if / else branches, or a notice template given variables of its own, is edited as YAML on the same page
(form_of returns None for it). Nothing here decides
whether a rule is valid: an impossible value becomes an AutomationError naming the field, like any bad rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from models.status import NoticeKind, OrderStatus, Role, TrackingStatus
from rules.automation import ACTION_TYPES, WATCHED_FIELDS, AutomationError

TRIGGER_TYPES = (
    "order_created",
    "status_changed",
    "field_changed",
    "tracking_event",
    "parcel_dispatched",
    "stock_crossed",
    "schedule",
)
STATUSES = [status.value for status in OrderStatus]
TRACKING_STATUSES = [status.value for status in TrackingStatus]
ROLES = [role.value for role in Role]
NOTICE_TEMPLATES = [kind.value for kind in NoticeKind]
CHANNELS = ("internal", "email", "sms")
SET_FIELDS = ("tag", "priority", "assignee")
SPARE_ROWS = 2  # empty action rows below the rule's own; empty rows are left out
MIN_ROWS = 3

# The fields of each action kind on an action row (row i's field f is posted as a{i}_{f}).
ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "notify": ("to", "template", "subject", "text", "channels"),
    "webhook": ("url", "body"),
    "set": ("field", "value"),
    "todo": ("title", "for_whom", "due_in"),
    "requisition": ("qty",),
    "signal": ("reason",),
    "wait": ("wait",),
}
ACTION_KEYS = ("to", "template", "subject", "text", "url", "body", "field", "value", "title", "due_in", "qty", "reason")
assert set(ACTION_FIELDS) == set(ACTION_TYPES)  # one row layout per action the rules know


def rows_for(values: Mapping[str, Any]) -> int:
    """How many action rows the form shows: the rule's actions and a few empty ones."""
    filled = [i for i in range(100) if values.get(f"a{i}_type")]
    return max(MIN_ROWS, (max(filled) + 1 if filled else 0) + SPARE_ROWS)


def definition_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The rule the form describes (validated by the store when it is saved, or by a dry run)."""

    def text(name: str) -> str:
        value = values.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    def many(name: str) -> list[str]:
        value = values.get(name, [])
        return [str(item) for item in value] if isinstance(value, list) else []

    trigger = _trigger(text, many)
    actions = [action for i in range(rows_for(values)) if (action := _action(i, text, many)) is not None]
    branch: dict[str, Any] = {"then": actions}
    if text("condition"):
        branch["if"] = text("condition")
    rule: dict[str, Any] = {
        "name": text("name"),
        "description": text("description"),
        "enabled": values.get("enabled") in ("on", "true", True),
        "owner": text("owner") or "admin",
        "trigger": trigger,
        "branches": [branch],
    }
    return rule


def _whole(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise AutomationError(f"{where}: {text!r} is not a whole number") from None


def _trigger(text: Any, many: Any) -> dict[str, Any]:
    kind = text("trigger_type")
    trigger: dict[str, Any] = {"type": kind}
    if kind == "status_changed":
        trigger.update({key: text(f"trigger_{key}") for key in ("from", "to") if text(f"trigger_{key}")})
    elif kind == "field_changed":
        trigger["field"] = text("trigger_field")
    elif kind == "tracking_event":
        if text("trigger_status"):
            trigger["status"] = text("trigger_status")
        if text("trigger_exception") in ("yes", "no"):
            trigger["exception"] = text("trigger_exception") == "yes"
    elif kind == "stock_crossed":
        below = text("trigger_below") or "reorder_level"
        trigger["below"] = below if below == "reorder_level" else _whole(below, "trigger.below")
    elif kind == "schedule":
        find: dict[str, Any] = {"status": many("find_status")}
        if text("find_older_than"):
            find["older_than"] = text("find_older_than")
        if text("find_channel"):
            find["channel"] = text("find_channel")
        if text("find_limit"):
            find["limit"] = _whole(text("find_limit"), "trigger.find.limit")
        trigger.update(cron=text("trigger_cron"), time_zone=text("trigger_time_zone") or "UTC", find=find)
        trigger["digest"] = text("trigger_digest") in ("on", "true")
    if text("trigger_after") and kind != "schedule":
        trigger["after"] = text("trigger_after")
    return trigger


def _action(i: int, text: Any, many: Any) -> dict[str, Any] | None:
    kind = text(f"a{i}_type")
    if not kind:
        return None

    def field(name: str) -> str:
        return str(text(f"a{i}_{name}"))

    if kind == "notify":
        action: dict[str, Any] = {"to": field("to")}
        if field("template"):  # the templates file's texts instead of the row's own (both: refused, by name)
            action["template"] = field("template")
        if not field("template") or field("subject") or field("text"):
            action.update(subject=field("subject"), text=field("text"))
        if many(f"a{i}_channels"):
            action["channels"] = many(f"a{i}_channels")
    elif kind == "webhook":
        action = {"url": field("url")}
        if field("body"):
            action["body"] = field("body")
    elif kind == "set":
        action = {"field": field("field"), "value": field("value")}
    elif kind == "todo":
        audience, _, who = field("for_whom").partition(":")
        action = {"title": field("title"), audience or "role": who}
        if field("due_in"):
            action["due_in"] = field("due_in")
    elif kind == "requisition":
        action = {"qty": _whole(field("qty"), f"action {i + 1}.qty")} if field("qty") else {}
    elif kind == "signal":
        action = {"signal": "cancel", "reason": field("reason")}
    elif kind == "wait":
        action = {"for": field("wait")}
    else:
        raise AutomationError(f"action {i + 1}: unknown action {kind!r} (one of {', '.join(ACTION_TYPES)})")
    return {"type": kind, **action}


def form_of(definition: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stored rule as the form's fields; None when the form cannot show it (several branches, a template's own
    variables): it is edited as YAML."""
    branches = definition.get("branches", [])
    if len(branches) != 1 or any(action.get("variables") for action in branches[0]["then"]):
        return None
    trigger = dict(definition["trigger"])
    values: dict[str, Any] = {
        "name": definition["name"],
        "description": definition.get("description", ""),
        "owner": definition.get("owner", ""),
        "enabled": "on" if definition.get("enabled", True) else "",
        "condition": branches[0].get("if") or "",
        "trigger_type": trigger["type"],
        "trigger_after": trigger.get("after") or "",
    }
    for key in ("from", "to", "field", "status", "cron", "time_zone"):
        values[f"trigger_{key}"] = str(trigger.get(key) or "")
    if "exception" in trigger:
        values["trigger_exception"] = "yes" if trigger["exception"] else "no"
    if trigger["type"] == "stock_crossed":
        values["trigger_below"] = str(trigger.get("below", "reorder_level"))
    if trigger["type"] == "schedule":
        find = trigger.get("find", {})
        values.update(find_status=list(find.get("status", [])), find_older_than=find.get("older_than") or "")
        values.update(find_channel=find.get("channel") or "", find_limit=str(find.get("limit", "")))
        values["trigger_digest"] = "on" if trigger.get("digest", True) else ""
    for i, action in enumerate(branches[0]["then"]):
        values[f"a{i}_type"] = kind = action["type"]
        prefix = f"a{i}_"
        if kind == "todo":
            values[prefix + "for_whom"] = f"role:{action['role']}" if action.get("role") else f"user:{action['user']}"
        if kind == "wait":
            values[prefix + "wait"] = action["for"]
        if kind == "notify":
            values[prefix + "channels"] = list(action.get("channels") or [])
        for key in (
            "to",
            "template",
            "subject",
            "text",
            "url",
            "body",
            "field",
            "value",
            "title",
            "due_in",
            "qty",
            "reason",
        ):
            if key in action and action[key] is not None:
                values[prefix + key] = str(action[key])
    return values


def trigger_summary(definition: Mapping[str, Any]) -> str:
    """One line for the list: 'status_changed → DISPATCHED, after 4h'."""
    trigger = definition["trigger"]
    kind = trigger["type"]
    parts: list[str] = []
    if kind == "status_changed":
        parts.append(f"{trigger.get('from') or '*'} → {trigger.get('to') or '*'}")
    elif kind == "field_changed":
        parts.append(str(trigger["field"]))
    elif kind == "tracking_event":
        parts.append(str(trigger.get("status") or ("exception" if trigger.get("exception") else "any")))
    elif kind == "stock_crossed":
        parts.append(f"below {trigger.get('below', 'reorder_level')}")
    elif kind == "schedule":
        parts.append(f"{trigger['cron']} {trigger.get('time_zone', 'UTC')}")
    if trigger.get("after"):
        parts.append(f"after {trigger['after']}")
    return f"{kind}: {', '.join(parts)}" if parts else kind


def roles_and_fields() -> dict[str, Any]:
    """The choices the form's selects offer."""
    return {
        "trigger_types": TRIGGER_TYPES,
        "statuses": STATUSES,
        "tracking_statuses": TRACKING_STATUSES,
        "watched_fields": WATCHED_FIELDS,
        "roles": ROLES,
        "notice_templates": NOTICE_TEMPLATES,
        "channels": CHANNELS,
        "set_fields": SET_FIELDS,
        "action_types": ACTION_TYPES,
        "action_fields": ACTION_FIELDS,
    }


def yaml_of(definition: Mapping[str, Any]) -> str:
    """The rule as people write it in a YAML file (if/then/else shorthand, `- notify: {…}` actions)."""
    rule = {key: value for key, value in definition.items() if key != "branches"}
    branches = [dict(branch) for branch in definition.get("branches", [])]
    for branch in branches:
        branch["then"] = [_written(action) for action in branch["then"]]
    if len(branches) == 1 or (len(branches) == 2 and "if" in branches[0] and "if" not in branches[1]):
        if "if" in branches[0]:
            rule["if"] = branches[0]["if"]
        rule["then"] = branches[0]["then"]
        if len(branches) == 2:
            rule["else"] = branches[1]["then"]
    else:
        rule["branches"] = branches
    return yaml.safe_dump(rule, sort_keys=False, allow_unicode=True, width=110)


def _written(action: Mapping[str, Any]) -> dict[str, Any]:
    body = {key: value for key, value in action.items() if key != "type"}
    return {action["type"]: body["for"] if action["type"] == "wait" else body}


def parse_yaml(text: str) -> dict[str, Any]:
    """The YAML editor's text as one rule; AutomationError when it is not YAML or not one rule."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AutomationError(f"not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise AutomationError("write one rule: a mapping with name, trigger, if/then …")
    return raw
