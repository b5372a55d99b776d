"""The staff list an admin manages (/console/admin): each user with role, contacts, warehouses, notice channels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from models.tables import User, UserWarehouse, Warehouse


@dataclass(frozen=True)
class StaffMember:
    name: str
    role: str
    email: str
    phone: str
    warehouses: list[str]
    notify_email: bool
    notify_sms: bool
    disabled: bool
    can_sign_in: bool  # has a console password
    created_at: datetime


def staff(session: Session, name: str | None = None) -> list[StaffMember]:
    """Every user by name (or the one named)."""
    users = select(User).order_by(col(User.name))
    rows = select(UserWarehouse).order_by(col(UserWarehouse.warehouse))
    if name is not None:
        users, rows = users.where(User.name == name), rows.where(UserWarehouse.user_name == name)
    memberships: dict[str, list[str]] = {}
    for row in session.exec(rows).all():
        memberships.setdefault(row.user_name, []).append(row.warehouse)
    return [
        StaffMember(
            name=user.name,
            role=user.role,
            email=user.email or "",
            phone=user.phone or "",
            warehouses=memberships.get(user.name, []),
            notify_email=user.notify_email,
            notify_sms=user.notify_sms,
            disabled=user.disabled,
            can_sign_in=user.password_hash is not None,
            created_at=user.created_at,
        )
        for user in session.exec(users).all()
    ]


def member(session: Session, name: str) -> StaffMember | None:
    found = staff(session, name)
    return found[0] if found else None


def warehouses(session: Session) -> list[Warehouse]:
    return list(session.exec(select(Warehouse).order_by(col(Warehouse.code))).all())
