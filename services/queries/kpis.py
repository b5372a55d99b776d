"""KPIs of the read model: orders by status, lead time intake → completion (p50/p90), mean seconds per stage."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.status import OrderStatus
from models.tables import OrderEvent, SalesOrder


def stage_durations(session: Session, order_no: str) -> dict[str, float]:
    """Seconds spent in each status (the last one counts until now only if the order is still open)."""
    events = session.exec(select(OrderEvent).where(OrderEvent.order_no == order_no).order_by(col(OrderEvent.seq))).all()
    durations: dict[str, float] = defaultdict(float)
    for current, following in zip(events, events[1:], strict=False):
        durations[current.status] += (following.at - current.at).total_seconds()
    return dict(durations)


def kpi_report(session: Session) -> dict[str, Any]:
    """Counts by status, lead time intake→completion (p50/p90) and mean seconds per stage."""
    by_status = dict(session.exec(select(SalesOrder.status, func.count()).group_by(SalesOrder.status)).all())
    lead_times: list[float] = []
    stage_totals: dict[str, list[float]] = defaultdict(list)
    for order in session.exec(select(SalesOrder).where(SalesOrder.status == OrderStatus.COMPLETED)).all():
        lead_times.append((order.updated_at - order.created_at).total_seconds())
        for stage, seconds in stage_durations(session, order.order_no).items():
            stage_totals[stage].append(seconds)
    lead_times.sort()

    def pct(p: float) -> float | None:
        return round(lead_times[min(len(lead_times) - 1, int(p * len(lead_times)))], 1) if lead_times else None

    return {
        "orders_by_status": by_status,
        "completed": len(lead_times),
        "lead_time_seconds": {"p50": pct(0.5), "p90": pct(0.9)},
        "mean_stage_seconds": {stage: round(sum(v) / len(v), 1) for stage, v in sorted(stage_totals.items())},
    }
