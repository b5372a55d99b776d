"""Stock and master data: GET /inventory/{sku}, /products, /customers, and POST /inventory/receipts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from sqlalchemy import Engine

from core.config import Settings
from core.db import read_only
from entrypoints.api.auth import CUSTOMER_READERS, RECEIVERS, current_user, engine_of, requires
from entrypoints.api.deps import problems, settings_of, temporal_client
from models.tables import User
from services.errors import CommandError, ReceiptConflict
from services.queries.customers import customers_view
from services.queries.inventory import inventory_view
from services.queries.products import products_view
from services.restock import receive_and_wake
from services.stock import Receipt

EngineDep = Annotated[Engine, Depends(engine_of)]


def stock_router() -> APIRouter:
    router = APIRouter(tags=["stock"])

    @router.get("/inventory/{sku}", responses=problems(401, 404))
    def inventory(sku: str, _user: Annotated[User, Depends(current_user)], engine: EngineDep) -> dict[str, Any]:
        """Per warehouse: on hand, reserved, available, expired, incoming. Any signed-in user."""
        with read_only(engine) as session:
            return inventory_view(session, sku)

    @router.get("/products", responses=problems(401))
    def products(_user: Annotated[User, Depends(current_user)], engine: EngineDep) -> list[dict[str, Any]]:
        """List price and what may still be promised, per SKU. Any signed-in user."""
        with read_only(engine) as session:
            return products_view(session)

    @router.get("/customers", responses=problems(401, 403))
    def customers(
        _user: Annotated[User, Depends(requires(*CUSTOMER_READERS))], engine: EngineDep
    ) -> list[dict[str, Any]]:
        """Customers with credit limit and exposure: sales, finance, finance director, ops."""
        with read_only(engine) as session:
            return customers_view(session)

    @router.post(
        "/inventory/receipts",
        status_code=status.HTTP_201_CREATED,
        responses={200: {"description": "the same receipt again: booked once"}, **problems(401, 403, 409, 422)},
    )
    async def receive(
        receipt: Receipt,
        request: Request,
        response: Response,
        user: Annotated[User, Depends(requires(*RECEIVERS))],
        engine: EngineDep,
        settings: Annotated[Settings, Depends(settings_of)],
        idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
    ) -> dict[str, Any]:
        """Book a goods receipt, then wake the orders waiting for the SKU, oldest first, in the background
        (`woken_by`: the RestockWakeUp workflow doing it); the answer does not wait for them."""
        if receipt.receipt_no is None and idempotency_key:
            receipt = receipt.model_copy(update={"receipt_no": idempotency_key})
        try:
            booked = await receive_and_wake(
                engine,
                receipt,
                user.name,
                connect=lambda: temporal_client(request),
                task_queue=settings.task_queue,
            )
        except ReceiptConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except CommandError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        if booked["duplicate"]:
            response.status_code = status.HTTP_200_OK
        return booked

    return router
