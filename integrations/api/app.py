"""The HTTP API (CONTRACT.md): orders and the answers people give them (integrations/api/orders.py), channel
and carrier webhooks, inventory, products, customers, goods receipts, KPIs and the dashboard.

    uvicorn integrations.api.app:app --port 8000
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlmodel import select
from temporalio.client import Client
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from activities.tracking import NEWS_SIGNAL, record_snapshot, tracking_workflow_id
from core.config import Settings, get_settings
from core.db import make_engine, read_only
from core.migrate import upgrade
from domain.tracking import FINAL_TRACKING_STATUSES
from integrations import orders_client, stock, views
from integrations.api.auth import engine_of, requires
from integrations.api.channels import channels_router
from integrations.api.codec import add_codec_cors, codec_router
from integrations.api.dashboard import dashboard_router
from integrations.api.deps import problems, temporal_client, validation_failed
from integrations.api.orders import orders_router, refusal_status
from integrations.carriers.base import CarrierError
from integrations.carriers.push import PushRefused, acknowledgement, read_push
from integrations.orders_client import CommandError
from integrations.stock import Receipt, ReceiptConflict
from integrations.views import NotFound
from models.status import Role, TrackingStatus
from models.tables import Shipment, User

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

    # 400: a body that cannot even be read as text (FastAPI's own answer), possible on every route with a body.
    app = FastAPI(title="orderflow", version="0.1.0", lifespan=lifespan, responses=problems(400))
    app.state.engine = engine
    app.state.client = client
    app.state.settings = settings

    @app.exception_handler(TemporalError)
    async def temporal_failed(_request: Request, exc: TemporalError) -> JSONResponse:
        # Whatever Temporal answered that a route did not turn into a refusal is on our side, not the client's.
        return JSONResponse({"detail": f"Temporal: {exc}"}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    app.add_exception_handler(RequestValidationError, validation_failed)

    @app.exception_handler(CommandError)
    async def refused(_request: Request, exc: CommandError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=refusal_status(exc))

    app.include_router(orders_router())
    app.include_router(dashboard_router())
    app.include_router(channels_router())
    app.include_router(codec_router(settings))
    add_codec_cors(app, settings)
    temporal = temporal_client

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/inventory/{sku}", responses=problems(404))
    def inventory(sku: str, engine: EngineDep) -> dict[str, Any]:
        with read_only(engine) as session:
            try:
                return views.inventory_view(session, sku)
            except NotFound as exc:
                raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None

    @app.get("/products")
    def products(engine: EngineDep) -> list[dict[str, Any]]:
        with read_only(engine) as session:
            return views.products_view(session)

    @app.get("/customers")
    def customers(engine: EngineDep) -> list[dict[str, Any]]:
        with read_only(engine) as session:
            return views.customers_view(session)

    @app.post(
        "/inventory/receipts",
        status_code=status.HTTP_201_CREATED,
        responses={200: {"description": "the same receipt again: booked once"}, **problems(401, 403, 409, 422)},
    )
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

    @app.post("/webhooks/carriers/{carrier}", responses=problems(401, 404, 422, 503))
    async def carrier_push(carrier: str, request: Request, engine: EngineDep) -> dict[str, Any]:
        """A carrier's push: signature first (401, nothing changes), then news to the parcel's tracking
        workflow (signal), then the events into the database. Unknown parcels are acknowledged and ignored,
        so the carrier stops re-sending them; a Temporal outage answers 503 so the carrier re-sends later."""
        body = await request.body()
        try:
            snapshot = read_push(carrier, body, request.headers, settings)
        except PushRefused as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
        except ValueError as exc:  # not a carrier that pushes
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except CarrierError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        answer = acknowledgement(carrier)
        if snapshot is None:
            return answer
        shipment_status = await run_in_threadpool(shipment_status_of, engine, carrier, snapshot.tracking_no)
        if shipment_status is None or shipment_status in FINAL_TRACKING_STATUSES:
            return answer  # not our parcel, or its tracking is over: acknowledged so the carrier stops
        try:
            handle = (await temporal(request)).get_workflow_handle(tracking_workflow_id(carrier, snapshot.tracking_no))
            await handle.signal(NEWS_SIGNAL, snapshot)
        except RPCError as exc:
            # NOT_FOUND: the tracking workflow has not started yet (a push right after dispatch). Either way
            # nothing is recorded and the carrier re-sends, so the news reaches the workflow.
            detail = "tracking not started yet" if exc.status == RPCStatusCode.NOT_FOUND else f"Temporal: {exc}"
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"try again later ({detail})") from None
        await run_in_threadpool(record_snapshot, engine, snapshot)
        return answer

    return app


def shipment_status_of(engine: Engine, carrier: str, tracking_no: str) -> TrackingStatus | None:
    with read_only(engine) as session:
        found = session.exec(
            select(Shipment.status).where(Shipment.carrier == carrier, Shipment.tracking_no == tracking_no)
        ).first()
    return None if found is None else TrackingStatus(found)


app = create_app()
