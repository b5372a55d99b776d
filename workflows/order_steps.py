"""The order workflow's moves: each activity call typed and bounded by its stage's timeout (workflows/steps.py),
the status transitions and notices that follow them, and waiting that a cancel request interrupts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow

from workflows import contract
from workflows.contract import NoticeKind
from workflows.order_state import FulfillmentState, Stop
from workflows.steps import NOTIFYING, RECORDING, NotifySteps, RecordSteps, Stage

with workflow.unsafe.imports_passed_through():
    from models.contracts import AwaitingDecision, NotifyInput, PaymentInput, TransitionInput
    from models.status import OrderStatus, Role

In = TypeVar("In")
Out = TypeVar("Out")


async def run_step(stage: Stage, step: Callable[[Any, In], Out], arg: In) -> Out:
    """One activity of `steps.py`, with its stage's timeout and retry policy."""
    return await workflow.execute_activity_method(
        step, arg, start_to_close_timeout=stage.start_to_close, retry_policy=stage.retry
    )


class OrderMoves:
    """What the journey and its stages do to the order, on its state."""

    def __init__(self, state: FulfillmentState) -> None:
        self.state = state

    def checkpoint(self) -> None:
        """Stop here if a cancel was asked for (checked after every step and every wait)."""
        request = self.state.cancel_request
        if request is not None:
            who = f" by {request.by}" if request.by else ""
            raise Stop(OrderStatus.CANCELLED, f"cancelled{who}: {request.reason}")

    async def wait(self, done: Callable[[], bool], limit: timedelta | None) -> bool:
        """Wait for `done` or a cancel; True when done, False on timeout. A cancel raises Stop."""
        try:
            await workflow.wait_condition(lambda: done() or self.state.cancel_request is not None, timeout=limit)
        except TimeoutError:
            self.checkpoint()
            return False
        self.checkpoint()
        return True

    async def transition(
        self,
        status: OrderStatus,
        detail: str = "",
        *,
        paid: bool | None = None,
        reasons: list[str] | None = None,
        awaiting: AwaitingDecision | None = None,
        payment: PaymentInput | None = None,
    ) -> None:
        """The order's status moves: search attribute, then the read model's row and event (idempotent on seq)."""
        state = self.state
        state.status = status
        state.seq += 1
        workflow.upsert_search_attributes([contract.ORDER_STATUS.value_set(status.value)])
        await run_step(
            RECORDING,
            RecordSteps.record_transition,
            TransitionInput(
                order_no=state.order.order_no,
                seq=state.seq,
                status=status,
                at=workflow.now(),
                detail=detail,
                paid=paid,
                reasons=reasons,
                awaiting=awaiting,
                payment_reference=payment.reference if payment else "",
                paid_by=payment.by if payment else "",
            ),
        )

    async def notify(
        self,
        kind: NoticeKind,
        audience: Literal["customer", "role"],
        *,
        key: str | None = None,
        role: Role | None = None,
        **variables: str,
    ) -> None:
        """A notice to the customer or to everyone holding `role`, once per `key` (the kind unless a notice of that
        kind can be sent more than once) whatever the retries."""
        order_no = self.state.order.order_no
        await run_step(
            NOTIFYING,
            NotifySteps.notify,
            NotifyInput(
                key=f"{order_no}:{key or kind.value}",
                order_no=order_no,
                kind=kind.value,
                audience=audience,
                role=role,
                variables=variables,
            ),
        )
