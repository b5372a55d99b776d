"""Dispatch: the warehouse hands parcels to a carrier; locked stock becomes shipped stock.

Idempotent under a stale attempt racing its own retry: the arithmetic is done by conditional UPDATEs in SQL, so
the reservations are consumed (and on_hand lowered) by exactly one attempt, and the shipment row is inserted
once whoever gets there first. The attempt that finds the work done does nothing and succeeds.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import DbActivities
from core.db import is_postgres
from integrations.carriers.registry import KNOWN_CARRIERS
from models.contracts import DispatchRecord
from models.tables import PickList, Reservation, ReservationState, SalesOrder, Shipment, StockLot, utcnow
from rules.automation import EventKind
from services import order_facts
from services.automation.events import record_event
from services.billing.invoices import Billed, InvoicePolicy
from services.billing.triggers import on_dispatched
from workflows.contract import ErrorType
from workflows.steps import ShippingSteps


class ShippingActivities(DbActivities, ShippingSteps):
    @activity.defn
    def record_dispatch(self, inp: DispatchRecord) -> None:
        """Consume the warehouse's reservations (on_hand goes down), close its pick list, add the shipment."""
        if inp.carrier not in KNOWN_CARRIERS:  # the workflow refuses these too, when its policy lists carriers
            known = ", ".join(sorted(KNOWN_CARRIERS))
            raise ApplicationError(
                f"unknown carrier {inp.carrier} (known: {known})", type=ErrorType.UNKNOWN_CARRIER, non_retryable=True
            )
        with self.transaction(inp.order_no) as session:
            _refuse_another_orders_parcel(session, inp)
            now = utcnow()
            # Only reservations still locked are consumed: an attempt behind another one (Postgres waits on the rows'
            # locks, then re-reads them) finds them consumed and takes nothing.
            consumed = session.exec(
                update(Reservation)
                .where(
                    col(Reservation.order_no) == inp.order_no,
                    col(Reservation.warehouse) == inp.warehouse,
                    col(Reservation.state) == ReservationState.LOCKED,
                )
                .values(state=ReservationState.CONSUMED, updated_at=now)
                .returning(col(Reservation.lot_id), col(Reservation.qty), col(Reservation.line_no))
            ).all()
            taken: dict[int, int] = defaultdict(int)
            shipped: dict[int, int] = defaultdict(int)  # order line → units in this parcel
            for lot_id, qty, line_no in consumed:
                taken[lot_id] += qty
                shipped[line_no] += qty
            for lot_id in sorted(taken):  # lots in id order, the order allocation locks them in
                lowered = session.exec(
                    update(StockLot)
                    .where(col(StockLot.id) == lot_id, col(StockLot.on_hand) >= taken[lot_id])
                    .values(on_hand=col(StockLot.on_hand) - taken[lot_id])
                )
                if lowered.rowcount != 1:
                    raise ApplicationError(
                        f"lot {lot_id} has less on hand than reserved",
                        type=ErrorType.LEDGER_MISMATCH,
                        non_retryable=True,
                    )
            session.exec(
                update(PickList)
                .where(col(PickList.order_no) == inp.order_no, col(PickList.warehouse) == inp.warehouse)
                .values(state="shipped")
            )
            promised_by = inp.at + timedelta(days=self.settings.promise_days(inp.carrier))
            _insert_shipment_once(session, self.engine, inp, promised_by)
            _refuse_another_orders_parcel(session, inp)  # the number may have been taken while we worked
            # The parcel's invoice (by the order's invoice policy), with the stock it consumed: both or neither (an
            # attempt behind finds the reservations consumed and bills nothing; the key would refuse a second one).
            order = session.get(SalesOrder, inp.order_no)
            if order is None:
                raise RuntimeError(f"order {inp.order_no} is not registered")
            billed = [Billed(line_no, qty) for line_no, qty in sorted(shipped.items())]
            on_dispatched(session, order, billed, inp.carrier, inp.tracking_no, InvoicePolicy.of(self.settings), inp.at)
            if inp.announce:  # with the shipment, once (keyed): automations hear of this parcel
                data = {"tracking_no": inp.tracking_no, "carrier": inp.carrier, "warehouse": inp.warehouse}
                key = f"dispatched:{inp.order_no}:{inp.carrier}:{inp.tracking_no}"
                record_event(session, EventKind.PARCEL_DISPATCHED, inp.order_no, key, data, now)
            order_facts.refresh(session, inp.order_no, self.settings.business_zone)
        self.log.info("dispatched", warehouse=inp.warehouse, carrier=inp.carrier, tracking_no=inp.tracking_no)


def _refuse_another_orders_parcel(session: Session, inp: DispatchRecord) -> None:
    owner = session.exec(
        select(Shipment.order_no).where(Shipment.carrier == inp.carrier, Shipment.tracking_no == inp.tracking_no)
    ).first()
    if owner is not None and owner != inp.order_no:
        raise ApplicationError(
            f"tracking number {inp.tracking_no} already belongs to order {owner}",
            type=ErrorType.DUPLICATE_TRACKING_NO,
            non_retryable=True,
        )


def _insert_shipment_once(session: Session, engine: Engine, inp: DispatchRecord, promised_by: datetime) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on (carrier, tracking_no): the second attempt finds the row, not an error."""
    dialect = postgresql if is_postgres(engine) else sqlite
    session.exec(
        dialect.insert(Shipment)
        .values(
            order_no=inp.order_no,
            warehouse=inp.warehouse,
            carrier=inp.carrier,
            tracking_no=inp.tracking_no,
            status="PENDING",
            dispatched_at=inp.at,
            promised_by=promised_by,
        )
        .on_conflict_do_nothing(index_elements=["carrier", "tracking_no"])
    )
