"""The automation editor's form and YAML views of a rule say the same rule: every default rule, shown in the form
(or as YAML) and saved back unchanged, is the same definition; a value that is not a number names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrypoints.console.automation_form import definition_of, form_of, parse_yaml, trigger_summary, yaml_of
from rules.automation import Automation, AutomationError, parse_rule
from services.automation.store import read_file

DEFAULTS = read_file(Path(__file__).parents[2] / "rules" / "default_automations.yaml")
BRANCHED = parse_rule(
    {
        "name": "tag-by-size",
        "trigger": {"type": "order_created"},
        "branches": [
            {"if": "total > 10000", "then": [{"set": {"field": "tag", "value": "big"}}, {"wait": "2d"}]},
            {"then": [{"todo": {"title": "look at {order_no}", "user": "olga", "due_in": "1d"}}]},
        ],
    }
)


@pytest.mark.parametrize("rule", [*DEFAULTS, BRANCHED], ids=lambda rule: rule.name)
def test_yaml_round_trips_every_rule(rule: Automation) -> None:
    definition = parse_rule(parse_yaml(yaml_of(rule.definition()))).definition()
    assert definition == rule.definition()


IN_THE_FORM = [rule for rule in DEFAULTS if form_of(rule.definition()) is not None]


def test_only_rules_with_template_variables_are_yaml_only() -> None:
    yaml_only = [rule.name for rule in DEFAULTS if rule not in IN_THE_FORM]
    assert yaml_only == [
        rule.name for rule in DEFAULTS if any(getattr(a, "variables", None) for a in rule.branches[0].then)
    ]
    assert "new-order-tell-sales-rep" in [rule.name for rule in IN_THE_FORM]


@pytest.mark.parametrize("rule", IN_THE_FORM, ids=lambda rule: rule.name)
def test_the_form_round_trips_every_default_rule(rule: Automation) -> None:
    values = form_of(rule.definition())
    assert values is not None
    assert parse_rule(definition_of(values)).definition() == rule.definition()


def test_a_rule_with_else_branches_is_not_put_in_the_form() -> None:
    assert form_of(BRANCHED.definition()) is None


def test_numbers_that_are_not_numbers_name_their_field() -> None:
    with pytest.raises(AutomationError, match=r"trigger.below: 'fifty' is not a whole number"):
        definition_of({"name": "x", "trigger_type": "stock_crossed", "trigger_below": "fifty"})
    with pytest.raises(AutomationError, match=r"action 2.qty"):
        definition_of({"name": "x", "trigger_type": "stock_crossed", "a0_type": "wait", "a0_wait": "1d",
                       "a1_type": "requisition", "a1_qty": "many"})  # fmt: skip
    with pytest.raises(AutomationError, match="write one rule"):
        parse_yaml("- just a list")


def test_the_list_says_each_trigger_in_a_line() -> None:
    summaries = {rule.name: trigger_summary(rule.definition()) for rule in DEFAULTS}
    assert summaries["approval-waiting-4h"] == "status_changed: * → AWAITING_APPROVAL, after 4h"
    assert summaries["overdue-approvals-digest"] == "schedule: 0 20 * * * Asia/Shanghai"
    assert summaries["low-stock-requisition"] == "stock_crossed: below 50"


def test_a_template_and_a_text_in_one_row_are_refused_not_dropped() -> None:
    row = {"name": "r", "trigger_type": "parcel_dispatched", "a0_type": "notify", "a0_to": "customer"}
    templated = parse_rule(definition_of({**row, "a0_template": "dispatched"}))
    assert templated.definition()["branches"][0]["then"] == [
        {"type": "notify", "to": "customer", "subject": "", "text": "", "template": "dispatched"}
    ]
    with pytest.raises(AutomationError, match=r"then\.0\.notify: .*a template brings its own subject and text"):
        parse_rule(definition_of({**row, "a0_template": "dispatched", "a0_text": "typed as well"}))
