"""The one expression language of orderflow's rules (review rules and automations): rule-engine, typed.

Why rule-engine and not simpleeval (used until issue 12): simpleeval evaluates a subset of Python over Python
objects and has had sandbox escapes through attribute access; rule-engine has its own small grammar, no
access to Python attributes beyond its typed built-ins (`.length`, `.as_lower` …), Decimal arithmetic for
numbers (money stays exact) and a type resolver, so an unknown name or a type mismatch ("channel > 5") is
refused when the rule is saved, not when an order reaches it. Regular-expression matching (`=~`) is refused
too: a pattern written against text a customer typed could take unbounded time.

Syntax: comparisons (== != < <= > >=), `and` `or` `not`, arithmetic, `in` over arrays ("SKU-1" in skus),
string and array `.length`, literals "text", 12.5, true, false, null, [..].
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import rule_engine
import rule_engine.ast


class ExpressionError(ValueError):
    """The expression does not parse, names an unknown fact, mixes types, or uses a refused construct."""


class FactType(StrEnum):
    NUMBER = "number"  # Decimal
    TEXT = "text"
    FLAG = "flag"  # bool
    TEXTS = "texts"  # a list of text
    TIME = "time"  # an aware datetime (UTC)


_ENGINE_TYPES: dict[FactType, Any] = {
    FactType.NUMBER: rule_engine.DataType.FLOAT,
    FactType.TEXT: rule_engine.DataType.STRING,
    FactType.FLAG: rule_engine.DataType.BOOLEAN,
    FactType.TEXTS: rule_engine.DataType.ARRAY(rule_engine.DataType.STRING),
    FactType.TIME: rule_engine.DataType.DATETIME,
}

_REFUSED = {rule_engine.ast.FuzzyComparisonExpression: "regular expressions (=~, !~) are not allowed"}


@dataclass(frozen=True)
class Condition:
    """A compiled expression over a fixed fact set; `holds` gives its truth on those facts' values."""

    source: str
    _rule: rule_engine.Rule

    def holds(self, values: Mapping[str, Any]) -> bool:
        try:
            return bool(self._rule.evaluate(_engine_values(values)))
        except rule_engine.errors.EngineError as exc:
            raise ExpressionError(f"{self.source!r}: {_describe(exc)}") from exc


def compile_condition(source: str, facts: Mapping[str, FactType]) -> Condition:
    """Parse and type-check `source` against the fact set; raise ExpressionError naming what is wrong."""
    if not source.strip():
        raise ExpressionError("the expression is empty")
    context = rule_engine.Context(
        type_resolver=rule_engine.type_resolver_from_dict({name: _ENGINE_TYPES[kind] for name, kind in facts.items()}),
        default_timezone="UTC",
    )
    try:
        rule = rule_engine.Rule(source, context=context)
    except rule_engine.errors.RuleSyntaxError as exc:
        raise ExpressionError(f"cannot parse {source!r}: {_describe(exc)}") from exc
    except rule_engine.errors.EngineError as exc:
        raise ExpressionError(f"{source!r}: {_describe(exc)}") from exc
    for node in _nodes(rule.statement.expression):
        for refused, why in _REFUSED.items():
            if isinstance(node, refused):
                raise ExpressionError(f"{source!r}: {why}")
    return Condition(source, rule)


def _engine_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """rule-engine's numbers are Decimal: ints (quantities, counts) are given as such, exactly."""
    return {
        name: Decimal(value) if isinstance(value, int) and not isinstance(value, bool) else value
        for name, value in values.items()
    }


def _nodes(node: Any) -> Iterator[Any]:
    """Every expression node under `node` (rule-engine has no public walker)."""
    if isinstance(node, rule_engine.ast.ExpressionBase):
        yield node
        for child in vars(node).values():
            yield from _nodes(child)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _nodes(item)


def _describe(exc: rule_engine.errors.EngineError) -> str:
    if isinstance(exc, rule_engine.errors.SymbolResolutionError):
        return f"unknown name {exc.symbol_name!r}"
    if isinstance(exc, rule_engine.errors.AttributeResolutionError):
        return f"unknown attribute {exc.attribute_name!r}"
    if isinstance(exc, rule_engine.errors.RuleSyntaxError):
        token = getattr(exc, "token", None)
        where = f" near {token.value!r}" if token is not None and getattr(token, "value", None) else ""
        return f"syntax error{where}"
    return str(exc.message if hasattr(exc, "message") else exc)
