"""rules/automation.py and rules/expressions.py without a server: the schema, its errors (naming the rule and the
field), trigger matching, the loop cut, branches, templates in English and Chinese names, and properties of the
condition sandbox."""

from __future__ import annotations

import string
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.automation import (
    ORDER_FACTS,
    AutomationError,
    Event,
    EventKind,
    Schedule,
    parse_rule,
    parse_set,
    plan,
    render,
)
from rules.expressions import ExpressionError, FactType, compile_condition
from services.automation.store import read_file

DEFAULTS = Path(__file__).resolve().parents[2] / "rules" / "default_automations.yaml"


def rule(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "r",
        "trigger": {"type": "order_created"},
        "then": [{"notify": {"to": "role:ops", "text": "{order_no}"}}],
    }
    base.update(fields)
    return base


def order_facts(**values: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {name: "" for name, kind in ORDER_FACTS.items() if kind == FactType.TEXT}
    facts.update(total=Decimal("100.00"), paid=False, line_count=1, units=1, skus=[], tags=[], hours_in_status=0)
    facts.update(values)
    return facts


def event(kind: EventKind, caused_by: tuple[str, ...] = (), **data: Any) -> Event:
    return Event(kind, "SO-1", "k", data, caused_by)


class TestTheDefaults:
    def test_the_shipped_file_is_valid_and_holds_the_business_examples(self) -> None:
        names = {r.name: r for r in read_file(DEFAULTS)}
        assert set(names) >= {
            "new-order-tell-sales-rep",
            "big-order-director-todo",
            "low-stock-requisition",
            "approval-waiting-4h",
            "overdue-approvals-digest",
            "dispatched-tell-customer",
            # The order's news it used to send itself (patch order-notices-by-rule).
            "backordered-tell-ops",
            "cancelled-tell-customer",
            "rejected-tell-customer",
            "paid-order-stopped-tell-finance",
            "out-for-delivery-tell-customer",
            "delivered-tell-customer",
            "delivery-exception-tell-ops-and-customer",
            "failed-tell-ops",
        }
        # The dispatch notice the order workflow used to send itself: per parcel, to the customer, its template.
        dispatched = names["dispatched-tell-customer"]
        assert dispatched.trigger.type == "parcel_dispatched" and dispatched.enabled
        [notice] = dispatched.branches[0].then
        assert notice.model_dump(exclude_none=True) == {"type": "notify", "to": "customer", "template": "dispatched",
                                                        "subject": "", "text": ""}  # fmt: skip
        digest = names["overdue-approvals-digest"].trigger
        assert isinstance(digest, Schedule)
        assert (digest.type, digest.cron, digest.time_zone) == ("schedule", "0 20 * * *", "Asia/Shanghai")


class TestErrorsNameTheRuleAndTheField:
    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"if": "totl > 5"}, r"rule 'r' → branches\.0\.if: .*unknown name 'totl'"),
            ({"if": "channel > 5"}, r"rule 'r' → branches\.0\.if"),
            ({"if": "total >"}, r"cannot parse"),
            (
                {"then": [{"notify": {"to": "role:ops", "text": "hi {custmer_name}"}}]},
                r"then\.0 \(notify\)\.text: unknown variable \{custmer_name\}",
            ),
            (
                {"then": [{"notify": {"to": "role:ceo", "text": "x"}}]},
                r"rule 'r' → branches\.0\.then\.0\.notify\.to: 'role:ceo'",
            ),
            ({"then": [{"wait": "91d"}]}, r"between 1 minute and 90 days"),
            ({"then": [{"wait": "soon"}]}, r"is not a duration"),
            ({"then": [{"shout": {"text": "x"}}]}, r"rule 'r' → branches\.0\.then: unknown action 'shout'"),
            ({"then": [{"requisition": {}}]}, r"needs a SKU and warehouse"),
            (
                {"trigger": {"type": "stock_crossed"}, "then": [{"set": {"field": "tag", "value": "x"}}]},
                r"needs an order",
            ),
            (
                {"trigger": {"type": "status_changed", "to": "SHIPPED"}},
                r"rule 'r' → trigger\.status_changed\.to: Input should be",
            ),
            ({"trigger": {"type": "schedule", "cron": "every day", "find": {"status": ["RECEIVED"]}}}, r"cron line"),
            (
                {
                    "trigger": {
                        "type": "schedule",
                        "cron": "0 20 * * *",
                        "time_zone": "Mars/Olympus",
                        "find": {"status": ["RECEIVED"]},
                    }
                },
                r"unknown time zone",
            ),
            ({"name": "Bad Name"}, r"rule 'Bad Name' → name"),
            ({"then": [{"notify": {"to": "customer"}}]}, r"then\.0\.notify: .*write a text, or name a template"),
            (
                {"then": [{"notify": {"to": "customer", "template": "dispatchd"}}]},
                r"then\.0\.notify\.template: Input should be 'payment_requested'",
            ),
            (
                {"then": [{"notify": {"to": "customer", "template": "dispatched", "text": "x"}}]},
                r"a template brings its own subject and text",
            ),
            (
                {"trigger": {"type": "parcel_dispatched"}, "then": [{"notify": {"to": "role:ops", "text": "{sku}"}}]},
                r"unknown variable \{sku\}",
            ),
            (
                {"then": [{"notify": {"to": "customer", "text": "x", "variables": {"reason": "y"}}}]},
                r"then\.0\.notify: .*variables go with a template",
            ),
            (
                {
                    "trigger": {"type": "status_changed", "to": "CANCELLED"},
                    "then": [
                        {"notify": {"to": "customer", "template": "cancelled", "variables": {"reason": "{detial}"}}}
                    ],
                },
                r"then\.0 \(notify\)\.variables\.reason: unknown variable \{detial\}",
            ),
        ],
    )
    def test_a_bad_rule_is_refused_with_where(self, changes: dict[str, Any], expected: str) -> None:
        with pytest.raises(AutomationError, match=expected):
            parse_rule(rule(**changes))

    def test_only_the_last_branch_may_be_the_else(self) -> None:
        branches = [{"then": [{"wait": "1h"}]}, {"if": "paid", "then": [{"wait": "1h"}]}]
        with pytest.raises(AutomationError, match="only the last branch"):
            parse_rule({"name": "r", "trigger": {"type": "order_created"}, "branches": branches})

    def test_a_set_names_every_bad_rule_and_refuses_duplicates(self) -> None:
        with pytest.raises(AutomationError) as caught:
            parse_set({"automations": [rule(name="good"), rule(name="bad", **{"if": "nope"})]}, source="x.yaml")
        assert "rule 'bad' → branches.0.if" in str(caught.value) and "'good'" not in str(caught.value)
        with pytest.raises(AutomationError, match="defined twice"):
            parse_set({"automations": [rule(), rule()]})


