"""models.sqltypes through a real SQLite file: money stays exact Decimal, times stay aware UTC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, func, insert, select, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session
from sqlmodel import select as sm_select

from core.db import make_engine, unit_of_work
from models.sqltypes import MoneyCents, UTCDateTime
from models.tables import Customer, LedgerEntry, OrderEvent, StockLot

# A private MetaData: nothing here leaks into SQLModel.metadata (which Alembic compares against).
metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("amount", MoneyCents),
    Column("at", UTCDateTime),
)

SHANGHAI = timezone(timedelta(hours=8))
MAX_CENTS = 2**63 - 1  # BIGINT


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'types.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def store(engine: Engine, **values: object) -> int:
    with engine.begin() as conn:
        result = conn.execute(insert(things).values(**values))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def load(engine: Engine, row_id: int) -> tuple[Decimal | None, datetime | None]:
    with engine.connect() as conn:
        row = conn.execute(select(things.c.amount, things.c.at).where(things.c.id == row_id)).one()
    return row.amount, row.at


def raw(engine: Engine, row_id: int) -> tuple[object, str, object]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT amount, typeof(amount), at FROM things WHERE id = :id"), {"id": row_id}).one()
    return row[0], row[1], row[2]


class TestMoneyCents:
    @pytest.mark.parametrize(
        "amount",
        ["0.00", "0.01", "0.10", "199.00", "12345678901.23", "99999999999999.99", str(Decimal(MAX_CENTS) / 100)],
    )
    def test_round_trip_is_exact(self, db: Engine, amount: str) -> None:
        row_id = store(db, amount=Decimal(amount))
        back, _ = load(db, row_id)
        assert isinstance(back, Decimal)
        assert back == Decimal(amount)
        assert str(back) == amount

    def test_stored_as_integer_minor_units(self, db: Engine) -> None:
        row_id = store(db, amount=Decimal("12345678901.23"))
        value, kind, _ = raw(db, row_id)
        assert (value, kind) == (1234567890123, "integer")

    @pytest.mark.parametrize(("given", "expected"), [("199", "199.00"), ("199.0", "199.00"), ("5.5", "5.50")])
    def test_always_read_back_with_two_places(self, db: Engine, given: str, expected: str) -> None:
        back, _ = load(db, store(db, amount=Decimal(given)))
        assert str(back) == expected

    def test_null(self, db: Engine) -> None:
        assert load(db, store(db, amount=None)) == (None, None)

    def test_sql_arithmetic_stays_exact(self, db: Engine) -> None:
        for amount in ("0.10", "0.20", "12345678901.23"):
            store(db, amount=Decimal(amount))
        with db.connect() as conn:
            total = conn.execute(select(func.sum(things.c.amount))).scalar_one()
            over = conn.execute(select(things.c.amount).where(things.c.amount > Decimal("0.15"))).scalars().all()
        assert total == Decimal("12345678901.53")
        assert sorted(over) == [Decimal("0.20"), Decimal("12345678901.23")]

    @pytest.mark.parametrize("amount", [Decimal("0.005"), Decimal("199.001"), Decimal("1.999")])
    def test_fractions_of_a_cent_are_refused_not_rounded(self, db: Engine, amount: Decimal) -> None:
        with pytest.raises(StatementError, match="fractions of a cent"):
            store(db, amount=amount)
        with db.connect() as conn:
            assert conn.execute(select(func.count()).select_from(things)).scalar_one() == 0

    def test_trailing_zeros_beyond_cents_are_fine(self, db: Engine) -> None:
        back, _ = load(db, store(db, amount=Decimal("199.0000")))
        assert str(back) == "199.00"


class TestUTCDateTime:
    def test_utc_round_trip(self, db: Engine) -> None:
        moment = datetime(2026, 9, 1, 12, 30, 45, 123456, tzinfo=UTC)
        _, back = load(db, store(db, at=moment))
        assert back == moment
        assert back is not None and back.tzinfo is UTC

    def test_other_offsets_are_stored_as_the_same_instant_in_utc(self, db: Engine) -> None:
        moment = datetime(2026, 9, 1, 8, 0, tzinfo=SHANGHAI)
        row_id = store(db, at=moment)
        _, back = load(db, row_id)
        assert back == moment
        assert back is not None
        assert back.tzinfo is UTC
        assert (back.year, back.month, back.day, back.hour) == (2026, 9, 1, 0)
        assert str(raw(db, row_id)[2]).startswith("2026-09-01 00:00:00")

    def test_naive_datetime_is_refused(self, db: Engine) -> None:
        with pytest.raises(StatementError, match="naive datetime refused"):
            store(db, at=datetime(2026, 9, 1, 12, 0))  # noqa: DTZ001 - the point of the test
        with db.connect() as conn:
            assert conn.execute(select(func.count()).select_from(things)).scalar_one() == 0

    def test_naive_datetime_is_refused_in_queries_too(self, db: Engine) -> None:
        with db.connect() as conn, pytest.raises(StatementError, match="naive datetime refused"):
            conn.execute(select(things).where(things.c.at < datetime(2026, 1, 1))).all()  # noqa: DTZ001

    def test_null(self, db: Engine) -> None:
        assert load(db, store(db, at=None))[1] is None

    def test_comparisons_use_the_instant_not_the_wall_clock(self, db: Engine) -> None:
        store(db, at=datetime(2026, 1, 1, 0, 30, tzinfo=UTC))
        midnight_utc_in_shanghai = datetime(2026, 1, 1, 8, 0, tzinfo=SHANGHAI)
        with db.connect() as conn:
            before = conn.execute(select(things.c.id).where(things.c.at < midnight_utc_in_shanghai)).all()
            after = conn.execute(select(things.c.id).where(things.c.at > midnight_utc_in_shanghai)).all()
        assert (len(before), len(after)) == (0, 1)


class TestRealTables:
    """The same types on the migrated schema (the `engine` fixture runs Alembic and seeds the demo world)."""

    def test_customer_money_round_trips(self, engine: Engine) -> None:
        with unit_of_work(engine) as session:
            session.add(
                Customer(
                    customer_id="C-BIG",
                    name="Big",
                    region="华东",
                    credit_limit=Decimal("12345678901.23"),
                )
            )
            session.add(
                LedgerEntry(key="cents", customer_id="C-BIG", kind="opening", amount=Decimal("-0.01"),
                            currency="CNY", at=datetime.now(UTC))
            )  # fmt: skip
        with Session(engine) as session:
            customer = session.get(Customer, "C-BIG")
            assert customer is not None
            assert customer.credit_limit == Decimal("12345678901.23")
            entry = session.exec(sm_select(LedgerEntry).where(LedgerEntry.key == "cents")).one()
            assert str(entry.amount) == "-0.01"  # negative cents too
        with engine.connect() as conn:
            cents = conn.execute(text("SELECT credit_limit FROM customers WHERE customer_id = 'C-BIG'")).scalar_one()
        assert cents == 1234567890123

    def test_seeded_lots_read_back_aware_utc(self, engine: Engine) -> None:
        with Session(engine) as session:
            lots = session.exec(sm_select(StockLot).limit(5)).all()
        assert lots
        for lot in lots:
            assert lot.received_at.tzinfo is UTC

    def test_event_time_round_trips_and_naive_is_refused(self, engine: Engine) -> None:
        at = datetime(2026, 3, 1, 9, 15, 0, 42, tzinfo=SHANGHAI)
        with unit_of_work(engine) as session:
            session.add(OrderEvent(order_no="SO-T", seq=1, status="RECEIVED", at=at))
        with Session(engine) as session:
            event = session.exec(sm_select(OrderEvent).where(OrderEvent.order_no == "SO-T")).one()
        assert event.at == at
        assert event.at.tzinfo is UTC
        assert event.at.hour == 1
        with pytest.raises(StatementError, match="naive datetime refused"), unit_of_work(engine) as session:
            session.add(OrderEvent(order_no="SO-T", seq=2, status="RECEIVED", at=datetime(2026, 3, 1)))  # noqa: DTZ001
        with Session(engine) as session:
            assert len(session.exec(sm_select(OrderEvent).where(OrderEvent.order_no == "SO-T")).all()) == 1
