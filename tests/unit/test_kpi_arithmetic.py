"""The KPIs' arithmetic (domain/kpis.py), without a database: times in each status, nearest-rank percentiles,
periods, buckets, trends, stock ages, levels walked back, figures in words, stop reasons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from domain.kpis import (
    Period,
    age_bucket,
    bucket,
    closing_levels,
    fold,
    nearest_rank,
    percentile,
    rate,
    shown,
    stage_times,
    stop_reason,
    trend,
)

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_stage_times_merge_repeats_sum_visits_and_leave_the_current_and_terminal_stages_open() -> None:
    events = [
        ("RECEIVED", at(0)),
        ("AWAITING_APPROVAL", at(2)),
        ("AWAITING_APPROVAL", at(30)),  # a same-status event (a reminder) continues the visit
        ("APPROVED", at(62)),
        ("BACKORDERED", at(63)),
        ("APPROVED", at(123)),  # back from the backorder: a second visit
        ("ALLOCATED", at(124)),
        ("PICKING", at(125)),
    ]
    times = stage_times(events)
    assert times["RECEIVED"].seconds == 120
    assert times["AWAITING_APPROVAL"].seconds == 60 * 60 and times["AWAITING_APPROVAL"].left_at == at(62)
    assert times["APPROVED"].seconds == 60 + 60 and times["APPROVED"].entered_at == at(62)
    assert times["APPROVED"].left_at == at(124)
    assert times["PICKING"].seconds == 0 and times["PICKING"].left_at is None  # it is there now
    done = stage_times([*events, ("DISPATCHED", at(185)), ("COMPLETED", at(300))])
    assert done["PICKING"].seconds == 60 * 60 and "COMPLETED" not in done


def test_time_running_backwards_between_two_machines_counts_as_none() -> None:
    assert stage_times([("RECEIVED", at(10)), ("APPROVED", at(9))])["RECEIVED"].seconds == 0


def test_nearest_rank_percentiles_are_always_one_of_the_values() -> None:
    values = [15.0, 20, 35, 40, 50]
    assert percentile(values, 0.5) == 35
    assert percentile(values, 0.9) == 50  # ceil(4.5) = 5th
    assert percentile(values, 0.4) == 20  # exactly 2 of 5
    assert percentile([7.0], 0.9) == 7
    assert percentile([], 0.5) is None
    assert rate(0, 0) is None and rate(1, 4) == 0.25


def test_periods_their_predecessors_and_buckets() -> None:
    p = Period(date(2026, 11, 1), date(2026, 11, 30))
    assert p.days == 30 and p.previous() == Period(date(2026, 10, 2), date(2026, 10, 31))
    with pytest.raises(ValueError, match="before it starts"):
        Period(date(2026, 11, 2), date(2026, 11, 1))
    assert bucket(date(2026, 12, 3), "week") == date(2026, 11, 30)  # a Thursday → its Monday
    assert bucket(date(2026, 12, 3), "month") == date(2026, 12, 1)
    days = {date(2026, 11, 29): (Decimal("10.00"), 1), date(2026, 11, 30): (Decimal("5.50"), 2)}
    assert fold(days, "week") == {date(2026, 11, 23): (Decimal("10.00"), 1), date(2026, 11, 30): (Decimal("5.50"), 2)}
    assert fold(days, "month") == {date(2026, 11, 1): (Decimal("15.50"), 3)}


def test_trends_and_ages() -> None:
    assert trend(0.9, 0.8) == "up" and trend(0.8, 0.9) == "down"
    assert trend(100.4, 100) == "flat" and trend(None, 1) == "none"
    today = date(2026, 12, 1)
    assert [age_bucket(today - timedelta(days=d), today) for d in (0, 30, 31, 90, 91, 180, 181)] == [
        "0-30", "0-30", "31-60", "61-90", "91-180", "91-180", "181+",
    ]  # fmt: skip


def test_closing_levels_are_walked_back_from_today() -> None:
    # 10 left today (Dec 3); Dec 3 took 4, Dec 2 received 6: closing Dec 1 = 10 + 4 - 6 = 8, Dec 2 = 14.
    levels = closing_levels(date(2026, 12, 1), 3, 10, {date(2026, 12, 3): -4, date(2026, 12, 2): 6})
    assert levels == [8, 14, 10]


def test_figures_in_words() -> None:
    assert shown("seconds", 5400) == "1h 30m" and shown("seconds", 90061) == "1d 1h" and shown("seconds", 42) == "42s"
    assert shown("ratio", 0.875) == "87.5 %" and shown("money", Decimal("12400")) == "12,400.00"
    assert shown("hours", 36.24) == "36.2 h" and shown("times", 1.234) == "1.23×" and shown("count", 1200) == "1,200"
    assert shown("ratio", None) == "–"


def test_stop_reasons_group_by_kind_not_by_particulars() -> None:
    assert stop_reason("line 2: unknown SKU SKU-9") == "unknown SKU"
    assert stop_reason("line 1: unit price 1.00 for SKU-1001 is outside 5% of list price 199.00") == (
        "price outside the tolerance"
    )
    assert stop_reason("cancelled by alice: customer ordered twice") == "cancelled by a person"
    assert stop_reason("rejected by derek (finance_director): too big") == "rejected by an approver"
    assert stop_reason("no finance decision before the approval deadline") == "no decision before the deadline"
    assert stop_reason("backorder deadline passed (SKU-1 short 3)") == "backorder deadline passed"


def test_a_move_smaller_than_the_figure_shows_is_flat() -> None:
    assert trend(0.0004, 0.0, 0.0005) == "flat" and trend(0.002, 0.0, 0.0005) == "up"
    assert shown("hours", 0.25) == "15 min" and shown("times", 0.0123) == "0.0123×"
    assert shown("hours", 0.001) == "4 s"  # a demo parcel travels seconds


def test_the_databases_rank_is_the_nearest_rank() -> None:
    """services/queries/kpis.py `_ranked` asks the database for rank (n·50 + 99) div 100 and (n·90 + 99) div 100."""
    for n in range(1, 20001):
        assert (n * 50 + 99) // 100 == nearest_rank(n, 0.5)
        assert (n * 90 + 99) // 100 == nearest_rank(n, 0.9)
