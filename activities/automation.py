"""Automation runs' activities: the branch after a delay, each action exactly once, the run log.

Database actions (notify, todo, set, requisition) write their effect and their step in one transaction
(services/automation/actions.py). A webhook is POSTed, then its step recorded: a worker killed in between
POSTs again on the retry, with the same X-Orderflow-Delivery id, so the receiver can drop the repeat (at least
once on the wire, once in the run log). An order signal goes through the same command as a person's, then its
step is recorded; the order refuses a second cancel, so a repeat changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import DbActivities
from core.config import Settings
from core.db import is_postgres, read_only, unit_of_work
from integrations import webhooks
from models.contracts import ActionInput, RunRef, ScheduleFire, StepRecord
from models.tables import AutomationRun
from rules.automation import EventKind, SignalOrder, Webhook, choose_branch, render
from rules.expressions import ExpressionError
from services import order_commands
from services.automation import store
from services.automation.actions import ActionRefused, done_detail, parse_action, perform, record_step, step_key
from services.automation.dispatcher import json_facts
from services.automation.facts import SubjectGone, facts
from services.automation.schedules import record_firing
from services.errors import CommandError
from services.notify.writer import NoticeWriter
from workflows.steps import AutomationSteps

REFUSED = "AutomationActionRefused"


class AutomationActivities(DbActivities, AutomationSteps):
    def __init__(
        self, engine: Engine, settings: Settings, http: httpx.AsyncClient, notices: NoticeWriter | None = None
    ) -> None:
        super().__init__(engine, settings)
        self.http = http
        self.notices = notices or NoticeWriter.load(settings)

    @activity.defn
    def choose_branch(self, inp: RunRef) -> int | None:
        """After the rule's delay: the facts now, the branch they choose (None: the run is skipped), logged."""
        now = datetime.now(UTC)
        with unit_of_work(self.engine) as session:
            stored = store.version_of(session, inp.rule, inp.version)
            if stored is None:
                raise ApplicationError(f"rule {inp.rule} v{inp.version} is not stored", non_retryable=True)
            run = session.get(AutomationRun, inp.run_id)
            try:
                values = facts(session, EventKind(inp.event_kind), inp.subject, inp.event_data, rule=inp.rule, now=now)
                branch = choose_branch(stored.rule, values)
            except (SubjectGone, ExpressionError) as exc:
                record_step(
                    session,
                    StepRecord(
                        run=inp, position=-1, action="after", state="failed", detail=str(exc), run_state="failed"
                    ),
                    now,
                )
                return None
            if run is not None:
                run.facts, run.branch = json_facts(values), branch
                session.add(run)
            if branch is None:
                detail = "the conditions no longer hold: nothing to do"
                record_step(
                    session,
                    StepRecord(
                        run=inp, position=-1, action="after", state="skipped", detail=detail, run_state="skipped"
                    ),
                    now,
                )
            else:
                record_step(
                    session,
                    StepRecord(
                        run=inp,
                        position=-1,
                        action="after",
                        state="done",
                        detail=f"branch {branch + 1} holds",
                        run_state="running",
                    ),
                    now,
                )
        return branch

    @activity.defn
    async def perform_action(self, inp: ActionInput) -> str:
        """Do the action once; what it did (the run log's detail)."""
        action = parse_action(inp.action)
        if not isinstance(action, Webhook | SignalOrder):  # done-check, effect and step in one transaction
            return await asyncio.to_thread(self._database_action, inp, action)
        earlier = await asyncio.to_thread(self._done, inp)
        if earlier is not None:
            return earlier
        try:
            if isinstance(action, Webhook):
                detail = await self._webhook(inp, action)
            else:
                detail = await self._signal(inp, action)
        except (ActionRefused, SubjectGone, CommandError) as exc:
            raise ApplicationError(str(exc), type=REFUSED, non_retryable=True) from exc
        await asyncio.to_thread(self._record_done, inp, detail)
        return detail

    @activity.defn
    def record_step(self, inp: StepRecord) -> None:
        with unit_of_work(self.engine) as session:
            record_step(session, inp, datetime.now(UTC))

    @activity.defn
    def fire_schedule(self, inp: ScheduleFire) -> int:
        """The schedule's firing into the outbox (keyed on this workflow's id: one per fire time)."""
        with unit_of_work(self.engine) as session:
            return record_firing(session, inp, activity.info().workflow_id or "", datetime.now(UTC))

    # --- helpers ---------------------------------------------------------------------------------

    def _done(self, inp: ActionInput) -> str | None:
        with read_only(self.engine) as session:
            return done_detail(session, inp.run, inp.position)

    def _facts(self, inp: ActionInput) -> dict[str, Any]:
        run = inp.run
        with read_only(self.engine) as session:
            return facts(
                session, EventKind(run.event_kind), run.subject, run.event_data, rule=run.rule, now=datetime.now(UTC)
            )

    def _database_action(self, inp: ActionInput, action: Any) -> str:
        try:
            now = datetime.now(UTC)
            with unit_of_work(self.engine) as session:
                earlier = done_detail(session, inp.run, inp.position)
                if earlier is not None:
                    return earlier  # a retried activity: done before
                values = facts(
                    session,
                    EventKind(inp.run.event_kind),
                    inp.run.subject,
                    inp.run.event_data,
                    rule=inp.run.rule,
                    now=now,
                )
                detail = perform(
                    session,
                    inp.run,
                    inp.position,
                    action,
                    values,
                    now,
                    lock=is_postgres(self.engine),
                    notices=self.notices,
                )
                record_step(session, self._done_record(inp, detail), now)
            return detail
        except (ActionRefused, SubjectGone) as exc:
            raise ApplicationError(str(exc), type=REFUSED, non_retryable=True) from exc

    def _record_done(self, inp: ActionInput, detail: str) -> None:
        with unit_of_work(self.engine) as session:
            record_step(session, self._done_record(inp, detail), datetime.now(UTC))

    @staticmethod
    def _done_record(inp: ActionInput, detail: str) -> StepRecord:
        action = str(inp.action.get("type", ""))
        return StepRecord(
            run=inp.run,
            position=inp.position,
            action=action,
            state="done",
            detail=detail,
            run_state="completed" if inp.last else "running",
        )

    async def _webhook(self, inp: ActionInput, action: Webhook) -> str:
        values = await asyncio.to_thread(self._facts, inp)
        if action.body is not None:
            body = render(action.body, values).encode()
        else:
            document = {
                "rule": inp.run.rule,
                "version": inp.run.version,
                "run_id": inp.run.run_id,
                "subject": inp.run.subject,
                "event": inp.run.event_kind,
                "facts": json_facts(values),
            }
            body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
        status = await webhooks.post(
            self.http,
            action.url,
            body,
            secret=self.settings.automation_webhook_secret,
            delivery=step_key(inp.run, inp.position),
        )
        return f"POST {action.url}: HTTP {status}"

    async def _signal(self, inp: ActionInput, action: SignalOrder) -> str:
        values = await asyncio.to_thread(self._facts, inp)
        reason = render(action.reason, values)
        state = await order_commands.cancel(
            activity.client(), inp.run.subject, reason=reason, by=f"automation {inp.run.rule}"
        )
        return f"order {inp.run.subject} cancelled: {reason} (now {state.status.value})"
