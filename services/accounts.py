"""Console accounts: passwords (argon2id), sign-in with a limit on failures, and sessions.

A session is a random token in an HttpOnly cookie; only its SHA-256 is stored, beside the session's CSRF token.
Sessions end at `SESSION_LIFETIME`, at sign-out, and when the user is disabled. API tokens (services/users.py) are
separate and keep working for integrations.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, func, select

from core.db import read_only, unit_of_work
from models.tables import LoginFailure, User, WebSession
from services.errors import CommandError

SESSION_LIFETIME = timedelta(hours=12)
MAX_FAILURES = 5  # failed sign-ins for one user name within FAILURE_WINDOW, then refused until it passes
FAILURE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified when the user name is unknown, so a refusal takes as long whether or not the user exists.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class SignInRefused(CommandError):
    """Wrong user name or password, a disabled user, or too many failures: one line for the sign-in page."""


class WeakPassword(CommandError):
    pass


@dataclass(frozen=True)
class SignedIn:
    user: User
    session: WebSession


def new_password() -> str:
    """A password to hand out once (the user can be given another with `orderflow users password`)."""
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def set_password(session: Session, name: str, password: str) -> None:
    """In the caller's unit of work: the user's new password; their open console sessions end."""
    user = session.get(User, name)
    if user is None:
        raise CommandError(f"unknown user {name}")
    user.password_hash = hash_password(password)
    session.add(user)
    session.exec(delete(WebSession).where(col(WebSession.user_name) == name))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _password_matches(user: User | None, password: str) -> bool:
    stored = user.password_hash if user is not None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


def sign_in(engine: Engine, name: str, password: str, *, address: str, now: datetime) -> tuple[str, SignedIn]:
    """Check the password and open a session; returns the cookie's token (shown to nobody else) and the session.

    Every refusal says the same thing for an unknown user, a wrong password and a disabled user, so the page
    does not tell which user names exist; too many failures say so, with when to try again.

    The attempt is written (and committed) before anything is checked, so parallel attempts all count; the
    password is checked (~0.1 s of argon2) outside any transaction, so a flood of sign-ins never holds the
    database's write lock; success clears the attempts."""
    with unit_of_work(engine) as session:
        session.add(LoginFailure(user_name=name[:64], address=address[:64], at=now))
    with read_only(engine) as session:
        attempts, first = session.exec(
            select(func.count(), func.min(LoginFailure.at)).where(
                LoginFailure.user_name == name[:64], col(LoginFailure.at) > now - FAILURE_WINDOW
            )
        ).one()
        user = session.get(User, name)
    if attempts > MAX_FAILURES:  # this one and MAX_FAILURES before it
        minutes = max(1, int((first + FAILURE_WINDOW - now).total_seconds() // 60) + 1)
        raise SignInRefused(f"too many failed sign-ins for this user: try again in {minutes} min")
    if not _password_matches(user, password) or user is None or user.disabled:
        raise SignInRefused("wrong user name or password")
    assert user.password_hash is not None
    rehashed = _hasher.hash(password) if _hasher.check_needs_rehash(user.password_hash) else None
    token = secrets.token_urlsafe(32)
    web = WebSession(
        token_hash=_digest(token),
        user_name=name,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    with unit_of_work(engine) as session:
        session.exec(delete(LoginFailure).where(col(LoginFailure.user_name) == name))
        if rehashed is not None:
            session.exec(update(User).where(col(User.name) == name).values(password_hash=rehashed))
        session.add(web)
    return token, SignedIn(user=user, session=web)


def signed_in(engine: Engine, token: str, *, now: datetime) -> SignedIn | None:
    """The session the cookie's token opens, if it is open, unexpired and its user enabled."""
    with read_only(engine) as session:
        web = session.get(WebSession, _digest(token))
        if web is None or web.expires_at <= now:
            return None
        user = session.get(User, web.user_name)
        if user is None or user.disabled:
            return None
        return SignedIn(user=user, session=web)


def sign_out(engine: Engine, token: str, *, now: datetime) -> None:
    """End the session (and sweep expired ones on the way)."""
    with unit_of_work(engine) as session:
        session.exec(
            delete(WebSession).where(
                (col(WebSession.token_hash) == _digest(token)) | (col(WebSession.expires_at) <= now)
            )
        )


def set_disabled(session: Session, name: str, disabled: bool) -> None:
    """In the caller's unit of work: a disabled user cannot sign in, their sessions end, their API token stops."""
    user = session.get(User, name)
    if user is None:
        raise CommandError(f"unknown user {name}")
    user.disabled = disabled
    session.add(user)
    if disabled:
        session.exec(delete(WebSession).where(col(WebSession.user_name) == name))
