"""Writes docs/kpis.md from the KPI catalogue (services/queries/kpis.py), so the page and the code cannot disagree:
`make kpi-docs`; tests/unit/test_kpi_docs.py fails when the page is behind."""

from __future__ import annotations

import sys
from pathlib import Path

from services.queries.kpis import CATALOGUE, FAMILIES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "kpis.md"
GROUPS = {"flow": "Order flow", "sales": "Sales", "stock": "Stock", "carriers": "Carriers"}
UNITS = {
    "seconds": "duration",
    "ratio": "share",
    "money": "money",
    "count": "count",
    "times": "times",
    "hours": "hours",
}

INTRO = """# KPIs — the catalogue

Every figure the cockpit (`/console/cockpit`), `GET /kpis` and `orderflow report` show, as defined in
`services/queries/kpis.py` (this page is generated from it: `make kpi-docs`). The arithmetic (nearest-rank
percentiles, rates, periods) is `domain/kpis.py`.

**Period.** Business days (ORDERFLOW_BUSINESS_TIME_ZONE), first and last included; the default is the last 30
days. Each KPI says which moment puts an order in a period (received, completed, dispatched, …). Cards compare
with the period of the same length just before; the arrow is green when the KPI moved the way that is better.

**Filters** (every KPI that counts orders): channel, region (the ship-to region), warehouse (an order belongs to
the warehouses that issued its pick lists; for parcels, the parcel's warehouse), carrier (orders with a parcel of
that carrier), product line (orders with a line of it), sales rep. Stock KPIs take the warehouse and product line
only. Breakdowns by warehouse, carrier or product line count an order in each of its groups.

**Scope.** Who asks decides what is counted, in the queries: a sales rep their own orders (and no stock),
warehouse staff the orders and stock of their warehouses, finance, ops and management everything.

**Drill-down.** A card, bar or slice opens the orders it counted that made it worse, worst first (`GET
/kpis/{kpi}/orders`, the cockpit's order list): for a time the slowest, for a rate those that failed it.

**Exact under late news.** The read model (`order_facts`, `order_stage_times`, `order_lines`) is recomputed from
an order's events, lines and parcels in the transaction of every step that changes it (services/order_facts.py),
so news that arrives late or twice leaves it exact; stock history is walked back from today's levels through
the receipts, locks, releases and dispatches themselves.
"""


def render() -> str:
    parts = [INTRO]
    for group, title in GROUPS.items():
        parts.append(f"\n## {title}\n\n| KPI | id | unit | better | by | definition |\n|---|---|---|---|---|---|")
        for kpi in CATALOGUE.values():
            if kpi.group != group:
                continue
            dims = ", ".join(FAMILIES[kpi.family].dimensions)
            better = "higher" if kpi.better == "up" else "lower"
            parts.append(f"| {kpi.title} | `{kpi.id}` | {UNITS[kpi.unit]} | {better} | {dims} | {kpi.definition} |")
    return "\n".join(parts) + "\n"


def main() -> None:
    if "--check" in sys.argv:
        sys.exit(0 if PAGE.read_text(encoding="utf-8") == render() else 1)
    PAGE.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
