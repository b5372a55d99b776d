"""The reconciliation report for a period [start, end): what the receivables ledger did, and that it adds up.

open at start + invoiced − paid − credited − written off + refunded + opening balances booked = open at end, where
each figure is the sum of the ledger's entries of that kind dated in the period (payments, credit notes and
write-offs are negative entries; the report shows them as positive amounts). Because the ledger is only ever added
to, the same period always gives the same report; the check is computed, not assumed, and the report says whether
it holds. Bank lines imported in the period are counted matched / to match beside it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.billing import ZERO
from models.sqltypes import MoneyCents
from models.tables import BankLine, Invoice, LedgerEntry
from services.errors import CommandError

KINDS = ("opening", "invoice", "payment", "credit_note", "write_off", "refund")


@dataclass(frozen=True)
class Reconciliation:
    start: datetime
    end: datetime
    open_at_start: Decimal
    open_at_end: Decimal
    moved: dict[str, Decimal]  # kind → sum of its entries in the period (signed, as booked)
    invoices_issued: int
    bank_lines: dict[str, int] = field(default_factory=dict)  # matched / to_match, imported in the period
    bank_amounts: dict[str, Decimal] = field(default_factory=dict)

    @property
    def balances(self) -> bool:
        return self.open_at_start + sum(self.moved.values(), ZERO) == self.open_at_end

    def rows(self) -> list[tuple[str, str]]:
        """The report as label, amount rows (payments and credit notes as the positive amounts they are)."""
        out = [("open receivables at start", str(self.open_at_start))]
        out += [
            ("opening balances booked", str(self.moved["opening"])),
            (f"invoiced ({self.invoices_issued} invoices)", str(self.moved["invoice"])),
            ("paid", str(-self.moved["payment"])),
            ("credited", str(-self.moved["credit_note"])),
            ("written off", str(-self.moved["write_off"])),
            ("refunded", str(self.moved["refund"])),
            ("open receivables at end", str(self.open_at_end)),
            ("adds up", "yes" if self.balances else "NO"),
        ]
        for state in ("matched", "to_match"):
            count, amount = self.bank_lines.get(state, 0), self.bank_amounts.get(state, ZERO)
            out.append((f"bank lines {state.replace('_', ' ')} ({count})", str(amount)))
        return out

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["period_start", "period_end", "line", "amount"])
        for label, amount in self.rows():
            writer.writerow([self.start.isoformat(), self.end.isoformat(), label, amount])
        return buffer.getvalue()


def reconcile(session: Session, start: datetime, end: datetime) -> Reconciliation:
    if end <= start:
        raise CommandError(f"the period must end after it starts ({start.isoformat()} → {end.isoformat()})")
    total = func.sum(col(LedgerEntry.amount), type_=MoneyCents())

    def balance_before(at: datetime) -> Decimal:
        return session.exec(select(total).where(col(LedgerEntry.at) < at)).one() or ZERO

    in_period = (col(LedgerEntry.at) >= start, col(LedgerEntry.at) < end)
    moved = dict.fromkeys(KINDS, ZERO)
    for kind, amount in session.exec(
        select(LedgerEntry.kind, total).where(*in_period).group_by(col(LedgerEntry.kind))
    ).all():
        moved[kind] = moved.get(kind, ZERO) + (amount or ZERO)
    issued = session.exec(
        select(func.count()).where(
            Invoice.kind == "invoice", col(Invoice.issued_at) >= start, col(Invoice.issued_at) < end
        )
    ).one()
    lines: dict[str, int] = {}
    amounts: dict[str, Decimal] = {}
    for state, count, amount in session.exec(
        select(BankLine.state, func.count(), func.sum(col(BankLine.amount), type_=MoneyCents()))
        .where(col(BankLine.imported_at) >= start, col(BankLine.imported_at) < end)
        .group_by(col(BankLine.state))
    ).all():
        lines[state], amounts[state] = int(count), amount or ZERO
    return Reconciliation(start, end, balance_before(start), balance_before(end), moved, int(issued), lines, amounts)
