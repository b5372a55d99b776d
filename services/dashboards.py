"""Cockpits: the two the business gets out of the box (fulfilment efficiency, sales performance) and the ones
people compose from the KPI catalogue — cards, charts (a KPI by a dimension, as a line, bars or a pie) and default
filters — kept per user or shared with a role. Who may see, change or delete one is decided here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlmodel import Session, col, or_, select

from models.status import Role
from models.tables import Dashboard, User
from models.text import storable
from services.errors import CommandError, NotFound
from services.queries.kpis import CATALOGUE, FILTERS, dimensions_of

ChartKind = Literal["line", "bar", "pie"]
MAX_CARDS = 40
MAX_CHARTS = 12


class ChartSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kpi: str
    by: str
    kind: ChartKind = "bar"

    @model_validator(mode="after")
    def _known(self) -> ChartSpec:
        if self.kpi not in CATALOGUE:
            raise ValueError(f"no KPI {self.kpi!r}")
        if self.by not in dimensions_of(self.kpi):
            raise ValueError(
                f"{self.kpi} cannot be broken down by {self.by} (it can by {', '.join(dimensions_of(self.kpi))})"
            )
        return self


class DashboardSpec(BaseModel):
    """What a cockpit shows: KPI cards in sections by group, charts, and the filters it opens with."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cards: list[str] = Field(default_factory=list, max_length=MAX_CARDS)
    charts: list[ChartSpec] = Field(default_factory=list, max_length=MAX_CHARTS)
    filters: dict[str, str] = Field(default_factory=dict)  # period, from, to and the catalogue's FILTERS

    @field_validator("cards")
    @classmethod
    def _cards(cls, cards: list[str]) -> list[str]:
        unknown = [k for k in cards if k not in CATALOGUE]
        if unknown:
            raise ValueError(f"no KPI {', '.join(unknown)}")
        return list(dict.fromkeys(cards))

    @field_validator("filters")
    @classmethod
    def _filters(cls, filters: dict[str, str]) -> dict[str, str]:
        allowed = ("period", "from", "to", *FILTERS)
        wrong = [name for name in filters if name not in allowed]
        if wrong:
            raise ValueError(f"no filter {', '.join(wrong)} (filters: {', '.join(allowed)})")
        return {name: storable(value.strip())[:64] for name, value in filters.items() if value.strip()}

    @model_validator(mode="after")
    def _something(self) -> DashboardSpec:
        if not self.cards and not self.charts:
            raise ValueError("a cockpit needs at least one card or chart")
        return self


@dataclass(frozen=True)
class Board:
    """A cockpit to show: a built-in (`slug` its name) or a saved one (slug `d<id>`)."""

    slug: str
    name: str  # a built-in's is an i18n key
    spec: DashboardSpec
    id: int | None = None
    owner: str = ""
    shared_role: str | None = None
    updated_at: datetime | None = None

    @property
    def builtin(self) -> bool:
        return self.id is None


FULFILMENT = DashboardSpec(
    cards=[
        "cycle_time_p50", "cycle_time_p90", "stage_dwell_p90", "approval_wait_p90", "stuck_orders",
        "on_time_dispatch_rate", "otif_rate", "perfect_order_rate", "order_fill_rate", "line_fill_rate",
        "unit_fill_rate", "backorder_rate", "cancellation_rate", "rejection_rate", "stage_dwell_p50",
        "approval_wait_p50",
        "stock_out_rate", "inventory_turnover", "stock_units", "stock_value", "aged_stock_share", "skus_below_reorder",
        "transit_time_avg", "on_time_delivery_rate", "first_attempt_rate", "sign_for_rate", "exception_rate",
    ],
    charts=[
        ChartSpec(kpi="stage_dwell_p90", by="stage", kind="bar"),
        ChartSpec(kpi="cycle_time_p90", by="day", kind="line"),
        ChartSpec(kpi="stuck_orders", by="stage", kind="bar"),
        ChartSpec(kpi="on_time_dispatch_rate", by="warehouse", kind="bar"),
        ChartSpec(kpi="cancellation_rate", by="reason", kind="pie"),
        ChartSpec(kpi="on_time_delivery_rate", by="carrier", kind="bar"),
        ChartSpec(kpi="stock_units", by="age", kind="bar"),
        ChartSpec(kpi="transit_time_avg", by="region", kind="bar"),
    ],
)  # fmt: skip
SALES = DashboardSpec(
    cards=[
        "sales_amount",
        "order_count",
        "average_order_value",
        "cancellation_rate",
        "on_time_dispatch_rate",
        "perfect_order_rate",
    ],  # fmt: skip
    charts=[
        ChartSpec(kpi="sales_amount", by="day", kind="line"),
        ChartSpec(kpi="sales_amount", by="product_line", kind="pie"),
        ChartSpec(kpi="sales_amount", by="channel", kind="bar"),
        ChartSpec(kpi="sales_amount", by="region", kind="bar"),
        ChartSpec(kpi="sales_amount", by="sales_rep", kind="bar"),
        ChartSpec(kpi="order_count", by="week", kind="bar"),
        ChartSpec(kpi="average_order_value", by="channel", kind="bar"),
    ],
)
BUILT_IN = {
    "fulfilment": Board("fulfilment", "fulfilment", FULFILMENT),  # names are i18n keys
    "sales": Board("sales", "sales_performance", SALES),
}