class TestTriggers:
    def test_status_changed_matches_either_side_when_given(self) -> None:
        to_dispatched = parse_rule(rule(trigger={"type": "status_changed", "to": "DISPATCHED"})).trigger
        from_picking = parse_rule(rule(trigger={"type": "status_changed", "from": "PICKING"})).trigger
        move = event(EventKind.STATUS_CHANGED, from_status="PICKING", to_status="DISPATCHED")
        other = event(EventKind.STATUS_CHANGED, from_status="ALLOCATED", to_status="PICKING")
        assert to_dispatched.matches(move) and not to_dispatched.matches(other)
        assert from_picking.matches(move) and not from_picking.matches(other)

    def test_stock_crossed_fires_on_the_crossing_only(self) -> None:
        below_50 = parse_rule(rule(trigger={"type": "stock_crossed", "below": 50}, then=[{"requisition": {}}])).trigger
        at_level = parse_rule(rule(trigger={"type": "stock_crossed"}, then=[{"requisition": {}}])).trigger

        def moved(before: int, after: int, level: int = 20) -> Event:
            return event(EventKind.STOCK_LEVEL, available_before=before, available=after, reorder_level=level)

        assert below_50.matches(moved(60, 49)) and below_50.matches(moved(50, 0))
        assert not below_50.matches(moved(49, 30)) and not below_50.matches(moved(80, 50))
        assert at_level.matches(moved(25, 19)) and not at_level.matches(moved(60, 49))

    def test_tracking_event_filters_status_and_exceptions(self) -> None:
        exceptions = parse_rule(rule(trigger={"type": "tracking_event", "exception": True})).trigger
        refused = event(EventKind.TRACKING_EVENT, event_status="REFUSED", exception=True)
        transit = event(EventKind.TRACKING_EVENT, event_status="IN_TRANSIT", exception=False)
        assert exceptions.matches(refused) and not exceptions.matches(transit)

    def test_parcel_dispatched_matches_each_parcel_and_knows_its_warehouse(self) -> None:
        found = parse_rule(
            rule(
                trigger={"type": "parcel_dispatched"},
                then=[{"notify": {"to": "customer", "text": "{tracking_no} from {warehouse} ({承运商})"}}],
            )
        )
        assert found.trigger.matches(event(EventKind.PARCEL_DISPATCHED, tracking_no="SF1", carrier="sf"))
        assert not found.trigger.matches(event(EventKind.STATUS_CHANGED, from_status="PICKING", to_status="DISPATCHED"))


