"""The arithmetic of the KPIs (services/queries/kpis.py has the catalogue and its queries): an order's time in each
status, nearest-rank percentiles, rates, periods and their predecessors, day buckets folded into weeks and months,
trend arrows. Pure functions over plain data."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from models.status import TERMINAL_STATUSES

Grain = Literal["day", "week", "month"]
Better = Literal["up", "down"]


@dataclass(frozen=True)
class StageTime:
    seconds: float  # all its visits (the one under way not counted)
    entered_at: datetime  # the first visit
    left_at: datetime | None  # the last time it left; None while the order is in it


def stage_times(events: Sequence[tuple[str, datetime]]) -> dict[str, StageTime]:
    """An order's (status, at) events in sequence → how long it spent in each status. An event of the status it is
    already in (a payment recorded, say) continues the visit; a terminal status has no dwell; time running
    backwards between two events (clocks of two machines) counts as none."""
    times: dict[str, StageTime] = {}
    visits: list[tuple[str, datetime, datetime | None]] = []
    for status, at in events:
        if visits and visits[-1][0] == status:
            continue
        if visits:
            previous, entered, _ = visits[-1]
            visits[-1] = (previous, entered, at)
        visits.append((status, at, None))
    for status, entered, left in visits:
        if status in TERMINAL_STATUSES:
            continue
        spent = max((left - entered).total_seconds(), 0.0) if left is not None else 0.0
        before = times.get(status)
        if before is None:
            times[status] = StageTime(spent, entered, left)
        else:
            times[status] = StageTime(before.seconds + spent, before.entered_at, left)
    return times


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p of all values at or below it (p in (0, 1]). It is always
    one of the values (a real order's figure, one can drill down to it). None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[nearest_rank(len(ordered), p) - 1]


def nearest_rank(count: int, p: float) -> int:
    """The 1-based rank of the p-th percentile among `count` values: ceil(p·count), at least 1. (The database ranks
    p50 and p90 as (count·50 + 99) div 100 and (count·90 + 99) div 100: the same integers, tests/unit checks.)"""
    return max(math.ceil(p * count), 1)


def rate(part: int, whole: int) -> float | None:
    """part / whole as a fraction, None when there is nothing to count (no 0 % for an empty period)."""
    return None if whole == 0 else part / whole


def average_amount(amount: Decimal, count: int) -> Decimal | None:
    """An amount per order to the cent, half up as invoices round (1012.505 → 1012.51); None for no orders."""
    return (amount / count).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if count else None


def ratio(numerator: Decimal | float | None, denominator: Decimal | float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


@dataclass(frozen=True)
class Period:
    """Business days [first, last], both included."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the period ends ({self.last}) before it starts ({self.first})")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        """The period of the same length just before (the comparison of the trend arrows)."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    def each_day(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]


def bucket(day: date, grain: Grain) -> date:
    """The first day of the day's week (Monday) or month."""
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def fold(rows: Mapping[date, tuple[Decimal, int]], grain: Grain) -> dict[date, tuple[Decimal, int]]:
    """Per-day (amount, orders) summed into weeks or months."""
    out: dict[date, tuple[Decimal, int]] = {}
    for day, (amount, count) in sorted(rows.items()):
        key = bucket(day, grain)
        before = out.get(key, (Decimal("0.00"), 0))
        out[key] = (before[0] + amount, before[1] + count)
    return out


Trend = Literal["up", "down", "flat", "none"]


def trend(now: float | Decimal | None, before: float | Decimal | None, tolerance: float = 0.0) -> Trend:
    """Which way a figure moved against the previous period: flat within half a percent of it, or within
    `tolerance` (what its unit shows: a rate moving by less than 0.05 points reads the same)."""
    if now is None or before is None:
        return "none"
    now_f, before_f = float(now), float(before)
    if abs(now_f - before_f) <= max(0.005 * abs(before_f), tolerance, 1e-12):
        return "flat"
    return "up" if now_f > before_f else "down"


# The smallest move each unit shows (shown() below): less is "flat".
TREND_TOLERANCE = {"ratio": 0.0005, "times": 0.00005, "hours": 0.05, "seconds": 0.5, "money": 0.005, "count": 0.0}


AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-30", 0, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-180", 91, 180),
    ("181+", 181, None),
)


def age_bucket(received: date, today: date) -> str:
    """Which stock-age bucket a lot received on `received` is in today (days since receipt)."""
    age = max((today - received).days, 0)
    for name, low, high in AGE_BUCKETS:
        if age >= low and (high is None or age <= high):
            return name
    return AGE_BUCKETS[-1][0]


def closing_levels(first: date, days: int, closing_last: int, deltas: Mapping[date, int]) -> list[int]:
    """The closing level of each of `days` days from `first`, walking back from the last day's closing level
    (`closing_last`) through the day's net movements `deltas` (what each day added)."""
    levels = [0] * days
    level = closing_last
    for n in range(days - 1, -1, -1):
        levels[n] = level
        level -= deltas.get(first + timedelta(days=n), 0)
    return levels


def shown(unit: str, value: float | Decimal | int | None) -> str:
    """A figure as people read it: 1h 23m, 87.5 %, 12,400.00, 36.2 h, 1.23×; "–" when there is nothing to count."""
    if value is None:
        return "–"
    if unit == "seconds":
        seconds = int(round(float(value)))
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        if days:
            return f"{days}d {hours}h"
        if hours:
            return f"{hours}h {minutes:02d}m"
        return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
    if unit == "ratio":
        return f"{float(value) * 100:.1f} %"
    if unit == "money":
        return f"{Decimal(value):,.2f}"
    if unit == "hours":
        in_hours = float(value)
        if in_hours >= 1:
            return f"{in_hours:.1f} h"
        return f"{in_hours * 60:.0f} min" if in_hours * 60 >= 1 else f"{in_hours * 3600:.0f} s"
    if unit == "times":
        turns = float(value)
        return f"{turns:.2f}×" if turns >= 0.1 or turns == 0 else f"{turns:.4f}×"
    return f"{int(value):,}"


# Why orders stop, as the cancellation and rejection KPIs group them: the first pattern found in the reason the
# workflow recorded (workflows/, domain/validation.py) names its kind; an order's particulars are left out.
STOP_REASONS: tuple[tuple[str, str], ...] = (
    ("unknown customer", "unknown customer"),
    ("address incomplete", "ship-to address incomplete"),
    ("unknown SKU", "unknown SKU"),
    ("is not active", "SKU not active"),
    ("more than one line", "SKU on two lines"),
    ("outside", "price outside the tolerance"),
    ("cancelled in Temporal", "cancelled in Temporal"),
    ("backorder deadline", "backorder deadline passed"),
    ("payment deadline", "payment deadline passed"),
    ("approval deadline", "no decision before the deadline"),
    ("rejected by", "rejected by an approver"),
    ("cancelled", "cancelled by a person"),
)


def stop_reason(reason: str) -> str:
    for pattern, kind in STOP_REASONS:
        if pattern in reason:
            return kind
    return reason.split(":")[0].split("(")[0].strip()[:80] or "(none)"
