"""The demo's money, once its orders have played through: the invoices and credit notes they were issued, the
refunds paid back through the simulated provider, a bank statement the "bank" sends for the run (one line paying
an invoice by its number — matched and booked — and one no invoice explains — left for finance to match), and the
reconciliation of the run's period, which must add up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from rich.table import Table
from sqlalchemy import Engine
from sqlmodel import col, select

from core.db import read_only, unit_of_work
from models.status import RefundState
from models.tables import Invoice, Refund
from services.billing.bank import Imported, import_statement
from services.billing.payments import open_invoices
from services.billing.reconciliation import Reconciliation, reconcile

UNEXPLAINED = ("88.00", "Unknown Trading Ltd", "thank you")  # a transfer no invoice explains


@dataclass(frozen=True)
class DemoMoney:
    invoices: int
    invoiced: str
    credit_notes: int
    refunds_made: int
    statement: Path
    imported: Imported
    paid_invoice: str | None
    report: Reconciliation

    def table(self) -> Table:
        table = Table(title="orderflow demo: money")
        table.add_column("what")
        table.add_column("figure")
        table.add_row("invoices issued", f"{self.invoices} ({self.invoiced})")
        table.add_row("credit notes (parcels refused or returned)", str(self.credit_notes))
        table.add_row("refunds paid back through the provider", str(self.refunds_made))
        paid = f" — pays {self.paid_invoice}" if self.paid_invoice else ""
        table.add_row(f"bank statement {self.statement.name}", f"{self.imported.lines} lines")
        table.add_row("  matched and booked", f"{self.imported.matched} ({self.imported.matched_amount}){paid}")
        table.add_row("  left to match (console: Finance → Bank lines)", str(self.imported.to_match))
        for label, amount in self.report.rows():
            table.add_row(f"reconciliation: {label}", amount)
        return table


async def settle_money(engine: Engine, state_dir: Path, order_nos: list[str], started: datetime) -> DemoMoney:
    await _refunds_done(engine, order_nos)
    run_tag = started.strftime("%Y%m%d-%H%M%S")
    with read_only(engine) as session:
        issued = session.exec(select(Invoice).where(col(Invoice.order_no).in_(order_nos))).all()
        payable = next(
            (found for no in order_nos for found in open_invoices(session, no)), None
        )  # the first of the run's invoices still open (a credit order's)
        refunds = session.exec(
            select(Refund).where(col(Refund.order_no).in_(order_nos), Refund.state == RefundState.MADE)
        ).all()
    rows = ["date,amount,payer,reference,bank_ref"]
    today = datetime.now(UTC).date().isoformat()
    if payable is not None:
        rows.append(f"{today},{payable.open},,{payable.invoice_no} transfer,DEMO-{run_tag}-1")
    amount, payer, reference = UNEXPLAINED
    rows.append(f"{today},{amount},{payer},{reference},DEMO-{run_tag}-2")
    statement = state_dir / f"demo-statement-{run_tag}.csv"
    statement.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with unit_of_work(engine) as session:
        imported = import_statement(
            session, statement.read_text(encoding="utf-8"), file=statement.name, by="fiona", now=datetime.now(UTC)
        )
    with read_only(engine) as session:
        report = reconcile(session, started, datetime.now(UTC) + timedelta(seconds=1))
    invoices = [i for i in issued if i.kind == "invoice"]
    return DemoMoney(
        invoices=len(invoices),
        invoiced=str(sum((i.total for i in invoices), Decimal("0.00"))),
        credit_notes=sum(1 for i in issued if i.kind == "credit_note"),
        refunds_made=len(refunds),
        statement=statement,
        imported=imported,
        paid_invoice=payable.invoice_no if payable is not None and imported.matched else None,
        report=report,
    )


async def _refunds_done(engine: Engine, order_nos: list[str], wait: float = 30.0) -> None:
    """The run's refunds are paid out by their own workflows a moment after their orders end: wait for them."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with read_only(engine) as session:
            pending = session.exec(
                select(Refund.order_no).where(col(Refund.order_no).in_(order_nos), Refund.state == RefundState.APPROVED)
            ).all()
        if not pending:
            return
        await asyncio.sleep(0.5)