class TestLoopsAndChains:
    def test_a_rules_own_change_never_triggers_it_and_chains_stop(self) -> None:
        from rules.automation import may_fire

        watcher = parse_rule(rule(name="w", trigger={"type": "field_changed", "field": "tags"}))
        change = event(EventKind.FIELD_CHANGED, field="tags")
        assert may_fire(watcher, change)
        assert not may_fire(watcher, event(EventKind.FIELD_CHANGED, ("w",), field="tags"))
        assert may_fire(watcher, event(EventKind.FIELD_CHANGED, ("a", "b"), field="tags"))
        assert not may_fire(watcher, event(EventKind.FIELD_CHANGED, ("a", "b", "c"), field="tags"))


class TestBranchesAndTemplates:
    def test_if_else_if_else_picks_the_first_that_holds(self) -> None:
        tiered = parse_rule(
            {
                "name": "tiers",
                "trigger": {"type": "order_created"},
                "branches": [
                    {"if": "total > 50000", "then": [{"notify": {"to": "role:finance_director", "text": "big"}}]},
                    {"if": "total > 10000", "then": [{"notify": {"to": "role:finance", "text": "medium"}}]},
                    {"then": [{"set": {"field": "priority", "value": "normal"}}]},
                ],
            }
        )
        assert plan(tiered, order_facts(total=Decimal("60000"))).actions[0]["text"] == "big"
        assert plan(tiered, order_facts(total=Decimal("10000.01"))).actions[0]["text"] == "medium"
        assert plan(tiered, order_facts(total=Decimal("10000"))).actions[0]["value"] == "normal"
        without_else = parse_rule(rule(**{"if": "paid"}))
        assert not plan(without_else, order_facts()).fires

    def test_variables_in_english_and_chinese_names(self) -> None:
        text = "{客户姓名} / {customer_name}: 订单 {订单号} 物流单号 {物流单号}, {total} {币种}, {skus}"
        facts = order_facts(
            customer_name="李雷", order_no="SO-9", tracking_no="SF1", total=Decimal("12400"), currency="CNY",
            skus=["A", "B"],
        )  # fmt: skip
        assert render(text, facts) == "李雷 / 李雷: 订单 SO-9 物流单号 SF1, 12,400.00 CNY, A, B"
        # Only {name} is filled: nothing else in a template is interpreted.
        assert render("{order_no.__class__} {{x}} {0}", facts) == "{order_no.__class__} {{x}} {0}"

    def test_the_dry_run_plan_renders_every_action(self) -> None:
        dispatched = parse_rule(
            rule(
                trigger={"type": "status_changed", "to": "DISPATCHED"},
                **{"if": 'channel == "taobao"'},
                then=[
                    {"notify": {"to": "role:ops", "subject": "{order_no} shipped", "text": "{tracking_no}"}},
                    {"wait": "2d"},
                ],
            )
        )
        done = plan(dispatched, order_facts(channel="taobao", order_no="SO-1", tracking_no="SF9"))
        assert done.branch == 0
        assert done.actions[0] == {
            "type": "notify", "to": "role:ops", "subject": "SO-1 shipped", "text": "SF9", "channels": None,
        }  # fmt: skip
        assert done.actions[1] == {"type": "wait", "for": "2d"}


# --- the condition sandbox, by property ---------------------------------------------------------

FACTS = {"total": FactType.NUMBER, "channel": FactType.TEXT, "paid": FactType.FLAG, "skus": FactType.TEXTS}
VALUES = {"total": Decimal("12.5"), "channel": "web", "paid": True, "skus": ["A"]}
TOKENS = [
    "total", "channel", "paid", "skus", "and", "or", "not", "in", "==", "!=", "<", ">", "+", "*", "/", "(", ")",
    "[", "]", ",", ".", "__class__", "__import__", "open", "eval", "exec", "lambda", "os", "system", "'a'", "1", "0",
    "true", "null", "=~", ".length", "$now", "__subclasses__", ";", "import", "getattr", "{", "}", ":",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
def test_no_sequence_of_tokens_escapes_the_sandbox(tokens: list[str]) -> None:
    """Whatever is written: refused at compile time, or evaluated to a value over the facts — never Python."""
    source = " ".join(tokens)
    try:
        condition = compile_condition(source, FACTS)
    except ExpressionError:
        return
    try:
        result = condition.holds(VALUES)
    except ExpressionError:
        return
    assert isinstance(result, bool)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12))
def test_an_unknown_name_fails_at_compile_time(name: str) -> None:
    if name in FACTS or name in {"and", "or", "not", "in", "true", "false", "null", "if", "else", "for"}:
        return
    with pytest.raises(ExpressionError):
        compile_condition(f"{name} == 1", FACTS)


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=2),
    st.decimals(min_value=-(10**9), max_value=10**9, places=2),
)
def test_money_compares_exactly(total: Decimal, limit: Decimal) -> None:
    condition = compile_condition(f"total > {limit}", FACTS)
    assert condition.holds({**VALUES, "total": total}) is (total > limit)
