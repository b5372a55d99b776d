"""The HTTP API (docs/contract.md): orders and the answers people give them (orders.py), stock and master data
(stock.py), channel and carrier webhooks (channels.py, carriers.py), KPIs and the dashboard (dashboard.py), the
codec server for the Temporal UI (codec.py); the people's console at /console (entrypoints/console/). Every route
decides who may call it (docs/contract.md lists them).

Served with `uvicorn --factory entrypoints.api.app:serve`: `serve` is the start-up (settings with the local
secrets, the database schema); importing this module does nothing of the sort.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.exceptions import TemporalError

from core.config import Settings
from core.db import make_engine
from core.migrate import upgrade
from core.secrets import runtime_settings
from entrypoints.api.access_log import mask_link_tokens_in_access_log
from entrypoints.api.carriers import carriers_router
from entrypoints.api.channels import channels_router
from entrypoints.api.codec import add_codec_cors, codec_router
from entrypoints.api.dashboard import dashboard_router
from entrypoints.api.deps import problems, validation_failed
from entrypoints.api.orders import orders_router
from entrypoints.api.stock import stock_router
from entrypoints.console.routes import mount_console
from entrypoints.console.web import CONSOLE_PATHS, bad_form, unavailable
from services.errors import CommandError, NotFound, Refused
from workflows.contract import ErrorType

# Which refusal is which answer (OrderFulfillment's validators and the application layer); the rest are 409.
_REFUSAL_STATUS: dict[str, int] = {
    ErrorType.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    ErrorType.INVALID: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ErrorType.UNSIGNED_DECISION: status.HTTP_503_SERVICE_UNAVAILABLE,  # our own signature refused: secrets differ
}


def refusal_status(exc: CommandError) -> int:
    """The answer to a refusal of the application layer (Temporal failures answer 503)."""
    if isinstance(exc, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, Refused):
        return _REFUSAL_STATUS.get(exc.kind, status.HTTP_409_CONFLICT)
    return status.HTTP_409_CONFLICT


def settle_heap() -> None:
    """Once started: everything allocated so far (modules, routes, templates, the mappers) lives as long as the
    process, so the cyclic GC stops re-scanning it. Without this every full collection walked it all and a page
    every few dozen took 2-3x its time (the console inbox: p95 332 ms against p50 139 ms; frozen, 168 ms)."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, *, engine: Engine | None = None, client: Client | None = None) -> FastAPI:
    """Build the app. Tests pass their engine and Temporal client; served, both come from the settings."""
    mask_link_tokens_in_access_log()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.engine is None:
            app.state.engine = make_engine(settings.effective_database_url)
            upgrade(app.state.engine)
        settle_heap()
        yield

    # 400: a body that cannot even be read as text (FastAPI's own answer), possible on every route with a body.
    app = FastAPI(title="orderflow", version="0.1.0", lifespan=lifespan, responses=problems(400))
    app.state.engine = engine
    app.state.client = client
    app.state.settings = settings

    @app.exception_handler(TemporalError)
    async def temporal_failed(request: Request, exc: TemporalError) -> Response:
        # Whatever Temporal answered that a route did not turn into a refusal is on our side, not the client's.
        if request.url.path.startswith(CONSOLE_PATHS):
            return unavailable(request)
        return JSONResponse({"detail": f"Temporal: {exc}"}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(CONSOLE_PATHS):  # a person at a form gets a page, never JSON
            return bad_form(request, exc)
        return await validation_failed(request, exc)

    @app.exception_handler(CommandError)
    async def refused(_request: Request, exc: CommandError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=refusal_status(exc))

    app.include_router(orders_router())
    app.include_router(stock_router())
    app.include_router(dashboard_router())
    app.include_router(channels_router())
    app.include_router(carriers_router())
    app.include_router(codec_router(settings))
    add_codec_cors(app, settings)
    mount_console(app)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Open to anyone: the process answers."""
        return {"status": "ok"}

    return app


def serve() -> FastAPI:
    """uvicorn's factory (`uvicorn --factory entrypoints.api.app:serve`): the API with the process's settings and
    secrets (the embedded stack's secrets file is read, or created, here)."""
    return create_app(runtime_settings())
