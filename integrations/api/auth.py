"""API tokens: `Authorization: Bearer TOKEN`, checked against the users table (only hashes are stored)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import select

from core.db import read_only
from core.seed import hash_token
from models.status import Role
from models.tables import User

bearer = HTTPBearer(auto_error=False)


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    digest = hash_token(credentials.credentials)
    with read_only(engine_of(request)) as session:
        user = session.exec(select(User).where(User.token_hash == digest)).first()
    # compare_digest keeps the refusal's timing independent of how much of the hash matched
    if user is None or not hmac.compare_digest(user.token_hash, digest):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", {"WWW-Authenticate": "Bearer"})
    return user


def requires(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets through only users holding one of `roles` (admin always)."""
    allowed = {role.value for role in roles} | {Role.ADMIN.value}

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not do this")
        return user

    return check
