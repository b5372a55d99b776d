"""Out of office: an approver names a substitute for a span of days (their own, or an admin for them). While it
stands, the substitute sees the approver's to-dos beside their own and decides them with the approver's role; the
decision is signed and audited as taken by the substitute "on behalf of" the approver, and the four-eyes rule holds
for both. One substitute per approver at a time, so "on behalf of" always names one person. Days are the
business's (Settings.business_time_zone); a span is stored as the instants it starts and ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Engine
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from core.db import read_only
from models.tables import Substitution, User
from services.errors import CommandError
from services.queries.inbox import decidable_levels
from services.users import InvalidFields


@dataclass(frozen=True)
class StandIn:
    """A substitution as people read it: whole days in the business's zone."""

    id: int
    principal: str
    principal_role: str
    substitute: str
    first_day: date
    last_day: date
    created_by: str
    standing: bool  # it covers now


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _stand_in(row: Substitution, role: str, zone: ZoneInfo, now: datetime) -> StandIn:
    return StandIn(
        id=row.id or 0,
        principal=row.principal,
        principal_role=role,
        substitute=row.substitute,
        first_day=row.starts_at.astimezone(zone).date(),
        last_day=(row.ends_at.astimezone(zone) - timedelta(days=1)).date(),
        created_by=row.created_by,
        standing=row.starts_at <= now < row.ends_at,
    )


def name_substitute(
    session: Session,
    *,
    principal: str,
    substitute: str,
    first_day: date,
    last_day: date,
    by: str,
    now: datetime,
    zone: ZoneInfo,
    max_days: int,
) -> Substitution:
    """In the caller's unit of work: `substitute` decides for `principal` from `first_day` to `last_day` (both
    included). InvalidFields names each problem (principal, substitute, first_day, last_day); nothing changes."""
    absent = session.get(User, principal)
    if absent is None:
        raise CommandError(f"unknown user {principal}")
    errors: dict[str, str] = {}
    if not decidable_levels(absent.role):
        errors["principal"] = f"{principal} ({absent.role}) decides no approvals: there is nothing to hand over"
    stand_in = session.get(User, substitute)
    if substitute == principal:
        errors["substitute"] = "name someone else"
    elif stand_in is None or stand_in.disabled:
        errors["substitute"] = f"no active user {substitute}"
    today = now.astimezone(zone).date()
    if last_day < first_day:
        errors["last_day"] = "the last day comes before the first"
    elif last_day < today:
        errors["last_day"] = "that span is over already"
    elif (last_day - first_day).days + 1 > max_days:
        errors["last_day"] = f"at most {max_days} days at a time"
    starts_at, ends_at = _day_start(first_day, zone), _day_start(last_day + timedelta(days=1), zone)
    if not errors:
        for other in session.exec(_live(now).where(Substitution.principal == principal)):
            if other.starts_at < ends_at and starts_at < other.ends_at:
                theirs = _stand_in(other, absent.role, zone, now)
                errors["first_day"] = (
                    f"{theirs.substitute} already stands in for {principal} from {theirs.first_day} to"
                    f" {theirs.last_day}: withdraw that first (one substitute at a time)"
                )
                break
    if errors:
        raise InvalidFields(errors)
    row = Substitution(
        principal=principal, substitute=substitute, starts_at=starts_at, ends_at=ends_at, created_by=by, created_at=now
    )
    session.add(row)
    session.flush()
    return row


def withdraw(session: Session, substitution_id: int, *, principal: str, now: datetime) -> None:
    """In the caller's unit of work: end `principal`'s substitution now (kept as a record); CommandError if none."""
    row = session.get(Substitution, substitution_id)
    if row is None or row.principal != principal or row.withdrawn_at is not None or row.ends_at <= now:
        raise CommandError(f"{principal} has no such substitution in force or to come")
    row.withdrawn_at = now
    session.add(row)


def _live_conditions(now: datetime) -> list[ColumnElement[bool]]:
    """Not withdrawn and not over: standing now or to come."""
    return [col(Substitution.withdrawn_at).is_(None), col(Substitution.ends_at) > now]


def _live(now: datetime) -> SelectOfScalar[Substitution]:
    return select(Substitution).where(*_live_conditions(now))


def substitutions_of(session: Session, principal: str, now: datetime, zone: ZoneInfo) -> list[StandIn]:
    """`principal`'s substitutions standing now or to come, the soonest first."""
    role = (user.role if (user := session.get(User, principal)) else "") or ""
    rows = session.exec(
        _live(now).where(Substitution.principal == principal).order_by(col(Substitution.starts_at))
    ).all()
    return [_stand_in(row, role, zone, now) for row in rows]


def standing_for(session: Session, substitute: str, now: datetime, zone: ZoneInfo) -> list[StandIn]:
    """Whom `substitute` stands in for right now (active approvers only: a disabled one's work is nobody's)."""
    rows = session.exec(
        select(Substitution, User.role)
        .join(User, col(User.name) == col(Substitution.principal))
        .where(
            *_live_conditions(now),
            Substitution.substitute == substitute,
            Substitution.starts_at <= now,
            col(User.disabled).is_(False),
        )
        .order_by(col(Substitution.principal))
    ).all()
    return [_stand_in(row, role, zone, now) for row, role in rows]


def acting_role(engine: Engine, substitute: str, principal: str, now: datetime) -> str | None:
    """The role `substitute` decides with for `principal` now, or None when no substitution stands."""
    with read_only(engine) as session:
        for stand_in in standing_for(session, substitute, now, ZoneInfo("UTC")):
            if stand_in.principal == principal:
                return stand_in.principal_role
    return None
