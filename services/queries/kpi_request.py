"""What a KPI question says, read from text the same way for `GET /kpis`, the cockpit's query strings and
`orderflow report`: the period, the filters, the breakdown. Bad input is refused with what was wrong."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.kpis import Period
from services.errors import CommandError
from services.queries.kpis import CATALOGUE, FILTERS, KpiFilters, dimensions_of

DEFAULT_DAYS = 30
MAX_DAYS = 366
# The periods the cockpit offers by name (besides from/to): the last n days up to today, or this month so far.
NAMED_PERIODS = {"today": 1, "7d": 7, "30d": 30, "90d": 90, "365d": 365}
PARAMETERS = ("period", "from", "to", *FILTERS, "currency")


class BadKpiQuestion(CommandError):
    """A period, filter or breakdown that cannot be answered: the message says why."""


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadKpiQuestion(f"{name}: {text!r} is not a date (write it as 2026-12-01)") from None


def period_of(params: Mapping[str, str], today: date) -> Period:
    """`from`/`to` (inclusive days), else a named `period` (today, 7d, 30d, 90d, 365d, mtd), else the last 30 days."""
    first, last = params.get("from") or "", params.get("to") or ""
    if first or last:
        end = _day(last, "to") if last else today
        start = _day(first, "from") if first else end - timedelta(days=DEFAULT_DAYS - 1)
    else:
        named = params.get("period") or "30d"
        if named == "mtd":
            start, end = today.replace(day=1), today
        elif named in NAMED_PERIODS:
            start, end = today - timedelta(days=NAMED_PERIODS[named] - 1), today
        else:
            names = ", ".join([*NAMED_PERIODS, "mtd"])
            raise BadKpiQuestion(f"period: {named!r} is not one of {names} (or give from and to)")
    if end < start:
        raise BadKpiQuestion(f"the period ends ({end}) before it starts ({start})")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadKpiQuestion(f"a period may span at most {MAX_DAYS} days")
    return Period(start, end)


def filters_of(params: Mapping[str, str], zone: ZoneInfo, now: datetime) -> KpiFilters:
    """The period and the filters (empty values mean "all")."""
    period = period_of(params, now.astimezone(zone).date())
    given = {name: value.strip()[:64] for name in FILTERS if (value := params.get(name) or "").strip()}
    currency = (params.get("currency") or "CNY").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise BadKpiQuestion(f"currency: {currency!r} is not a currency code such as CNY")
    return KpiFilters(period=period, currency=currency, **given)


def kpi_of(kpi_id: str) -> str:
    if kpi_id not in CATALOGUE:
        raise BadKpiQuestion(f"no KPI {kpi_id!r} (the catalogue: {', '.join(CATALOGUE)})")
    return kpi_id


def breakdown_of(kpi_id: str, by: str | None) -> str:
    """The dimension to break `kpi_id` down by: the one asked for if the KPI has it, else its first."""
    allowed = dimensions_of(kpi_of(kpi_id))
    if not by:
        return allowed[0]
    if by not in allowed:
        raise BadKpiQuestion(f"{kpi_id} cannot be broken down by {by!r} (it can by {', '.join(allowed)})")
    return by


def kpis_of(text: str | None) -> list[str] | None:
    """A comma-separated list of KPI ids (None: all)."""
    if not text:
        return None
    return [kpi_of(k.strip()) for k in text.split(",") if k.strip()]
