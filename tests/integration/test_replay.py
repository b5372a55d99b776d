"""Replay recorded histories against today's workflow code: a non-deterministic change fails here.

Histories come from `make histories` (tests/support/record_histories.py). A change that breaks replay of
workflows already running in production must use workflow.patched(...) instead of re-recording.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import session_data_converter
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    names = {path.stem for path in HISTORIES}
    assert {
        "completed",
        "completed_tracking1",
        "finance_split",
        "cancelled",
        "rejected",
        "approval_deadline",  # before the approval-escalation patch
        "approval_escalation",  # after it
        "troubled_delivery",  # after the parcel-progress-in-order patch: a failed attempt flags the order
        "troubled_delivery_tracking1",
        "batched_17track_tracking1",  # a parcel followed by its carrier's poller
        "batched_17track_poller",
        "encrypted_approval",  # every payload AES-GCM encrypted, a signed decision (front door)
        # Recorded at the rooms issue, paths no earlier history covered:
        "backorder_restock",  # BACKORDERED, then a receipt's RestockWakeUp serves it
        "backorder_restock_restock",
        "payment_deadline",  # a prepaid order never paid: cancelled at the deadline
        "credit_hold",  # exposure over the limit: CREDIT_HOLD, finance decides
        "director_level",  # finance, then the finance director
        "returned_parcel",  # refused at the door and returned: FAILED
        "returned_parcel_tracking1",
        "expired_parcel",  # 30 days without news: EXPIRED, FAILED
        "expired_parcel_tracking1",
        "poller_continued_as_new",  # a CarrierPoller run grown long while waiting
        "kuaidi100_subscribed_tracking1",  # a Kuaidi100 parcel subscribed for pushes at dispatch
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=session_data_converter())
    await replayer.replay_workflow(history)


def _activities(name: str) -> list[str]:
    history = WorkflowHistory.from_json(name, (HISTORIES[0].parent / f"{name}.json").read_text(encoding="utf-8"))
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def _event_types(name: str) -> list[int]:
    history = WorkflowHistory.from_json(name, (HISTORIES[0].parent / f"{name}.json").read_text(encoding="utf-8"))
    return [event.event_type for event in history.events]


def test_each_recorded_history_walks_the_path_it_is_named_after() -> None:
    """A history recorded wrong (an order that never backordered, a parcel never subscribed) would replay fine and
    guard nothing: each one shows the steps of its path."""
    assert _activities("backorder_restock").count("allocate_stock") >= 2  # short, then served after the receipt
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in _event_types("backorder_restock")  # restocked
    assert _activities("backorder_restock_restock") == ["wake_backordered_orders"]
    assert "allocate_stock" not in _activities("payment_deadline")  # cancelled unpaid, nothing locked
    assert EventType.EVENT_TYPE_TIMER_FIRED in _event_types("payment_deadline")
    assert _activities("credit_hold").count("record_approval") == 1 and "check_credit" in _activities("credit_hold")
    assert _activities("director_level").count("record_approval") == 2
    assert "close_parcel" not in _activities("returned_parcel_tracking1")  # it came back: no expiry
    assert "close_parcel" in _activities("expired_parcel_tracking1")  # marked EXPIRED
    assert "subscribe_parcel" in _activities("kuaidi100_subscribed_tracking1")
    assert _event_types("poller_continued_as_new")[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
