"""Column types that keep money exact and times UTC on every database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect
from sqlalchemy.types import TypeDecorator

CENTS = Decimal("0.01")


class MoneyCents(TypeDecorator[Decimal]):
    """Decimal in Python, integer minor units in the database: exact on SQLite and Postgres alike."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        cents = Decimal(value) / CENTS
        if cents != cents.to_integral_value():  # to_integral_exact() would round silently: refuse instead
            raise ValueError(f"{value} has fractions of a cent: round it explicitly before storing")
        return int(cents)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(int(value)) * CENTS).quantize(CENTS)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes; naive values are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite drops the offset; we only ever store UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
