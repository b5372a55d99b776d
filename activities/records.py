"""The read model and audit trail: order rows, status events, approval decisions. All idempotent."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity

from activities.base import DbActivities
from models.contracts import ApprovalAudit, RegisterOrderInput, TransitionInput
from models.status import AWAITING_DECISION, NEVER_BILLED, OrderStatus
from models.tables import ApprovalRecord, Customer, OrderEvent, SalesOrder
from rules.automation import EventKind
from services import order_facts
from services.automation.events import record_event
from services.billing.invoices import InvoicePolicy
from services.billing.ledger import book_prepayment
from services.billing.triggers import on_approved, on_stopped
from services.links import void_approval_links
from services.order_facts import add_lines, dispatch_promise
from workflows.contract import order_workflow_id
from workflows.steps import RecordSteps


class RecordActivities(DbActivities, RecordSteps):
    @activity.defn
    def register_order(self, inp: RegisterOrderInput) -> None:
        """Create the order row and its RECEIVED event (seq 1); a retry finds them and does nothing."""
        order = inp.order
        with self.transaction(order.order_no) as session:
            if session.get(SalesOrder, order.order_no) is not None:
                return
            session.add(
                SalesOrder(
                    order_no=order.order_no,
                    workflow_id=order_workflow_id(order.order_no),
                    customer_id=order.customer_id,
                    channel=order.channel,
                    sales_rep=order.sales_rep,
                    order_type=order.order_type.value,
                    payment_method=order.payment.method.value,
                    currency=order.currency,
                    total=order.total,
                    status=OrderStatus.RECEIVED,
                    paid=order.payment.paid,
                    payload=order.model_dump(mode="json"),
                    content_hash=order.content_hash(),
                    created_at=inp.received_at,
                    updated_at=inp.received_at,
                    invoice_policy=str(
                        InvoicePolicy.of(self.settings).timing_for(session, order.customer_id, order.channel)
                    ),
                    dispatch_by=dispatch_promise(inp.received_at, self.settings.dispatch_promise),
                )
            )
            session.add(OrderEvent(order_no=order.order_no, seq=1, status=OrderStatus.RECEIVED, at=inp.received_at))
            add_lines(session, order)
            if order.payment.paid:  # paid at the channel before it reached us: the customer's money is in hand
                book_prepayment(session, order.order_no, order.customer_id, order.total, order.currency,
                                at=inp.received_at, reference=f"{order.channel} payment", by=order.channel)  # fmt: skip
            record_event(
                session, EventKind.ORDER_CREATED, order.order_no, f"created:{order.order_no}", {}, inp.received_at
            )
            order_facts.refresh(session, order.order_no, self.settings.business_zone)
        self.log.info("order registered", total=str(order.total))

    @activity.defn
    def record_transition(self, inp: TransitionInput) -> None:
        """Write the status change and its event row; the (order_no, seq) key makes retries no-ops."""
        with self.transaction(inp.order_no) as session:
            exists = session.exec(
                select(OrderEvent.id).where(OrderEvent.order_no == inp.order_no, OrderEvent.seq == inp.seq)
            ).first()
            if exists is not None:
                return
            order = session.get(SalesOrder, inp.order_no)
            if order is None:
                raise RuntimeError(f"order {inp.order_no} is not registered")
            session.add(
                OrderEvent(order_no=inp.order_no, seq=inp.seq, status=inp.status, at=inp.at, detail=inp.detail[:2000])
            )
            self._announce(session, order, inp)
            order.status = inp.status
            order.updated_at = inp.at
            if inp.paid and not order.paid:  # the prepayment: money of the customer's, against what it will bill
                # (runs started before payment_reference existed name it only in the detail)
                reference = inp.payment_reference or inp.detail.removeprefix("payment received").strip()
                book_prepayment(session, inp.order_no, order.customer_id, order.total, order.currency,
                                at=inp.at, reference=reference, by=inp.paid_by)  # fmt: skip
            if inp.paid is not None:
                order.paid = inp.paid
            if inp.reasons is not None:
                order.reasons = list(inp.reasons)
            if inp.awaiting is not None:
                order.awaiting_role, order.awaiting_level = inp.awaiting.role.value, inp.awaiting.level
                order.awaiting_since, order.awaiting_until = inp.at, inp.awaiting.until
                order.awaiting_why = list(inp.awaiting.why)
            elif inp.status not in AWAITING_DECISION:  # a same-status event (a payment, say) keeps the to-do
                order.awaiting_role = order.awaiting_level = order.awaiting_since = order.awaiting_until = None
                order.awaiting_why = None
            # The mailed approve links work only for the level and role the order awaits now.
            awaiting = (
                (order.awaiting_level, order.awaiting_role) if order.awaiting_level and order.awaiting_role else None
            )
            void_approval_links(session, inp.order_no, inp.at, awaiting=awaiting)
            if inp.status in (OrderStatus.APPROVED,):
                # The customer's first order has been accepted: from now on they are not new.
                customer = session.get(Customer, order.customer_id)
                if customer is not None and customer.first_order:
                    customer.first_order = False
                on_approved(session, order, InvoicePolicy.of(self.settings), inp.at)  # an approval/order policy
            if inp.status in NEVER_BILLED:  # what it was billed for goods it never got is credited
                on_stopped(session, order, InvoicePolicy.of(self.settings), inp.at)
            session.add(order)
            order_facts.refresh(session, inp.order_no, self.settings.business_zone)
        self.log.info("status", status=inp.status.value, seq=inp.seq)

    @staticmethod
    def _announce(session: Session, order: SalesOrder, inp: TransitionInput) -> None:
        """The automation events of this transition (before the row changes: the event says from what)."""
        key = f"{inp.order_no}:{inp.seq}"
        if order.status != inp.status:
            data = {"from_status": order.status, "to_status": inp.status.value, "detail": inp.detail[:500]}
            record_event(session, EventKind.STATUS_CHANGED, inp.order_no, f"status:{key}", data, inp.at)
        if inp.paid is not None and inp.paid != order.paid:
            data = {"field": "paid", "old_value": str(order.paid).lower(), "new_value": str(inp.paid).lower()}
            record_event(session, EventKind.FIELD_CHANGED, inp.order_no, f"field:{key}:paid", data, inp.at)

    @activity.defn
    def record_approval(self, inp: ApprovalAudit) -> None:
        key = f"{inp.order_no}:{inp.level}:{inp.decision}"
        try:
            with self.transaction(inp.order_no) as session:
                if session.exec(select(ApprovalRecord.id).where(ApprovalRecord.key == key)).first() is not None:
                    return
                session.add(
                    ApprovalRecord(
                        key=key,
                        order_no=inp.order_no,
                        level=inp.level,
                        role=inp.role,
                        by=inp.by,
                        decision=inp.decision,
                        at=inp.at,
                        comment=inp.comment,
                        on_behalf_of=inp.on_behalf_of or None,
                    )
                )
                void_approval_links(session, inp.order_no, inp.at, awaiting=None)  # the level is decided
        except IntegrityError:
            return  # a concurrent retry wrote it first
