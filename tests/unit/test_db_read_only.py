"""Readers do not queue behind a writer on SQLite (token checks and views while the worker writes)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from core.db import make_engine, read_only, unit_of_work


def test_a_reader_sees_the_last_commit_at_once_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with unit_of_work(engine) as session:
        session.exec(text("CREATE TABLE t (x INTEGER)"))  # type: ignore[call-overload]
        session.exec(text("INSERT INTO t VALUES (1)"))  # type: ignore[call-overload]
    writing, release = threading.Event(), threading.Event()

    def writer() -> None:
        with unit_of_work(engine) as session:
            session.exec(text("INSERT INTO t VALUES (2)"))  # type: ignore[call-overload]
            writing.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(5)
        started = time.monotonic()
        with read_only(engine) as session:
            count = session.exec(text("SELECT count(*) FROM t")).one()  # type: ignore[call-overload]
        assert count == (1,) and time.monotonic() - started < 1.0
    finally:
        release.set()
        thread.join()
    with read_only(engine) as session:
        assert session.exec(text("SELECT count(*) FROM t")).one() == (2,)  # type: ignore[call-overload]
    engine.dispose()
