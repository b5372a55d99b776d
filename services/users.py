"""Users and their API tokens: only a token's hash is stored; a token is shown once, when it is made."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.db import read_only
from models.status import Role
from models.tables import User, UserWarehouse, Warehouse
from services.errors import CommandError


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "of_" + secrets.token_urlsafe(24)


def add_user(session: Session, name: str, role: Role, *, email: str | None = None, phone: str | None = None) -> str:
    """Add the user in the caller's unit of work; returns their token (shown once)."""
    token = new_token()
    session.add(User(name=name, role=role.value, token_hash=hash_token(token), email=email, phone=phone))
    return token


def reissue_token(session: Session, name: str, role: Role) -> str:
    """A fresh token for `name` with `role` (created if missing); the old token stops working."""
    user = session.get(User, name)
    if user is None:
        return add_user(session, name, role)
    token = new_token()
    user.token_hash = hash_token(token)
    user.role = role.value
    session.add(user)
    return token


def user_by_token(session: Session, token: str) -> User | None:
    digest = hash_token(token)
    return session.exec(select(User).where(User.token_hash == digest)).first()


def user_role(engine: Engine, name: str) -> str:
    with read_only(engine) as session:
        user = session.get(User, name)
        if user is None:
            raise CommandError(f"unknown user {name}")
        return user.role


def set_warehouses(session: Session, name: str, codes: list[str]) -> None:
    """In the caller's unit of work: the warehouses `name` works in, exactly `codes` (unknown codes refused)."""
    known = set(session.exec(select(Warehouse.code)).all())
    unknown = sorted(set(codes) - known)
    if unknown:
        raise CommandError(f"unknown warehouse {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for row in session.exec(select(UserWarehouse).where(UserWarehouse.user_name == name)).all():
        session.delete(row)
    session.flush()
    session.add_all(UserWarehouse(user_name=name, warehouse=code) for code in sorted(set(codes)))


def warehouses_of(session: Session, name: str) -> list[str]:
    return sorted(session.exec(select(UserWarehouse.warehouse).where(UserWarehouse.user_name == name)).all())


def set_notice_channels(session: Session, name: str, *, email: bool, sms: bool) -> None:
    """In the caller's unit of work: whether `name` also gets staff notices by e-mail and by SMS (the console's
    inbox always has them). A channel needs its address on file."""
    user = session.get(User, name)
    if user is None:
        raise CommandError(f"unknown user {name}")
    if email and not user.email:
        raise CommandError(f"{name} has no e-mail address on file")
    if sms and not user.phone:
        raise CommandError(f"{name} has no phone number on file")
    user.notify_email, user.notify_sms = email, sms
    session.add(user)


USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")
PHONE = re.compile(r"\+?[0-9][0-9 -]{5,30}")


class InvalidFields(CommandError):
    """Input refused field by field: `errors` maps each field to why (an admin form shows them beside it)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in errors.items()))
        self.errors = errors


def _contact_errors(email: str | None, phone: str | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if email and (len(email) > 200 or not EMAIL.fullmatch(email) or not email.isprintable()):
        errors["email"] = "an e-mail address like name@example.com"
    if phone and not PHONE.fullmatch(phone):
        errors["phone"] = "a phone number: digits, an optional + in front"
    return errors


def create_user(
    session: Session, name: str, role: Role, *, email: str | None, phone: str | None, warehouses: list[str]
) -> str:
    """In the caller's unit of work: a new user (InvalidFields names what is wrong); returns their API token."""
    errors = _contact_errors(email, phone)
    if not USER_NAME.fullmatch(name):
        errors["name"] = "letters, digits, . _ - (at most 64), starting with a letter or digit"
    elif session.get(User, name) is not None:
        errors["name"] = f"user {name} already exists"
    if errors:
        raise InvalidFields(errors)
    token = add_user(session, name, role, email=email or None, phone=phone or None)
    try:
        session.flush()
    except IntegrityError:  # added a moment ago by another admin (Postgres lets both reach the insert)
        raise InvalidFields({"name": f"user {name} already exists"}) from None
    set_warehouses(session, name, warehouses)
    return token


def update_user(
    session: Session,
    name: str,
    *,
    role: Role,
    email: str | None,
    phone: str | None,
    warehouses: list[str],
    notify_email: bool,
    notify_sms: bool,
) -> None:
    """In the caller's unit of work: what an admin may change about a user, all or nothing."""
    user = session.get(User, name)
    if user is None:
        raise CommandError(f"unknown user {name}")
    errors = _contact_errors(email, phone)
    if notify_email and not email:
        errors.setdefault("notify_email", "no e-mail address to send to")
    if notify_sms and not phone:
        errors.setdefault("notify_sms", "no phone number to text")
    if errors:
        raise InvalidFields(errors)
    user.role, user.email, user.phone = role.value, email or None, phone or None
    user.notify_email, user.notify_sms = notify_email, notify_sms
    session.add(user)
    set_warehouses(session, name, warehouses)
