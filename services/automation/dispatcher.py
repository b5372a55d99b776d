"""The dispatcher: matches the event outbox against the rules in force and fires each matching rule once.

One pass (`Dispatcher.pass_once`), each database step its own short transaction so the single SQLite writer is
never held while facts are read:
1. claim up to `batch` unhandled events (a 60 s lease; Postgres skips rows another worker's dispatcher holds);
2. read-only: re-read the rule set if any rule was saved since the last pass (no restart needed), read the
   orders, customers and parcels of all the pass's events at once (one query per table), and for each event and
   each enabled rule whose trigger matches (rules/automation.py `may_fire`: no loops) take the subject's facts
   and choose the branch — a rule with `after` chooses its branch when its timer ends, with the facts as they
   are then;
3. one write transaction: every *immediate* firing done in full — a branch of database actions only (notify,
   set, to-do, requisition; no delay, no wait) has its effects written, and its run row (in its end state) and
   steps' rows with the pass's others, so it happens exactly once without a workflow (`automation_immediate`) —
   and the other runs' rows; a run already in the log (the event was claimed before) is left alone, and its
   firing is not done again. The run log's rows go in with one INSERT per table;
4. every other firing (a delay, a wait, a webhook, an order signal) starts its AutomationRun workflow, id
   `automation_run_id(rule, version, subject, event)` (asked for eagerly: when the dispatcher runs inside the worker,
   `ORDERFLOW_OUTBOX_PROCESS=inline`, the first task runs there without a trip through the task queue): an
   event claimed twice finds the run already started and fires nothing twice;
5. mark the events handled (in step 3's transaction when nothing had to start).
Each immediate firing has a savepoint: one that fails for an unexpected reason is rolled back alone and runs as a
workflow instead (retried, and failed in the run log if it keeps failing); if the whole transaction fails, all of
the pass's firings do. A run whose row says it ended is never started again by a re-delivered event. A rule whose
condition cannot be evaluated on the facts (say, a division by zero) gets a failed run with the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Engine, delete, insert, or_, update
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.config import Settings
from core.db import is_postgres, read_only, unit_of_work
from models.contracts import AutomationRunInput, RunRef
from models.tables import AutomationEvent, AutomationRun, AutomationStep
from rules.automation import Event, EventKind, choose_branch, may_fire
from rules.expressions import ExpressionError
from services.automation import schedules, store
from services.automation.actions import perform_sequence
from services.automation.facts import Preloaded, SubjectGone, facts, needs_order, preload
from services.notify.writer import NoticeWriter
from workflows import contract

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)
KEEP_HANDLED_EVENTS = timedelta(days=7)  # the run log keeps what fired; handled events are only the outbox


def json_facts(values: Mapping[str, Any]) -> dict[str, Any]:
    """The facts as the run log stores them (Decimal and datetimes as text, exactly)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, Decimal):
            out[name] = str(value)
        elif isinstance(value, datetime):
            out[name] = value.isoformat()
        else:
            out[name] = value
    return out


@dataclass
class RuleCache:
    stamp: tuple[int, int] = (-1, -1)
    rules: list[store.StoredRule] = field(default_factory=list)

    changed: bool = False  # since the dispatcher last looked (schedules follow the rules)

    def refresh(self, session: Session) -> list[store.StoredRule]:
        now_stamp = store.stamp(session)
        if now_stamp != self.stamp:
            self.rules = [stored for stored in store.current(session) if stored.rule.enabled]
            self.stamp = now_stamp
            self.changed = True
        return self.rules


@dataclass(frozen=True)
class Planned:
    """One firing: its run-log row (written before its workflow starts) and the workflow's input, if it runs."""

    row: dict[str, Any]  # the run's automation_runs row, as planned
    start: AutomationRunInput | None  # None: failed at planning (the condition could not be evaluated)
    values: dict[str, Any] | None = None  # the facts it chose its branch on (None: it chooses after its delay)

    @property
    def immediate(self) -> bool:
        """Whether it can be done at once in the dispatcher's transaction: no delay, database actions only."""
        start = self.start
        if start is None or start.branch is None or start.delay is not None or self.values is None:
            return False
        actions = start.definition["branches"][start.branch]["then"]
        return all(action["type"] in contract.AUTOMATION_DATABASE_ACTIONS for action in actions)

    def ref(self) -> RunRef:
        assert self.start is not None
        start = self.start
        return RunRef(
            run_id=start.run_id,
            rule=start.rule,
            version=start.version,
            attempt=start.attempt,
            subject=start.subject,
            event_kind=start.event_kind,
            event_data=start.event_data,
            caused_by=start.caused_by,
        )


