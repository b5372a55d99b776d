"""AutomationRun: one firing of one automation rule version on one subject. Sequences and waits only.

Started by the dispatcher (services/automation/dispatcher.py) with the rule's definition as it was at that
version: a rule edited while this run waits does not change it. With a delay (the trigger's `after`), it sleeps
on a durable timer, then asks for the branch on the facts as they are then. It runs the branch's actions in
order, each an activity that does its work once (keyed on run, attempt and position); a `wait` is a durable
timer. A step that fails for good ends the run as failed with that step's error — never completed. A retry of a
failed run is a new AutomationRun (attempt + 1) from the failed step or from the start.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import contract
from workflows.order_steps import run_step
from workflows.steps import AUTOMATING, WEBHOOK_CALLING, AutomationSteps

with workflow.unsafe.imports_passed_through():
    from domain.durations import parse_duration
    from models.contracts import ActionInput, AutomationRunInput, RunRef, ScheduleFire, StepRecord

AFTER = -1  # the run log's position of the trigger's delay
# Database actions run as local activities (patch: histories recorded before ran them as regular ones). Webhooks
# (long retries with backoff) and order signals (a Temporal call of their own) stay regular activities.
LOCAL_DATABASE_ACTIONS = "automation-local-database-actions"


@workflow.defn(name=contract.AUTOMATION_WORKFLOW)
class AutomationRunWorkflow:
    @workflow.run
    async def run(self, inp: AutomationRunInput) -> str:
        ref = RunRef(
            run_id=inp.run_id,
            rule=inp.rule,
            version=inp.version,
            attempt=inp.attempt,
            subject=inp.subject,
            event_kind=inp.event_kind,
            event_data=inp.event_data,
            caused_by=inp.caused_by,
        )
        branch = inp.branch
        if inp.delay is not None:
            until = workflow.now() + inp.delay
            await _record(ref, AFTER, "after", "waiting", f"fires at {until:%Y-%m-%d %H:%M} UTC", "waiting")
            await workflow.sleep(inp.delay)
        if branch is None:  # after the delay, or a retry of a run that failed before it chose
            branch = await run_step(AUTOMATING, AutomationSteps.choose_branch, ref)
        if branch is None:
            return "skipped"
        actions = inp.definition["branches"][branch]["then"]
        for position in range(inp.start_at, len(actions)):
            action = actions[position]
            kind = str(action["type"])
            last = position == len(actions) - 1
            if kind == "wait":
                pause: timedelta = parse_duration(action["for"])
                until = workflow.now() + pause
                await _record(ref, position, kind, "waiting", f"until {until:%Y-%m-%d %H:%M} UTC", "waiting")
                await workflow.sleep(pause)
                await _record(
                    ref, position, kind, "done", f"waited {action['for']}", "completed" if last else "running"
                )
                continue
            step = ActionInput(run=ref, position=position, action=action, last=last)
            try:
                if kind in contract.AUTOMATION_DATABASE_ACTIONS and workflow.patched(LOCAL_DATABASE_ACTIONS):
                    # A short transaction on this worker: a local activity (a marker in the history, no trip
                    # through the task queue); keyed on run, attempt and position like the regular one.
                    await workflow.execute_local_activity_method(
                        AutomationSteps.perform_action,
                        step,
                        start_to_close_timeout=AUTOMATING.start_to_close,
                        retry_policy=AUTOMATING.retry,
                    )
                else:
                    stage = WEBHOOK_CALLING if kind == "webhook" else AUTOMATING
                    await workflow.execute_activity_method(
                        AutomationSteps.perform_action,
                        step,
                        start_to_close_timeout=stage.start_to_close,
                        retry_policy=stage.retry,
                    )
            except ActivityError as err:
                cause = err.cause
                why = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
                await _record(ref, position, kind, "failed", why, "failed")
                return "failed"
        return "completed"


@workflow.defn(name=contract.AUTOMATION_SCHEDULE_WORKFLOW)
class AutomationScheduleWorkflow:
    """Started by a scheduled rule's Temporal Schedule at each fire time (its id carries the time): runs the
    rule's "get data" and hands the firing to the dispatcher through the event outbox."""

    @workflow.run
    async def run(self, fire: ScheduleFire) -> int:
        found: int = await run_step(AUTOMATING, AutomationSteps.fire_schedule, fire)
        return found


async def _record(ref: RunRef, position: int, action: str, state: str, detail: str, run_state: str) -> None:
    await run_step(
        AUTOMATING,
        AutomationSteps.record_step,
        StepRecord.model_validate(
            {
                "run": ref,
                "position": position,
                "action": action,
                "state": state,
                "detail": detail,
                "run_state": run_state,
            }
        ),
    )
