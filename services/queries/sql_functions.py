"""SQL the two databases spell differently, as SQLAlchemy functions compiled per dialect."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Date, Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class seconds_between(FunctionElement[float]):  # noqa: N801 (used as a SQL function, as func.* are)
    """Seconds from the first timestamp to the second (negative when the second is earlier)."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "postgresql")
def _pg(element: seconds_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(seconds_between, "sqlite")
def _sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    # Stored as text, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC (SQLAlchemy's SQLite DATETIME): whole seconds from the
    # Unix time, the microseconds from the text — exact, where julianday's doubles drift by ~0.1 ms.
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"((strftime('%s', {end}) - strftime('%s', {start}))"
        f" + (CAST(substr({end}, 20) AS REAL) - CAST(substr({start}, 20) AS REAL)))"
    )


class local_date(FunctionElement[date]):  # noqa: N801
    """A timestamp's date in a time zone (given by name, as a bound string)."""

    type = Date()
    inherit_cache = True
    name = "local_date"


@compiles(local_date, "postgresql")
def _pg_date(element: local_date, compiler: Any, **kw: Any) -> str:
    at, zone = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(({at} AT TIME ZONE {zone}) AS DATE)"


@compiles(local_date, "sqlite")
def _sqlite_date(element: local_date, compiler: Any, **kw: Any) -> str:
    at, zone = (compiler.process(c, **kw) for c in element.clauses)
    return f"orderflow_local_date({at}, {zone})"  # core/db.py registers it on every connection
