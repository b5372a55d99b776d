"""Remembered KPI figures: a cockpit's cards are asked again by its live refresh and by everyone watching it, so the
same question on the same data is answered from memory — exactly, never a stale figure beyond the stated margin.

Two kinds of question:
- **open** (a period running to today): remembered per *data version* — the highest ids of the tables every change
  a KPI counts adds a row to (status events, carrier events, receipts, reservations, parcels; only ever added to) —
  and today's date, at most `COMMIT_MARGIN` seconds: on PostgreSQL ids are taken in insert order but committed in
  any order, so a transaction that took a lower id than one committed before it does not move the version; its
  change shows within the margin.
- **settled** (a period that ended before today: the previous period of every trend arrow): new rows do not change
  it unless they belong to an order received before the period ended (a late carrier event, a return, a backorder
  filled at last) or move stock at a time inside it. So instead of recomputing it after every new event, its figures
  are kept with the ids `through` which every change was taken into account, and asked again they are checked:
  any row after `through` touching the period? Only then are they computed again. `through` is the data version as
  it was at least `COMMIT_MARGIN` seconds before (a sample kept here), so every row up to it had committed before
  the figures were computed — the same assumption as the open questions' margin. A process younger than the margin
  has no such sample: its settled questions are remembered as open ones until it has.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import Any, TypeVar, cast

from sqlalchemy import exists, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.tables import OrderEvent, OrderFacts, Reservation, Shipment, StockReceipt, TrackingEvent

T = TypeVar("T")
Ids = tuple[int, ...]

# Every change a KPI counts adds a row to one of these (a parcel's first of several leaves no status event; its
# reservations are consumed with it). Not a product's line or cost: those count from the next change.
VERSIONED = (OrderEvent, TrackingEvent, StockReceipt, Reservation, Shipment)
COMMIT_MARGIN = 30.0  # seconds within which a transaction that took an id has committed it
_KEEP = 512  # questions remembered, per kind
_SAMPLE_EVERY = 5.0  # seconds between the data versions sampled per database
_SAMPLES_KEPT = 64


def version_ids(session: Session) -> Ids:
    """The highest id of each VERSIONED table: five index lookups."""
    return tuple(session.exec(select(func.max(col(table.id)))).one() or 0 for table in VERSIONED)


def data_version(session: Session) -> str:
    """Moves whenever anything a KPI counts may have changed (the cockpit's live refresh polls it)."""
    return "-".join(str(n) for n in version_ids(session))


@dataclass
class _Settled:
    value: Any
    through: Ids  # every row up to these ids was counted


_LOCK = threading.Lock()
_OPEN: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
_SETTLED: OrderedDict[tuple[Any, ...], _Settled] = OrderedDict()
_SAMPLES: dict[str, deque[tuple[float, Ids]]] = {}
_UNTOUCHED: OrderedDict[tuple[Any, ...], bool] = OrderedDict()  # (database, through, ids now, period end) → clean


def forget() -> None:
    """Drop everything remembered (the bench measures what computing costs)."""
    with _LOCK:
        _OPEN.clear()
        _SETTLED.clear()
        _SAMPLES.clear()
        _UNTOUCHED.clear()


def remembered(
    session: Session, question: tuple[Any, ...], today: Any, settled_end: datetime | None, compute: Callable[[], T]
) -> T:
    """`compute()`'s answer to `question` on this database, from memory when it still holds. `settled_end`: the end
    of the question's period when it ended before today (nothing after it is counted), else None."""
    where = str(session.get_bind().engine.url)  # one process may read several databases (the tests do)
    ids = version_ids(session)
    clock = monotonic()
    through = _sample(where, clock, ids)
    if settled_end is not None:
        key = (where, *question)
        with _LOCK:
            kept = _SETTLED.get(key)
        if kept is not None and (kept.through == ids or _untouched(session, where, kept.through, ids, settled_end)):
            with _LOCK:
                if through is not None and all(a >= b for a, b in zip(through, kept.through, strict=True)):
                    kept.through = through  # every row up to the sample was checked: none touched the period
                _SETTLED[key] = kept
                _SETTLED.move_to_end(key)
            return cast(T, kept.value)
        if through is not None:
            value = compute()
            _keep(_SETTLED, key, _Settled(value, through))
            return value
    key = (where, *question, today, ids)
    with _LOCK:
        hit = _OPEN.get(key)
        if hit is not None and clock - hit[0] < COMMIT_MARGIN:
            _OPEN.move_to_end(key)
            return hit[1]  # type: ignore[no-any-return]
    value = compute()
    _keep(_OPEN, key, (clock, value))
    return value


def _keep(memory: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
    with _LOCK:
        memory[key] = value
        memory.move_to_end(key)
        while len(memory) > _KEEP:
            memory.popitem(last=False)


def _sample(where: str, clock: float, ids: Ids) -> Ids | None:
    """Note the data version seen now; return the newest one seen at least COMMIT_MARGIN seconds ago (None: none)."""
    with _LOCK:
        samples = _SAMPLES.setdefault(where, deque())
        if not samples or clock - samples[-1][0] >= _SAMPLE_EVERY:
            samples.append((clock, ids))
        old = [seen for at, seen in samples if clock - at >= COMMIT_MARGIN]
        while len(samples) > _SAMPLES_KEPT and clock - samples[1][0] >= COMMIT_MARGIN:
            samples.popleft()  # keep the newest sample that is old enough, and every younger one
        return old[-1] if old else None


def _untouched(session: Session, where: str, through: Ids, ids: Ids, end: datetime) -> bool:
    """No row after `through` can change a period that ended at `end`: none belongs to an order received before it
    (every fact of an order is anchored at or after its receipt), and no receipt is dated inside it. Each check a
    range of the newest ids (those since the sample), answered once per data version."""
    key = (where, through, ids, end)
    with _LOCK:
        known = _UNTOUCHED.get(key)
    if known is not None:
        return known
    events, tracking, receipts, reservations, shipments = through
    old_order = col(OrderFacts.received_at) < end
    checks = [
        exists().where(col(OrderEvent.id) > events, col(OrderFacts.order_no) == col(OrderEvent.order_no), old_order),
        exists().where(
            col(TrackingEvent.id) > tracking,
            col(Shipment.carrier) == col(TrackingEvent.carrier),
            col(Shipment.tracking_no) == col(TrackingEvent.tracking_no),
            col(OrderFacts.order_no) == col(Shipment.order_no),
            old_order,
        ),
        exists().where(col(StockReceipt.id) > receipts, col(StockReceipt.at) < end),
        exists().where(
            col(Reservation.id) > reservations, col(OrderFacts.order_no) == col(Reservation.order_no), old_order
        ),
        exists().where(col(Shipment.id) > shipments, col(OrderFacts.order_no) == col(Shipment.order_no), old_order),
    ]
    touched = any(session.execute(sa_select(check)).scalar() for check in checks)
    _keep(_UNTOUCHED, key, not touched)
    return not touched
