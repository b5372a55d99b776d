"""Replay recorded histories against today's workflow code: a non-deterministic change fails here.

Histories come from `make histories` (tests/support/record_histories.py). A change that breaks replay of
workflows already running in production must use workflow.patched(...) instead of re-recording.
"""

from __future__ import annotations

from pathlib import Path

import pytest
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
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=session_data_converter())
    await replayer.replay_workflow(history)