def plan_event(
    session: Session,
    event: Event,
    rules: Sequence[store.StoredRule],
    now: datetime,
    preloaded: Preloaded | None = None,
) -> list[Planned]:
    """The runs this event starts (read-only: the caller writes their rows). The subject's facts are read once
    for all the rules the event matches (from `preloaded` when its order is there)."""
    planned: list[Planned] = []
    subject_facts: dict[str, Any] | None = None
    gone = False
    for stored in rules:
        rule = stored.rule
        if not may_fire(rule, event):
            continue
        run_id = contract.automation_run_id(rule.name, stored.version, event.subject, event.key)
        delay = rule.trigger.delay
        branch: int | None = None
        seen: dict[str, Any] = {}
        values: dict[str, Any] | None = None
        error: str | None = None
        if delay is None:
            if gone:
                continue
            try:
                if subject_facts is None:
                    subject_facts = facts(
                        session, event.kind, event.subject, event.data, rule=rule.name, now=now, preloaded=preloaded
                    )
                values = {**subject_facts, "rule": rule.name}
                seen = json_facts(values)
                branch = choose_branch(rule, values)
            except SubjectGone:
                gone = True  # the order (or product) is gone: no rule fires on it now
                continue
            except ExpressionError as exc:
                error = f"the condition could not be evaluated: {exc}"
            if branch is None and error is None:
                continue  # the rule's conditions do not hold: nothing fires, nothing to log
        row = {
            "run_id": run_id,
            "rule": rule.name,
            "version": stored.version,
            "subject": event.subject,
            "trigger": event.kind.value,
            "event_key": event.key[:200],
            "event_data": dict(event.data),
            "caused_by": list(event.caused_by),
            "facts": seen,
            "branch": branch,
            "state": "failed" if error else ("waiting" if delay is not None else "running"),
            "attempt": 0,
            "started_at": now,
            "finished_at": now if error else None,
            "error": error,
        }
        start = None
        if error is None:
            start = AutomationRunInput(
                run_id=run_id,
                rule=rule.name,
                version=stored.version,
                definition=rule.definition(),
                subject=event.subject,
                event_kind=event.kind.value,
                event_key=event.key,
                event_data=dict(event.data),
                caused_by=list(event.caused_by),
                branch=branch,
                delay=delay,
            )
        planned.append(Planned(row, start, values))
    return planned


Starter = Callable[[AutomationRunInput], Awaitable[None]]


def temporal_starter(client: Client, task_queue: str) -> Starter:
    async def start(inp: AutomationRunInput) -> None:
        try:
            await client.start_workflow(
                contract.AUTOMATION_WORKFLOW,
                inp,
                id=inp.run_id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                request_eager_start=True,
            )
        except WorkflowAlreadyStartedError:
            pass  # it ran already (the event was claimed before): fire nothing twice

    return start


def forget_runs(session: Session, before: datetime) -> None:
    """The run log's retention (automation_run_retention): finished runs older than `before`, with their steps."""
    old = select(AutomationRun.run_id).where(
        col(AutomationRun.finished_at).is_not(None), col(AutomationRun.finished_at) < before
    )
    session.exec(delete(AutomationStep).where(col(AutomationStep.run_id).in_(old)))
    session.exec(delete(AutomationRun).where(col(AutomationRun.run_id).in_(old)))


