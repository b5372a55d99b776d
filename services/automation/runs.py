"""The run log read and acted on: runs with their steps, and retrying a failed run (from its failed step or
from the start) pinned to the rule version it started with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from core.db import read_only, unit_of_work
from models.contracts import AutomationRunInput
from models.tables import AutomationRun, AutomationStep
from services.automation import store
from services.errors import NotFound, Refused
from workflows import contract


@dataclass(frozen=True)
class RunView:
    run: AutomationRun
    steps: list[AutomationStep]

    @property
    def failed_step(self) -> AutomationStep | None:
        return next((step for step in self.steps if step.attempt == self.run.attempt and step.state == "failed"), None)


def runs(
    session: Session, *, rule: str | None = None, subject: str | None = None, failed: bool = False, limit: int = 50
) -> list[AutomationRun]:
    query = select(AutomationRun).order_by(col(AutomationRun.started_at).desc(), col(AutomationRun.run_id))
    if rule:
        query = query.where(AutomationRun.rule == rule)
    if subject:
        query = query.where(AutomationRun.subject == subject)
    if failed:
        query = query.where(AutomationRun.state == "failed")
    return list(session.exec(query.limit(limit)).all())


def run_view(session: Session, run_id: str) -> RunView:
    run = session.get(AutomationRun, run_id)
    if run is None:
        raise NotFound(f"no automation run {run_id}")
    steps = session.exec(
        select(AutomationStep)
        .where(AutomationStep.run_id == run_id)
        .order_by(col(AutomationStep.attempt), col(AutomationStep.position))
    ).all()
    return RunView(run, list(steps))


async def retry(engine: Engine, client: Client, run_id: str, *, from_start: bool, task_queue: str) -> AutomationRun:
    """Start attempt n + 1 of a failed run: from its failed step (the steps before it stay done) or from the
    start (every action again), with the rule version the run started with."""
    with unit_of_work(engine) as session:
        view = run_view(session, run_id)
        run = view.run
        if run.state != "failed":
            raise Refused(f"run {run_id} is {run.state}: only a failed run can be retried")
        stored = store.version_of(session, run.rule, run.version)
        if stored is None:
            raise NotFound(f"rule {run.rule} v{run.version} is not stored")
        failed = view.failed_step
        start_at = 0 if from_start or failed is None or failed.position < 0 else failed.position
        run.attempt += 1
        run.state, run.error, run.finished_at = "running", None, None
        session.add(run)
        inp = AutomationRunInput(
            run_id=run.run_id,
            rule=run.rule,
            version=run.version,
            definition=stored.rule.definition(),
            subject=run.subject,
            event_kind=run.trigger,
            event_key=run.event_key,
            event_data=dict(run.event_data),
            caused_by=list(run.caused_by),
            branch=run.branch,
            attempt=run.attempt,
            start_at=start_at,
        )
        attempt = run.attempt
    await client.start_workflow(
        contract.AUTOMATION_WORKFLOW, inp, id=contract.automation_retry_id(run_id, attempt), task_queue=task_queue
    )
    with read_only(engine) as session:
        found = session.get(AutomationRun, run_id)
        assert found is not None
        return found


def describe_run(view: RunView) -> dict[str, Any]:
    """The run as the CLI's JSON and the console show it."""
    run = view.run
    return {
        "run_id": run.run_id,
        "rule": run.rule,
        "version": run.version,
        "subject": run.subject,
        "trigger": run.trigger,
        "state": run.state,
        "attempt": run.attempt,
        "branch": None if run.branch is None else run.branch + 1,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error,
        "facts": run.facts,
        "steps": [
            {
                "attempt": step.attempt,
                "position": step.position,
                "action": step.action,
                "state": step.state,
                "detail": step.detail,
                "at": step.at.isoformat(),
            }
            for step in view.steps
        ],
    }
