"""Review rules: a list of WHEN-expression → action, loaded from YAML, evaluated safely (rules/expressions.py)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from models.allocation import AllocationMode, LotOrder
from models.status import Role
from rules.expressions import Condition, ExpressionError, FactType, compile_condition
from rules.validation_errors import describe

FINANCE_ROLES = frozenset({Role.FINANCE, Role.FINANCE_DIRECTOR})
# Approval levels run junior → senior.
ROLE_SENIORITY = {Role.SALES: 0, Role.WAREHOUSE: 0, Role.OPS: 1, Role.FINANCE: 2, Role.FINANCE_DIRECTOR: 3}


class RuleError(ValueError):
    pass


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    when: str
    require_approval: Role | None = None
    prepay: bool = False
    skip_finance: bool = False
    allocation: AllocationMode | None = None
    lot_order: LotOrder | None = None

    @field_validator("when")
    @classmethod
    def _compiles(cls, expression: str) -> str:
        _condition(expression)  # an unknown fact or a type mismatch fails here, when the file is loaded
        return expression

    @property
    def condition(self) -> Condition:
        return _condition(self.when)


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rules: list[Rule]


# The facts a review rule may name, with their types (the order as submitted, before any step has run).
REVIEW_FACTS = {
    "total": FactType.NUMBER,
    "currency": FactType.TEXT,
    "order_type": FactType.TEXT,
    "payment_method": FactType.TEXT,
    "paid": FactType.FLAG,
    "customer_new": FactType.FLAG,
    "channel": FactType.TEXT,
    "line_count": FactType.NUMBER,
}


@functools.lru_cache(maxsize=256)
def _condition(expression: str) -> Condition:
    try:
        return compile_condition(expression, REVIEW_FACTS)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from exc


@dataclass(frozen=True)
class OrderFacts:
    total: Decimal
    currency: str
    order_type: str
    payment_method: str
    paid: bool
    customer_new: bool
    channel: str
    line_count: int

    def names(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Review:
    approval_roles: tuple[Role, ...] = ()
    prepay_required: bool = False
    skip_finance: bool = False
    fired: tuple[str, ...] = field(default=())
    allocation: AllocationMode | None = None  # the last matching rule that sets it
    lot_order: LotOrder | None = None


SAMPLE_FACTS = OrderFacts(
    total=Decimal("100.00"),
    currency="CNY",
    order_type="standard",
    payment_method="credit",
    paid=False,
    customer_new=False,
    channel="web",
    line_count=1,
)


def load_rules(path: Path) -> RuleSet:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"cannot read rules file {path}: {exc}") from exc
    try:
        rules = RuleSet.model_validate(raw)
    except ValidationError as exc:  # a bad expression, role or key: one error type for every broken file
        raise RuleError(f"invalid rules file {path}: {describe(exc, raw, 'rules')}") from exc
    # A trial run on sample facts as well: whatever typing cannot see fails now, not on every order.
    review(rules, SAMPLE_FACTS)
    return rules


def review(rules: RuleSet, facts: OrderFacts) -> Review:
    names = facts.names()
    roles: set[Role] = set()
    prepay = skip_finance = False
    allocation: AllocationMode | None = None
    lot_order: LotOrder | None = None
    fired: list[str] = []
    for rule in rules.rules:
        try:
            matched = rule.condition.holds(names)
        except ExpressionError as exc:  # a bad rule must fail loudly, naming itself
            raise RuleError(f"rule {rule.name!r} failed on this order: {exc}") from exc
        if not matched:
            continue
        fired.append(rule.name)
        if rule.require_approval is not None:
            roles.add(rule.require_approval)
        prepay = prepay or rule.prepay
        skip_finance = skip_finance or rule.skip_finance
        allocation = rule.allocation or allocation
        lot_order = rule.lot_order or lot_order
    if skip_finance:
        roles -= FINANCE_ROLES
    ordered = tuple(sorted(roles, key=lambda role: (ROLE_SENIORITY.get(role, 1), role.value)))
    return Review(ordered, prepay, skip_finance, tuple(fired), allocation, lot_order)
