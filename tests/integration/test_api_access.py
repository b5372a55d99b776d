"""Every route decides who may call it: a token (and a role) unless it is one of the few with another guard."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import Engine

from core.config import Settings
from core.db import unit_of_work
from entrypoints.api.app import create_app
from models.status import Role
from services.users import add_user

# Routes guarded by something other than a user's token, and why (docs/contract.md says the same).
NOT_BY_TOKEN = {
    "/healthz": "open: the process answers",
    "/webhooks/channels/{channel}": "the platform's HMAC signature",
    "/webhooks/carriers/{carrier}": "the carrier's signature",
    "/dashboard": "a redirect to the console's cockpit, which asks for a sign-in",
}


def _operations(settings: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, OpenAPI operation) of every route; a route that takes a bearer token says so in `security`
    (also when the token is asked for by its router, as the codec's is)."""
    spec = create_app(settings.model_copy(update={"codec_requires_token": True})).openapi()
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_every_route_needs_a_user_or_is_listed_with_its_guard(settings: Settings) -> None:
    operations = _operations(settings)
    assert len(operations) >= 15
    unguarded = {path for _, path, op in operations if not op.get("security")}
    assert unguarded == set(NOT_BY_TOKEN)


def _token(engine: Engine, role: Role) -> dict[str, str]:
    with unit_of_work(engine) as session:
        secret = add_user(session, f"{role.value}-{uuid.uuid4().hex[:6]}", role)
    return {"Authorization": f"Bearer {secret}"}


async def test_without_a_token_every_guarded_route_answers_401(api: httpx.AsyncClient, settings: Settings) -> None:
    asked = 0
    for method, path, _ in _operations(settings):
        if path in NOT_BY_TOKEN:
            continue
        concrete = path.replace("{order_no}", "SO-ACCESS-1").replace("{sku}", "SKU-1001")
        # A decision's body is read first (a refused decision is audited with what it said); the rest check the
        # token before they look at the body.
        body = {"decision": "approve"} if path.endswith("/decision") else {}
        answer = await api.request(method, concrete, json=body)
        assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
        asked += 1
    assert asked >= 12


async def test_every_member_of_staff_reads_kpis_in_their_scope(api: httpx.AsyncClient, engine: Engine) -> None:
    for role in (Role.SALES, Role.WAREHOUSE, Role.OPS, Role.FINANCE, Role.FINANCE_DIRECTOR, Role.ADMIN):
        answer = await api.get("/kpis", headers=_token(engine, role))
        assert answer.status_code == 200, role
        expected = {Role.SALES: "orders of sales rep", Role.WAREHOUSE: "orders and stock of"}.get(role, "everything")
        assert answer.json()["scope"].startswith(expected), role
    moved = await api.get("/dashboard", follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/console/cockpit"