@dataclass
class RunLog:
    """A pass's run-log rows, written with one INSERT per table once its firings are done."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, run: dict[str, Any], steps: Sequence[dict[str, Any]] = ()) -> None:
        self.runs.append(run)
        self.steps.extend(steps)

    def write(self, session: Session) -> None:
        if self.runs:
            session.execute(insert(AutomationRun), self.runs)
        if self.steps:
            session.execute(insert(AutomationStep), self.steps)


def run_now(session: Session, firing: Planned, now: datetime, *, lock: bool, notices: NoticeWriter) -> RunLog:
    """An immediate firing, done in the caller's unit of work: each action's effect; its run row (in its end
    state) and its steps' rows are returned for the caller to write with the pass's others."""
    assert firing.start is not None and firing.start.branch is not None and firing.values is not None
    start = firing.start

    def reread() -> dict[str, Any]:
        kind = EventKind(start.event_kind)
        return {**facts(session, kind, start.subject, start.event_data, rule=start.rule, now=now), "rule": start.rule}

    actions = start.definition["branches"][start.branch]["then"]
    done = perform_sequence(
        session, firing.ref(), actions, firing.values, now, lock=lock, notices=notices, reread=reread
    )
    log = RunLog()
    log.add({**firing.row, "state": done.state, "finished_at": now, "error": done.error}, done.steps)
    return log


# A run whose row says it ended is not started again by a re-delivered event (a failed one is retried by people).
FINISHED = frozenset({"completed", "failed", "skipped"})


def _known_states(session: Session, planned: list[Planned]) -> dict[str, str]:
    """The state of each planned run already in the run log (its event was claimed before)."""
    ids = [firing.row["run_id"] for firing in planned]
    query = select(AutomationRun.run_id, AutomationRun.state).where(col(AutomationRun.run_id).in_(ids))
    return dict(session.exec(query).all())


@dataclass
class Written:
    """What a pass's write transaction did: firings done at once, workflows still to start, events handled."""

    done: int = 0
    to_start: list[AutomationRunInput] = field(default_factory=list)
    handled: bool = False


@dataclass
class PassResult:
    events: int = 0
    started: int = 0


