"""Stock allocation's data: the one allocation type (a line's units locked in one lot) and the strategy names."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# Lots in `fifo` order (oldest received first) or `fefo` (soonest expiry first).
LotOrder = Literal["fifo", "fefo"]
# `split`: the fewest warehouses that cover the order; `single_warehouse`: one parcel or nothing.
AllocationMode = Literal["split", "single_warehouse"]


class Allocation(BaseModel):
    """Units of one order line locked in one lot: what domain.allocation plans, the inventory step reserves, the
    workflow carries and the pick lists are made from."""

    model_config = ConfigDict(frozen=True)
    line_no: int
    sku: str
    warehouse: str
    lot_id: int
    lot: str
    bin: str
    qty: int
