"""The migrations build exactly the tables the models describe, on both databases, and carry data forward."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel, col, select

import models.tables  # noqa: F401  (the tables' metadata)
from core.db import make_engine
from core.migrate import alembic_config, is_current, newest_revision, upgrade
from models.tables import Customer, InvoiceLine, LedgerEntry, SalesOrder
from services.billing.ledger import balances


def test_the_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_orders_already_waiting_for_a_level_get_their_to_do(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
    opened = datetime(2026, 11, 30, 8, tzinfo=UTC)
    with engine.begin() as connection:
        for order_no, status in (("SO-OLD-1", "AWAITING_APPROVAL"), ("SO-OLD-2", "PICKING")):
            connection.execute(
                text(
                    "INSERT INTO orders (order_no, workflow_id, customer_id, channel, sales_rep, order_type,"
                    " payment_method, currency, total, status, paid, payload, content_hash, reasons, created_at,"
                    " updated_at) VALUES (:no, :wf, 'C-1001', 'web', 'alice', 'standard', 'credit', 'CNY', 1299900,"
                    " :status, 0, '{}', 'h', '[]', :at, :at)"
                ),
                {"no": order_no, "wf": f"order-{order_no}", "status": status, "at": opened},
            )
            connection.execute(
                text("INSERT INTO order_events (order_no, seq, status, at, detail) VALUES (:no, 2, :s, :at, :d)"),
                {"no": order_no, "s": "AWAITING_APPROVAL", "at": opened, "d": "level 2: finance_director"},
            )
    upgrade(engine)
    with Session(engine) as session:
        waiting = session.get(SalesOrder, "SO-OLD-1")
        moved_on = session.get(SalesOrder, "SO-OLD-2")
    assert waiting is not None and moved_on is not None
    assert (waiting.awaiting_role, waiting.awaiting_level, waiting.awaiting_since) == ("finance_director", 2, opened)
    assert moved_on.awaiting_role is None  # no longer waiting: no to-do
    engine.dispose()


def test_the_quick_currency_check_agrees_with_alembic(engine: Engine, tmp_path: Path) -> None:
    """is_current reads the head off the revision files (no Alembic import): the same head Alembic finds, and a
    database one revision behind is not current."""
    assert newest_revision() is not None
    assert {newest_revision()} == set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    assert is_current(engine)
    behind = make_engine(f"sqlite:///{tmp_path / 'behind.db'}")
    assert not is_current(behind)  # nothing at all yet
    config = alembic_config(str(behind.url))
    with behind.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
    assert not is_current(behind)
    upgrade(behind)
    assert is_current(behind)


def test_what_customers_owed_moves_into_the_ledger_and_their_balances_stay(tmp_path: Path) -> None:
    """Migration 0012: customers.receivables becomes each one's opening entry; a paid order its prepayment, a
    recorded refund its refund — so every balance (and so every exposure) is what it was."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0011")
    at = datetime(2026, 11, 30, 8, tzinfo=UTC)
    with engine.begin() as connection:
        for cid, cents in (("C-OLD-1", 1200000), ("C-OLD-2", 0)):
            connection.execute(
                text(
                    "INSERT INTO customers (customer_id, name, region, email, phone, credit_limit, receivables,"
                    " first_order) VALUES (:cid, :cid, '华东', '', '', 5000000, :owed, 0)"
                ),
                {"cid": cid, "owed": cents},
            )
        for order_no, status in (("SO-PAID", "PICKING"), ("SO-REFUNDED", "CANCELLED")):
            connection.execute(
                text(
                    "INSERT INTO orders (order_no, workflow_id, customer_id, channel, sales_rep, order_type,"
                    " payment_method, currency, total, status, paid, payload, content_hash, reasons, created_at,"
                    " updated_at, tags) VALUES (:no, :wf, 'C-OLD-2', 'web', 'alice', 'standard', 'prepaid', 'CNY',"
                    " 39800, :status, 1, '{}', 'h', '[]', :at, :at, '[]')"
                ),
                {"no": order_no, "wf": f"order-{order_no}", "status": status, "at": at},
            )
        connection.execute(
            text(
                "INSERT INTO refunds (order_no, amount, currency, reference, made_by, made_at)"
                " VALUES ('SO-REFUNDED', 39800, 'CNY', 'BANK-R1', 'fiona', :at)"
            ),
            {"at": at},
        )
    upgrade(engine)
    with Session(engine) as session:
        owed = balances(session, ["C-OLD-1", "C-OLD-2"])
        kinds = sorted(
            (e.key, e.kind, e.amount) for e in session.exec(select(LedgerEntry)) if e.customer_id.startswith("C-OLD")
        )
        terms = session.get(Customer, "C-OLD-1")
    assert owed == {"C-OLD-1": Decimal("12000.00"), "C-OLD-2": Decimal("-398.00")}  # the paid order's money, held
    assert kinds == [
        ("opening:C-OLD-1", "opening", Decimal("12000.00")),
        ("prepayment:SO-PAID", "payment", Decimal("-398.00")),
        ("prepayment:SO-REFUNDED", "payment", Decimal("-398.00")),
        ("refund:SO-REFUNDED", "refund", Decimal("398.00")),
    ]
    assert terms is not None and terms.payment_terms_days == 30
    engine.dispose()


def test_credit_note_lines_issued_before_0016_name_the_invoice_line_they_credit(tmp_path: Path) -> None:
    """Migration 0016: a credit note's lines get the invoice line the old matching gave them (by SKU and price, the
    first line with units left), so credits issued before keep counting where they did."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0015")
    at = datetime(2026, 12, 4, 8, tzinfo=UTC)
    with engine.begin() as connection:
        for number, kind, seq, corrects in (("OF-2026-000001", "invoice", 1, None), ("OF-2026-000002", "credit_note", 2,
                                            "OF-2026-000001")):  # fmt: skip
            connection.execute(
                text(
                    "INSERT INTO invoices (invoice_no, key, kind, entity, year, seq, order_no, customer_id, corrects,"
                    " currency, net, tax, total, issued_at, due_at, reason) VALUES (:no, :no, :kind, 'OF', 2026,"
                    " :seq, 'SO-1', 'C-1', :corrects, 'CNY', 0, 0, 0, :at, :at, '')"
                ),
                {"no": number, "kind": kind, "seq": seq, "corrects": corrects, "at": at},
            )
        for number, position, qty in (("OF-2026-000001", 0, 1), ("OF-2026-000001", 1, 3), ("OF-2026-000002", 0, -1),
                                      ("OF-2026-000002", 1, -2)):  # fmt: skip
            connection.execute(
                text(
                    "INSERT INTO invoice_lines (invoice_no, position, sku, description, qty, unit_price, tax_rate_bp,"
                    " net, tax, gross) VALUES (:no, :pos, 'SKU-1', 'x', :qty, 1000, 1300, 0, 0, 0)"
                ),
                {"no": number, "pos": position, "qty": qty},
            )
    upgrade(engine)
    with Session(engine) as session:
        found = session.exec(
            select(InvoiceLine.invoice_no, InvoiceLine.position, InvoiceLine.corrects_line).order_by(
                col(InvoiceLine.invoice_no), col(InvoiceLine.position)
            )
        ).all()
    assert found == [
        ("OF-2026-000001", 0, None), ("OF-2026-000001", 1, None),
        ("OF-2026-000002", 0, 0),  # one unit: the first line with a unit left
        ("OF-2026-000002", 1, 1),  # two units: line 0 has none left, line 1 has three
    ]  # fmt: skip
    engine.dispose()
