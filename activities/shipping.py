"""Dispatch: the warehouse hands parcels to a carrier; locked stock becomes shipped stock."""

from __future__ import annotations

from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import DbActivities
from integrations.carriers.registry import KNOWN_CARRIERS
from models.contracts import DispatchRecord
from models.tables import (
    PickList,
    Reservation,
    ReservationState,
    Shipment,
    StockLot,
    utcnow,
)
from workflows.contract import ErrorType
from workflows.steps import ShippingSteps


class ShippingActivities(DbActivities, ShippingSteps):
    @activity.defn
    def record_dispatch(self, inp: DispatchRecord) -> None:
        """Consume the warehouse's reservations (on_hand goes down), close its pick list, add the shipment.

        Idempotent: only still-locked reservations are consumed, and the shipment row is written once.
        """
        if inp.carrier not in KNOWN_CARRIERS:  # the workflow refuses these too, when its policy lists carriers
            known = ", ".join(sorted(KNOWN_CARRIERS))
            raise ApplicationError(
                f"unknown carrier {inp.carrier} (known: {known})", type=ErrorType.UNKNOWN_CARRIER, non_retryable=True
            )
        with self.transaction(inp.order_no) as session:
            shipment = session.exec(
                select(Shipment).where(Shipment.carrier == inp.carrier, Shipment.tracking_no == inp.tracking_no)
            ).first()
            if shipment is not None and shipment.order_no != inp.order_no:
                raise ApplicationError(
                    f"tracking number {inp.tracking_no} already belongs to order {shipment.order_no}",
                    type=ErrorType.DUPLICATE_TRACKING_NO,
                    non_retryable=True,
                )
            reservations = session.exec(
                select(Reservation)
                .where(
                    Reservation.order_no == inp.order_no,
                    Reservation.warehouse == inp.warehouse,
                    Reservation.state == ReservationState.LOCKED,
                )
                .order_by(col(Reservation.lot_id))
            ).all()
            now = utcnow()
            for res in reservations:
                lot = session.get(StockLot, res.lot_id, with_for_update=True)
                if lot is None or lot.on_hand < res.qty:
                    raise ApplicationError(
                        f"lot {res.lot_id} has less on hand than reserved",
                        type=ErrorType.LEDGER_MISMATCH,
                        non_retryable=True,
                    )
                lot.on_hand -= res.qty
                res.state = ReservationState.CONSUMED
                res.updated_at = now
                session.add(lot)
                session.add(res)
            for pick in session.exec(
                select(PickList).where(PickList.order_no == inp.order_no, PickList.warehouse == inp.warehouse)
            ):
                pick.state = "shipped"
                session.add(pick)
            if shipment is None:
                session.add(
                    Shipment(
                        order_no=inp.order_no,
                        warehouse=inp.warehouse,
                        carrier=inp.carrier,
                        tracking_no=inp.tracking_no,
                        dispatched_at=inp.at,
                    )
                )
        self.log.info("dispatched", warehouse=inp.warehouse, carrier=inp.carrier, tracking_no=inp.tracking_no)
