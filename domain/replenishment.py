"""When to ask purchasing for stock, and how much: pure arithmetic over availability."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    sku: str
    warehouse: str
    qty: int
    reason: str  # backorder | reorder_point


def backorder_needs(shortages: dict[str, int], warehouse: str, reorder_levels: dict[str, int]) -> list[Need]:
    """A short order asks its nearest warehouse for the shortfall plus enough to stand at the reorder level."""
    return [
        Need(sku, warehouse, qty + reorder_levels.get(sku, 0), "backorder")
        for sku, qty in sorted(shortages.items())
        if qty > 0
    ]


def reorder_needs(available: dict[tuple[str, str], int], reorder_levels: dict[str, int]) -> list[Need]:
    """Every (sku, warehouse) whose available stock fell below the SKU's reorder level, topped up to it."""
    return [
        Need(sku, warehouse, reorder_levels[sku] - qty, "reorder_point")
        for (sku, warehouse), qty in sorted(available.items())
        if sku in reorder_levels and qty < reorder_levels[sku]
    ]