RulesChanged = Callable[[list[store.StoredRule]], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        start: Starter,
        *,
        notices: NoticeWriter,
        batch: int = 200,
        interval: float = 0.5,
        on_rules_changed: RulesChanged | None = None,
        run_retention: timedelta | None = None,
        immediate: bool = True,
    ) -> None:
        self.engine = engine
        self.notices = notices
        self.immediate = immediate
        self.start = start
        self.on_rules_changed = on_rules_changed
        self.run_retention = run_retention
        self.batch = batch
        self.interval = interval
        self.cache = RuleCache()
        self.passes = 0
        self.started = 0
        self.done_at_once = 0
        self._wake = asyncio.Event()
        self._stopping = False

    def _claim(self, now: datetime) -> list[tuple[int, Event]]:
        """Lease up to `batch` unhandled events, in a short write transaction."""
        with unit_of_work(self.engine) as session:
            query = (
                select(AutomationEvent)
                .where(
                    col(AutomationEvent.handled_at).is_(None),
                    or_(col(AutomationEvent.claimed_until).is_(None), col(AutomationEvent.claimed_until) < now),
                )
                .order_by(col(AutomationEvent.id))
                .limit(self.batch)
            )
            if is_postgres(self.engine):
                query = query.with_for_update(skip_locked=True)
            rows = list(session.exec(query).all())
            ids = [row.id for row in rows if row.id is not None]
            if ids:
                session.exec(
                    update(AutomationEvent).where(col(AutomationEvent.id).in_(ids)).values(claimed_until=now + LEASE)
                )
            return [
                (row.id, Event(EventKind(row.kind), row.subject, row.key, row.data, tuple(row.caused_by)))
                for row in rows
                if row.id is not None
            ]

    def _plan(self, events: list[tuple[int, Event]], now: datetime) -> list[Planned]:
        """Match and evaluate in a read-only transaction (no write lock held while the facts are read)."""
        with read_only(self.engine) as session:
            rules = self.cache.refresh(session)
            order_nos = {
                event.subject
                for _, event in events
                if needs_order(event.kind, event.data)
                and any(stored.rule.trigger.delay is None and may_fire(stored.rule, event) for stored in rules)
            }
            preloaded = preload(session, order_nos)
            return [firing for _, event in events for firing in plan_event(session, event, rules, now, preloaded)]

    def _write(self, planned: list[Planned], now: datetime, event_ids: list[int]) -> Written:
        """The runs' rows and the immediate firings, in one write transaction, and the events marked handled
        there too when no workflow has to start first. Each immediate firing has a savepoint of its own: one that
        fails for an unexpected reason is rolled back alone and handed to a workflow."""
        lock = is_postgres(self.engine)
        written = Written()
        with unit_of_work(self.engine) as session:
            known = _known_states(session, planned)
            # The orders (and customers) the immediate firings act on, in one query each: in the session's identity
            # map (weakly: `held` keeps them there), the actions' session.get finds them without a query each.
            held = preload(session, {firing.row["subject"] for firing in planned if firing.immediate})
            run_log = RunLog()
            for firing in planned:
                run_id = firing.row["run_id"]
                state = known.get(run_id)
                if state is None and firing.start is not None and self.immediate and firing.immediate:
                    try:
                        with session.begin_nested():
                            done = run_now(session, firing, now, lock=lock, notices=self.notices)
                        run_log.add(done.runs[0], done.steps)
                        written.done += 1
                        continue
                    except Exception:
                        log.exception("automation firing could not be done at once: a workflow does it", run=run_id)
                if state is None:
                    run_log.add(firing.row)
                if firing.start is not None and state not in FINISHED:
                    written.to_start.append(firing.start)
            run_log.write(session)
            del held
            if not written.to_start:
                self._mark_handled(session, event_ids, now)
                written.handled = True
        return written

    def _log_runs(self, planned: list[Planned]) -> list[AutomationRunInput]:
        """The runs' rows only (every firing as a workflow), in one short write transaction; the runs to start."""
        with unit_of_work(self.engine) as session:
            known = _known_states(session, planned)
            RunLog([firing.row for firing in planned if firing.row["run_id"] not in known]).write(session)
        return [f.start for f in planned if f.start is not None and known.get(f.row["run_id"]) not in FINISHED]

    def _handled(self, ids: list[int], now: datetime) -> None:
        with unit_of_work(self.engine) as session:
            self._mark_handled(session, ids, now)

    def _mark_handled(self, session: Session, ids: list[int], now: datetime) -> None:
        session.exec(update(AutomationEvent).where(col(AutomationEvent.id).in_(ids)).values(handled_at=now))
        if self.passes % 500 == 0:
            session.exec(delete(AutomationEvent).where(col(AutomationEvent.handled_at) < now - KEEP_HANDLED_EVENTS))
            if self.run_retention is not None:
                forget_runs(session, now - self.run_retention)

    async def pass_once(self) -> PassResult:
        now = datetime.now(UTC)
        events = await asyncio.to_thread(self._claim, now)
        planned = await asyncio.to_thread(self._plan, events, now) if events else []
        if not events:
            await asyncio.to_thread(self._refresh_rules)
        if self.cache.changed and self.on_rules_changed is not None:
            self.cache.changed = False
            await self.on_rules_changed(list(self.cache.rules))
        if not events:
            return PassResult()
        event_ids = [event_id for event_id, _ in events]
        try:
            written = await asyncio.to_thread(self._write, planned, now, event_ids)
        except Exception:  # the immediate firings then run as workflows: retried, and logged if they fail
            log.exception("automation firings could not be done at once; starting them as workflows")
            written = Written(to_start=await asyncio.to_thread(self._log_runs, planned))
        limit = asyncio.Semaphore(32)

        async def start(inp: AutomationRunInput) -> None:
            async with limit:
                await self.start(inp)

        # A start that fails (Temporal away) leaves its events claimed: they are planned again when the lease
        # ends, and the runs that did start are found by their ids.
        await asyncio.gather(*(start(inp) for inp in written.to_start))
        if not written.handled:
            await asyncio.to_thread(self._handled, event_ids, datetime.now(UTC))
        self.passes += 1
        self.started += len(written.to_start)
        self.done_at_once += written.done
        return PassResult(len(events), len(written.to_start) + written.done)

    def _refresh_rules(self) -> None:
        with read_only(self.engine) as session:
            self.cache.refresh(session)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        log.info("automation dispatcher started", interval=self.interval)
        while not self._stopping:
            self._wake.clear()
            full = False
            try:
                result = await self.pass_once()
                full = result.events >= self.batch
            except Exception:  # the database or Temporal is away: log it, try again next interval
                log.exception("automation dispatcher pass failed")
            if full or self._stopping:
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
        log.info("automation dispatcher stopped", passes=self.passes, started=self.started)


@asynccontextmanager
async def running_dispatcher(engine: Engine, client: Client, settings: Settings) -> AsyncIterator[Dispatcher]:
    """The dispatcher for the duration of the block (none when automations are switched off)."""

    async def sync(rules: list[store.StoredRule]) -> None:
        await schedules.sync_quietly(client, rules, settings.task_queue)

    dispatcher = Dispatcher(
        engine,
        temporal_starter(client, settings.task_queue),
        notices=NoticeWriter.load(settings),
        batch=settings.automation_batch,
        interval=settings.automation_interval,
        on_rules_changed=sync,
        run_retention=settings.automation_run_retention,
        immediate=settings.automation_immediate,
    )
    if not settings.automations_enabled:
        yield dispatcher
        return
    task = asyncio.create_task(dispatcher.run(), name="automation-dispatcher")
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await task
