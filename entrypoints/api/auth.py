"""API tokens: `Authorization: Bearer TOKEN`, checked against the users table (only hashes are stored), and who
may read what (docs/contract.md lists each route's readers)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from core.db import read_only
from models.status import Role
from models.tables import User
from services.users import hash_token, user_by_token

bearer = HTTPBearer(auto_error=False)

# Customers' names, credit limits and exposure: the people who sell to them or watch their credit.
CUSTOMER_READERS = (Role.SALES, Role.FINANCE, Role.FINANCE_DIRECTOR, Role.OPS)
# Who submits orders by hand (a sales rep only their own: services.intake.intake_refusal) and who may cancel one
# before dispatch (a sales rep only their own).
SUBMITTERS = (Role.SALES, Role.OPS)
CANCELLERS = (Role.SALES, Role.OPS, Role.FINANCE, Role.FINANCE_DIRECTOR)
# Who books goods receipts (and so wakes the backordered orders).
RECEIVERS = (Role.WAREHOUSE, Role.OPS)
# Who confirms a payment received and records refunds made.
FINANCE = (Role.FINANCE, Role.FINANCE_DIRECTOR)
# KPIs and the cockpit: every member of staff, each counting only their scope (services/queries/kpis.py scope_of:
# a sales rep their own orders, warehouse staff their warehouses'; finance, ops and management everything).
KPI_READERS = (Role.SALES, Role.WAREHOUSE, Role.OPS, Role.FINANCE, Role.FINANCE_DIRECTOR)


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    with read_only(engine_of(request)) as session:
        user = user_by_token(session, credentials.credentials)
    # compare_digest keeps the refusal's timing independent of how much of the hash matched
    if user is None or not hmac.compare_digest(user.token_hash, hash_token(credentials.credentials)):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", {"WWW-Authenticate": "Bearer"})
    if user.disabled:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this user is disabled", {"WWW-Authenticate": "Bearer"})
    return user


def requires(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets through only users holding one of `roles` (admin always)."""
    allowed = {role.value for role in roles} | {Role.ADMIN.value}

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not do this")
        return user

    return check
