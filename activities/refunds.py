"""A stopped paid order's refund (workflows/refund.py): its record and finance's decision in the database
(services/refunds.py), the payout through the payment provider (integrations/payments), idempotent on the order:
the provider is asked with the key `refund:<order_no>`, so a retried attempt finds the refund it made."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import DbActivities
from core.config import Settings
from integrations.payments.base import RefundRejected, RefundRequest, RefundUnavailable
from integrations.payments.provider import provider_from_settings
from models.contracts import RefundDecision, RefundFailure, RefundInput, RefundOpened, RefundPaid, RefundPayout
from models.status import NoticeKind, RefundState, Role
from services import refunds
from services.notify.writer import NoticeWriter
from workflows.contract import ErrorType
from workflows.steps import RefundSteps


class RefundActivities(DbActivities, RefundSteps):
    def __init__(
        self, engine: Engine, settings: Settings, http: httpx.AsyncClient, writer: NoticeWriter | None = None
    ) -> None:
        super().__init__(engine, settings)
        self.provider = provider_from_settings(settings, http)
        self.writer = writer or NoticeWriter.load(settings)

    @activity.defn
    def open_refund(self, inp: RefundInput) -> RefundOpened:
        now = datetime.now(UTC)
        with self.transaction(inp.order_no) as session:
            opened = refunds.open_refund(
                session, inp.order_no, reason=inp.reason, approval_over=self.settings.refund_approval_over, now=now,
                zone=self.settings.business_zone,
            )  # fmt: skip
            if opened.state == RefundState.AWAITING_APPROVAL:  # finance is asked once (the notice's key)
                variables = {"amount": str(opened.amount), "currency": opened.currency, "reason": inp.reason}
                self.writer.write(
                    session, key=f"{inp.order_no}:refund_approval", order_no=inp.order_no,
                    kind=NoticeKind.REFUND_APPROVAL.value, now=now, role=Role.FINANCE.value, variables=variables,
                )  # fmt: skip
        self.log.info("refund opened", state=opened.state, amount=str(opened.amount))
        return opened

    @activity.defn
    def record_refund_decision(self, inp: RefundDecision) -> None:
        with self.transaction(inp.order_no) as session:
            refunds.record_decision(session, inp, datetime.now(UTC))

    @activity.defn
    async def pay_out_refund(self, inp: RefundPayout) -> RefundPaid:
        request = RefundRequest(
            key=f"refund:{inp.order_no}", payment_reference=inp.payment_reference, amount=inp.amount,
            currency=inp.currency, reason=inp.reason or f"order {inp.order_no} refunded",
        )  # fmt: skip
        try:
            result = await self.provider.refund(request)
        except RefundRejected as exc:
            raise ApplicationError(str(exc), type=ErrorType.REFUND_REFUSED, non_retryable=True) from exc
        except RefundUnavailable as exc:  # retried with the same key by the stage's policy
            raise ApplicationError(f"payment provider unavailable: {exc}") from exc
        return RefundPaid(
            order_no=inp.order_no, provider_ref=result.provider_ref, amount=result.amount, currency=result.currency,
            made_at=result.created_at,
        )  # fmt: skip

    @activity.defn
    def complete_refund(self, inp: RefundPaid) -> None:
        with self.transaction(inp.order_no) as session:
            refunds.complete_refund(session, inp, self.writer, datetime.now(UTC))
        self.log.info("refund made", provider_ref=inp.provider_ref, amount=str(inp.amount))

    @activity.defn
    def fail_refund(self, inp: RefundFailure) -> None:
        with self.transaction(inp.order_no) as session:
            refunds.fail_refund(session, inp.order_no, inp.why)
        self.log.warning("refund refused by the provider", why=inp.why)