def spec_of(definition: object) -> DashboardSpec:
    try:
        return DashboardSpec.model_validate(definition)
    except ValidationError as exc:
        problems = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise CommandError(f"the cockpit cannot be saved: {problems}") from None


def _visible(user: User) -> Any:
    return or_(col(Dashboard.owner) == user.name, col(Dashboard.shared_role) == user.role)


def boards_for(session: Session, user: User) -> list[Board]:
    """The built-ins, then the user's own, then those shared with their role (by name)."""
    saved = session.exec(select(Dashboard).where(_visible(user)).order_by(col(Dashboard.name), col(Dashboard.id)))
    return [*BUILT_IN.values(), *(_board(row) for row in saved)]


def _board(row: Dashboard) -> Board:
    return Board(f"d{row.id}", row.name, DashboardSpec.model_validate(row.definition), id=row.id, owner=row.owner,
                 shared_role=row.shared_role, updated_at=row.updated_at)  # fmt: skip


def board(session: Session, user: User, slug: str) -> Board:
    """A built-in by its slug, or a saved one (`d<id>`) the user may see; NotFound otherwise (the same for both)."""
    if slug in BUILT_IN:
        return BUILT_IN[slug]
    row = _row(session, slug)
    if row is None or not (row.owner == user.name or row.shared_role == user.role):
        raise NotFound(f"no cockpit {slug}")
    return _board(row)


def _row(session: Session, slug: str) -> Dashboard | None:
    if not slug.startswith("d") or not slug[1:].isdigit() or len(slug) > 11:
        return None
    return session.get(Dashboard, int(slug[1:]))


def _share(role: str | None) -> str | None:
    if not role:
        return None
    if role not in {r.value for r in Role}:
        raise CommandError(f"no role {role!r}")
    return role


def save(
    session: Session, user: User, name: str, definition: object, shared_role: str | None, now: datetime,
    slug: str | None = None,
) -> Board:  # fmt: skip
    """Create a cockpit (slug None) or change one the user owns (nobody else may; shared ones are read-only to
    the role they are shared with)."""
    title = storable(name.strip())[:100]
    if not title:
        raise CommandError("the cockpit needs a name")
    spec = spec_of(definition)
    role = _share(shared_role)
    if slug is None:
        row = Dashboard(name=title, owner=user.name, shared_role=role, definition=spec.model_dump(mode="json"),
                        created_at=now, updated_at=now)  # fmt: skip
    else:
        found = _row(session, slug)
        if found is None or found.owner != user.name:
            raise NotFound(f"no cockpit {slug} of yours")
        row = found
        row.name, row.shared_role, row.definition, row.updated_at = title, role, spec.model_dump(mode="json"), now
    session.add(row)
    session.flush()
    return _board(row)


def delete(session: Session, user: User, slug: str) -> None:
    found = _row(session, slug)
    if found is None or found.owner != user.name:
        raise NotFound(f"no cockpit {slug} of yours")
    session.delete(found)
