"""POST /webhooks/carriers/{carrier}: a carrier's push. Signature first (401, nothing changes), then the news to the
parcel's tracking workflow (signal), then its events into the database (services/tracking.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from temporalio.service import RPCError, RPCStatusCode

from domain.tracking import FINAL_TRACKING_STATUSES
from entrypoints.api.auth import engine_of
from entrypoints.api.deps import problems, settings_of, temporal_client
from integrations.carriers.base import CarrierError
from integrations.carriers.push import PushRefused, acknowledgement, read_push
from integrations.carriers.registry import UnknownCarrierCode
from services.billing.invoices import InvoicePolicy
from services.tracking import record_snapshot, shipment_status
from workflows.contract import Signal, tracking_workflow_id


def carriers_router() -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    @router.post("/webhooks/carriers/{carrier}", responses=problems(401, 404, 422, 503))
    async def carrier_push(
        carrier: str, request: Request, engine: Annotated[Engine, Depends(engine_of)]
    ) -> dict[str, Any]:
        """A carrier's push, signed where the carrier signs. Unknown parcels are acknowledged and ignored, so the
        carrier stops re-sending them; a Temporal outage answers 503 so the carrier re-sends later."""
        body = await request.body()
        try:
            snapshot = read_push(carrier, body, request.headers, settings_of(request))
        except PushRefused as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
        except UnknownCarrierCode as exc:  # not a carrier that pushes
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except CarrierError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        answer = acknowledgement(carrier)
        if snapshot is None:
            return answer
        known = await run_in_threadpool(shipment_status, engine, carrier, snapshot.tracking_no)
        if known is None or known in FINAL_TRACKING_STATUSES:
            return answer  # not our parcel, or its tracking is over: acknowledged so the carrier stops
        try:
            temporal = await temporal_client(request)
            handle = temporal.get_workflow_handle(tracking_workflow_id(carrier, snapshot.tracking_no))
            await handle.signal(Signal.PARCEL_NEWS, snapshot)
        except RPCError as exc:
            # NOT_FOUND: the tracking workflow has not started yet (a push right after dispatch). Either way
            # nothing is recorded and the carrier re-sends, so the news reaches the workflow.
            detail = "tracking not started yet" if exc.status == RPCStatusCode.NOT_FOUND else f"Temporal: {exc}"
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"try again later ({detail})") from None
        await run_in_threadpool(record_snapshot, engine, snapshot, InvoicePolicy.of(settings_of(request)))
        return answer

    return router
