"""The HTTP API (CONTRACT.md). This first slice serves inventory, products and customers and books goods
receipts; orders, decisions and webhooks come with the front-door issue.

    uvicorn integrations.api.app:app --port 8000
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from core.config import Settings, get_settings
from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from core.temporal import connect
from integrations import orders_client, stock, views
from integrations.api.auth import engine_of, requires
from integrations.orders_client import CommandError
from integrations.stock import Receipt, ReceiptConflict
from integrations.views import NotFound
from models.status import Role
from models.tables import User

EngineDep = Annotated[Engine, Depends(engine_of)]


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, client: Client | None = None
) -> FastAPI:
    """Build the app. Tests pass their engine and Temporal client; served, both come from the settings."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.engine is None:
            app.state.engine = make_engine(settings.effective_database_url)
            upgrade(app.state.engine)
        yield

    app = FastAPI(title="orderflow", version="0.1.0", lifespan=lifespan)
    app.state.engine = engine
    app.state.client = client
    app.state.settings = settings

    async def temporal(request: Request) -> Client:
        if request.app.state.client is None:
            try:
                request.app.state.client = await connect(settings)
            except RuntimeError as exc:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Temporal unavailable: {exc}") from None
        found: Client = request.app.state.client
        return found

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/inventory/{sku}")
    def inventory(sku: str, engine: EngineDep) -> dict[str, Any]:
        with unit_of_work(engine) as session:
            try:
                return views.inventory_view(session, sku)
            except NotFound as exc:
                raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None

    @app.get("/products")
    def products(engine: EngineDep) -> list[dict[str, Any]]:
        with unit_of_work(engine) as session:
            return views.products_view(session)

    @app.get("/customers")
    def customers(engine: EngineDep) -> list[dict[str, Any]]:
        with unit_of_work(engine) as session:
            return views.customers_view(session)

    @app.post("/inventory/receipts", status_code=status.HTTP_201_CREATED)
    async def receive(
        receipt: Receipt,
        request: Request,
        response: Response,
        user: Annotated[User, Depends(requires(Role.WAREHOUSE, Role.OPS))],
        engine: EngineDep,
        idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
    ) -> dict[str, Any]:
        """Book a goods receipt, then wake the orders waiting for the SKU, oldest first."""
        if receipt.receipt_no is None and idempotency_key:
            receipt = receipt.model_copy(update={"receipt_no": idempotency_key})
        try:
            booked = await run_in_threadpool(stock.receive, engine, receipt, user.name)
        except ReceiptConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except CommandError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        if booked["duplicate"]:
            response.status_code = status.HTTP_200_OK
        waiting = await run_in_threadpool(stock.backordered_orders, engine, receipt.sku)
        booked["backordered_orders"] = waiting
        if waiting:
            # The receipt is booked whatever happens next: waking the orders is best effort (they also
            # re-check by themselves), so a Temporal outage must not make the caller book it again.
            try:
                booked["allocated_orders"] = await orders_client.notify_restock(
                    await temporal(request), waiting, [receipt.sku]
                )
            except (HTTPException, RPCError, CommandError) as exc:
                booked["note"] = f"waiting orders not woken now ({getattr(exc, 'detail', exc)}); they re-check later"
        return booked

    return app


app = create_app()
