"""Pick lists: one per warehouse, lines in walking order (bin path)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from models.allocation import Allocation


@dataclass(frozen=True)
class PickLine:
    bin: str
    sku: str
    lot: str
    qty: int
    line_no: int


def bin_path_key(bin_code: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order of bin codes like A-02-10 < A-10-01: numbers compare as numbers."""
    parts = re.split(r"(\d+)", bin_code)
    return tuple((0, int(part)) if part.isdecimal() else (1, part) for part in parts if part)


def pick_lists(allocations: list[Allocation]) -> dict[str, list[PickLine]]:
    by_warehouse: dict[str, list[PickLine]] = defaultdict(list)
    for alloc in allocations:
        by_warehouse[alloc.warehouse].append(PickLine(alloc.bin, alloc.sku, alloc.lot, alloc.qty, alloc.line_no))
    return {
        code: sorted(lines, key=lambda line: (bin_path_key(line.bin), line.sku, line.lot))
        for code, lines in sorted(by_warehouse.items())
    }
