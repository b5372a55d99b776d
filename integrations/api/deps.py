"""Request dependencies shared by the API's routers: settings, the Temporal client, error documentation."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, status
from pydantic import BaseModel
from temporalio.client import Client

from core.config import Settings
from core.temporal import connect


class Problem(BaseModel):
    """Every refusal: one clear line (or FastAPI's list of field errors for 422)."""

    detail: str | list[dict[str, Any]]


_WHY = {
    400: "the body could not be read",
    401: "no token, or an invalid one",
    403: "the user's role may not do this",
    404: "unknown order",
    409: "the order cannot take this now",
    422: "invalid input: every bad field is listed",
    503: "Temporal is unreachable: try again",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the refusals a route can answer with."""
    return {code: {"model": Problem, "description": _WHY[code]} for code in codes}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def temporal_client(request: Request) -> Client:
    """The app's Temporal client, connected on first use (the API starts even while Temporal is down)."""
    if request.app.state.client is None:
        try:
            request.app.state.client = await connect(settings_of(request))
        except RuntimeError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Temporal unavailable: {exc}") from None
    found: Client = request.app.state.client
    return found
