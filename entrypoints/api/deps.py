"""Request dependencies shared by the API's routers: settings, the Temporal client, error documentation."""

from __future__ import annotations

import math
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    404: "not found: no such order (or SKU)",
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


def json_safe(value: Any) -> Any:
    """A client's input echoed in an error, made JSON: NaN and Infinity (Python's json accepts them in
    requests) become strings, everything else as jsonable_encoder makes it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return jsonable_encoder(value)


async def validation_failed(_request: Request, exc: Exception) -> JSONResponse:
    """422 listing every bad field, like FastAPI's own answer, but never a 500 for an unusual input."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else [{"msg": str(exc)}]
    return JSONResponse({"detail": json_safe(errors)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
