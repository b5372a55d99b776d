"""Property test of the receivables ledger (services/billing, services/refunds): over random sequences of invoices,
partial payments and overpayments, repeated payment references, credit notes (in full, of some units, of too many),
write-offs, and prepaid orders paid, invoiced, cancelled and refunded, the ledger always balances, and what its
readers report (open items, credit exposure, the reconciliation) equals a recomputation in plain Python from the
rows and from a model of what was done — never by calling the functions under test to get the expected figure.

Each hypothesis example makes customers and orders of its own (fresh ids) in the test's one database, so the
per-customer checks are absolute; the whole-ledger checks (the reconciliation) read every row of it. Shrinking is
off: every replay of an example does its work in the database, and shrinking one failure took longer than the
suite's 300 s timeout — a failure is reported as found, with its draws and an assertion that names the rows.
`pytest --hypothesis-show-statistics` shows what the examples did (the `event`s below).

The last two tests pin, as plain examples, the two faults of services/billing/credit_notes.py the property test
found (and that are fixed: a line credited in parts returns exactly what it charged; credited units count against
the line they were credited on, which each credit note line now names — migration 0016).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from core.db import unit_of_work
from domain.billing import BillingError
from models.status import OrderStatus
from models.tables import (
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceSeries,
    LedgerEntry,
    Product,
    Refund,
    SalesOrder,
)
from services.billing.credit_notes import issue_credit_note, write_off
from services.billing.invoices import Billed, InvoicePolicy, issue_invoice
from services.billing.ledger import CreditPosition, balances, book, book_prepayment, credit_positions
from services.billing.payments import open_invoices, record_payment
from services.billing.reconciliation import reconcile
from services.errors import CommandError
from services.refunds import record_refund
from tests.support.orders import make_order

D = Decimal
CENTS = D("0.01")
ZERO = D("0.00")
RATES = {"standard": D("0.13"), "reduced": D("0.09"), "zero": D("0")}
POLICY = InvoicePolicy("OF", RATES)
TERMS_DAYS = 30
# The SKUs orders are made of and their tax classes: three of this test's own, and one of the seed's (standard).
TAX_CLASS = {"PROP-STD": "standard", "PROP-RED": "reduced", "PROP-ZERO": "zero", "SKU-1016": "standard"}
PRICES = [D(p) for p in ("0.01", "0.05", "0.99", "12.34", "33.33", "199.99", "1000.01")]
OPENINGS = [D(p) for p in ("0.00", "0.01", "1234.56")]
SETTLING = ("payment", "credit_note", "write_off")  # the entries that take something off an invoice
KINDS = ("opening", "invoice", "payment", "credit_note", "write_off", "refund")
NOT_BILLED = (OrderStatus.REJECTED.value, OrderStatus.CANCELLED.value, OrderStatus.FAILED.value)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
# The operations an example is a sequence of (the frequent ones listed more than once).
OPERATIONS = ("invoice", "invoice", "invoice", "pay", "pay", "pay", "credit", "credit", "write_off", "prepay",
              "cancel_refund")  # fmt: skip
MIN_STEPS, MAX_STEPS = 4, 20
PROPERTIES = settings(
    deadline=None,
    database=None,  # no example database: a run's examples depend on its seed only
    phases=(Phase.explicit, Phase.generate),  # no shrinking (see the module's docstring)
    report_multiple_bugs=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one database per test, shared by its examples
)

T = TypeVar("T")
_ticks = itertools.count()


def tick() -> datetime:
    """Every operation happens a minute after the one before (across examples too): invoices issued later fall due
    later, and an example's entries fall in a period of their own."""
    return datetime(2027, 3, 1, tzinfo=UTC) + timedelta(minutes=next(_ticks))


def amounts_of(qty: int, price: Decimal, rate: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """net, tax, gross of a line by the documented rule (docs/architecture.md, domain/billing.py's docstring):
    gross = qty × price, tax = gross × rate / (1 + rate) half-up to the cent, net = gross − tax."""
    gross = price * qty
    tax = (gross * rate / (1 + rate)).quantize(CENTS, rounding=ROUND_HALF_UP)
    return gross - tax, tax, gross


def is_cents(value: object) -> bool:
    return isinstance(value, Decimal) and value.as_tuple().exponent == -2


def ensure_products(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        for sku, tax_class in TAX_CLASS.items():
            if session.get(Product, sku) is None:
                session.add(Product(sku=sku, name=f"{tax_class} {sku}", unit_price=D("1.00"), tax_class=tax_class))


def place(
    engine: Engine, customer: str, method: str, status: str, paid: bool, lines: list[tuple[str, int, Decimal]]
) -> str:
    """An order in the read model as the workflow leaves it (the invoices come from this test, not its parcels)."""
    no = f"PROP-{uuid.uuid4().hex[:10].upper()}"
    order = make_order(no, [(sku, qty, str(price)) for sku, qty, price in lines], customer_id=customer,
                       payment={"method": method, "paid": paid})  # fmt: skip
    now = tick()
    with unit_of_work(engine) as session:
        session.add(
            SalesOrder(
                order_no=no, workflow_id=f"order-{no}", customer_id=customer, channel="web", sales_rep="alice",
                order_type="standard", payment_method=method, currency="CNY", total=order.total, status=status,
                paid=paid, payload=order.model_dump(mode="json"), content_hash=order.content_hash(), created_at=now,
                updated_at=now,
            )
        )  # fmt: skip
    return no


# --- the model: what the operations did, by the documented rules ---------------------------------------------------


@dataclass
class OrderModel:
    no: str
    customer: str
    method: str
    lines: list[tuple[str, int, Decimal]]  # sku, qty, unit price (tax included)
    status: str
    paid: bool
    invoiced: list[int] = field(default_factory=list)  # units invoiced, per line
    unapplied: Decimal = ZERO  # the order's money in hand not applied to an invoice (prepayment, overpayment)
    net: Decimal = ZERO  # the sum of the order's ledger entries
    invoices: list[str] = field(default_factory=list)  # in the order they were issued

    def __post_init__(self) -> None:
        self.invoiced = [0] * len(self.lines)

    @property
    def total(self) -> Decimal:
        return sum((price * qty for _, qty, price in self.lines), ZERO)

    @property
    def invoiceable(self) -> bool:
        billable = self.status not in NOT_BILLED and (self.method != "prepaid" or self.paid)
        return billable and any(qty > done for (_, qty, _), done in zip(self.lines, self.invoiced, strict=True))


@dataclass
class InvoiceModel:
    no: str
    key: str
    order: str
    lines: list[tuple[str, int, Decimal, Decimal]]  # position → sku, qty, unit price, tax rate
    total: Decimal
    open: Decimal
    credited: list[int] = field(default_factory=list)  # units credited, per position
    taken: list[tuple[Decimal, Decimal, Decimal]] = field(default_factory=list)  # net, tax, gross credited, per line
    written_off: Decimal = ZERO  # what a write-off took off it, not yet reversed by a credit note

    def __post_init__(self) -> None:
        self.credited = [0] * len(self.lines)
        self.taken = [(ZERO, ZERO, ZERO)] * len(self.lines)

    def credit_amounts(self, position: int, units: int) -> tuple[Decimal, Decimal, Decimal]:
        """What crediting `units` of a line takes back, by the documented rule: each part's own rounding held
        within what the line has left to give back, the part that completes the line exactly the rest."""
        _, qty, price, rate = self.lines[position]
        line_net, line_tax, line_gross = amounts_of(qty, price, rate)
        took_net, took_tax, took_gross = self.taken[position]
        net_left, tax_left = line_net - took_net, line_tax - took_tax
        if units == qty - self.credited[position]:
            return net_left, tax_left, line_gross - took_gross
        _, tax, gross = amounts_of(units, price, rate)
        tax = max(min(tax, tax_left), gross - net_left)
        return gross - tax, tax, gross

    def rest(self) -> dict[int, int]:
        return {p: line[1] - done for p, (line, done) in enumerate(zip(self.lines, self.credited, strict=True))}


@dataclass
class CustomerModel:
    id: str
    opening: Decimal
    paid: Decimal = ZERO  # payments and prepayments
    written_off: Decimal = ZERO
    refunded: Decimal = ZERO
    invoiced: Decimal = ZERO
    credited: Decimal = ZERO


@dataclass
class Model:
    started: datetime
    customers: dict[str, CustomerModel] = field(default_factory=dict)
    orders: dict[str, OrderModel] = field(default_factory=dict)
    invoices: dict[str, InvoiceModel] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # credit note key → its number
    payments: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # reference → order, amount


# --- one example ---------------------------------------------------------------------------------------------------


lines_strategy = st.lists(
    st.tuples(st.sampled_from(list(TAX_CLASS)), st.integers(1, 4), st.sampled_from(PRICES)),
    min_size=1,
    max_size=4,
    unique_by=lambda line: (line[0], line[2]),
)


class LedgerRun:
    """One example: its customers and orders, the operations drawn one by one from what exists, the checks."""

    def __init__(self, engine: Engine, data: st.DataObject) -> None:
        self.engine, self.data = engine, data
        self.model = Model(started=tick())
        tag = uuid.uuid4().hex[:8].upper()
        ids = [f"PROP-{tag}-A", f"PROP-{tag}-B"][: 1 + self.draw(st.integers(0, 1), "customers - 1")]
        with unit_of_work(engine) as session:
            for cid in ids:
                opening = self.draw(st.sampled_from(OPENINGS), f"opening balance of {cid}")
                session.add(
                    Customer(customer_id=cid, name=cid, region="华东", credit_limit=D("100000.00"),
                             payment_terms_days=TERMS_DAYS, first_order=False)
                )  # fmt: skip
                if opening:
                    book(session, key=f"opening:{cid}", customer_id=cid, kind="opening", amount=opening,
                         currency="CNY", at=self.model.started, reference="opening balance")  # fmt: skip
                self.model.customers[cid] = CustomerModel(cid, opening)
        # The fixed orders: two on credit and one cash on delivery (invoiced, paid, credited, written off), a
        # prepaid order not paid and a cancelled credit order (neither counts towards exposure).
        for method, status in (
            ("credit", OrderStatus.PICKING),
            ("cod", OrderStatus.PICKING),
            ("credit", OrderStatus.DISPATCHED),
            ("prepaid", OrderStatus.AWAITING_PAYMENT),
            ("credit", OrderStatus.CANCELLED),
        ):
            self.add_order(method, status.value, paid=False)

    # --- helpers ---

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        return self.data.draw(strategy, label=label)

    def rarely(self, label: str) -> bool:
        """True about one time in five (hypothesis leans to the simplest choice, so that is the common one)."""
        return bool(self.draw(st.integers(0, 4), label) == 4)

    def add_order(self, method: str, status: str, *, paid: bool) -> OrderModel:
        customer = self.draw(st.sampled_from(list(self.model.customers)), "customer")
        lines: list[tuple[str, int, Decimal]] = list(self.draw(lines_strategy, "lines"))
        if self.draw(st.booleans(), "another line of the same SKU and price"):
            lines.append((lines[0][0], self.draw(st.integers(1, 4), "its quantity"), lines[0][2]))
        no = place(self.engine, customer, method, status, paid, lines)
        order = OrderModel(no, customer, method, lines, status, paid)
        self.model.orders[no] = order
        return order

    def snapshot(self) -> dict[str, Any]:
        """Every row of this example's money, the number series, and the sizes of the whole tables."""
        cids, nos = list(self.model.customers), list(self.model.orders)
        with Session(self.engine) as session:
            invoices = session.exec(select(Invoice).where(col(Invoice.customer_id).in_(cids))).all()
            numbers = [i.invoice_no for i in invoices]

            def rows(query: Any) -> list[dict[str, Any]]:
                return sorted((row.model_dump() for row in session.exec(query)), key=repr)

            return {
                "entries": rows(select(LedgerEntry).where(col(LedgerEntry.customer_id).in_(cids))),
                "invoices": sorted((i.model_dump() for i in invoices), key=repr),
                "lines": rows(select(InvoiceLine).where(col(InvoiceLine.invoice_no).in_(numbers))),
                "orders": rows(select(SalesOrder).where(col(SalesOrder.order_no).in_(nos))),
                "refunds": rows(select(Refund).where(col(Refund.order_no).in_(nos))),
                "series": rows(select(InvoiceSeries)),
                "sizes": [
                    session.exec(select(func.count()).select_from(table)).one()
                    for table in (LedgerEntry, Invoice, InvoiceLine, Refund)
                ],
            }

    def refused(self, action: Callable[[Session], object], why: str, error: type[Exception] = CommandError) -> None:
        """`action` is refused, as the model says it must be, and changes nothing."""
        before = self.snapshot()
        with pytest.raises(error), unit_of_work(self.engine) as session:
            action(session)
            pytest.fail(f"not refused: {why}")
        assert self.snapshot() == before, f"a refused command ({why}) changed the ledger"
        event(f"refused: {re.sub(r'[^ ]*[0-9][^ ]*', '#', why)}")

    def unchanged(self, action: Callable[[Session], T], why: str) -> T:
        """`action` succeeds and changes nothing (an idempotent repeat)."""
        before = self.snapshot()
        with unit_of_work(self.engine) as session:
            result = action(session)
        assert self.snapshot() == before, f"a repeat ({why}) changed the ledger"
        event(f"repeated: {re.sub(r'[^ ]*[0-9][^ ]*', '#', why)}")
        return result

    @contextmanager
    def accepted(self, what: str) -> Iterator[Session]:
        """A unit of work the model says must be accepted: a refusal is a failure of the property."""
        try:
            with unit_of_work(self.engine) as session:
                yield session
        except CommandError as exc:
            raise AssertionError(f"refused, though it should be accepted: {what}: {exc}") from exc

    def pick_invoice(self) -> InvoiceModel | None:
        if not self.model.invoices:
            return None
        invoice: InvoiceModel = self.model.invoices[self.draw(st.sampled_from(list(self.model.invoices)), "invoice")]
        return invoice

    def customer_of(self, invoice: InvoiceModel) -> CustomerModel:
        return self.model.customers[self.model.orders[invoice.order].customer]

    # --- operations ---

    def op_invoice(self) -> None:
        """Invoice some units of an order's lines not invoiced yet; or issue an invoice again by its key (nothing
        happens); or bill a line the order does not have (refused)."""
        candidates = [o.no for o in self.model.orders.values() if o.invoiceable]
        if not candidates:
            return
        order = self.model.orders[self.draw(st.sampled_from(candidates), "order")]
        mode = self.draw(st.sampled_from(["new", "new", "new", "again", "no such line"]), "invoice mode")
        with Session(self.engine) as session:
            row = session.get(SalesOrder, order.no)
            assert row is not None
            session.expunge(row)
        now = tick()
        if mode == "again" and order.invoices:
            key = self.model.invoices[order.invoices[-1]].key
            again = self.unchanged(
                lambda s: issue_invoice(s, key=key, order=row, billed=[Billed(1, 1)], policy=POLICY, now=now),
                f"invoice {key} again",
            )
            assert again is None
            return
        if mode == "no such line":
            bad = [Billed(len(order.lines) + 1, 1)]
            self.refused(
                lambda s: issue_invoice(s, key=f"prop:{uuid.uuid4()}", order=row, billed=bad, policy=POLICY, now=now),
                "bill a line the order does not have",
                BillingError,
            )
            return
        left = [qty - done for (_, qty, _), done in zip(order.lines, order.invoiced, strict=True)]
        units = []
        for i, n in enumerate(left):
            how = self.draw(st.sampled_from(["all", "some", "none"]), f"units of line {i + 1}") if n else "none"
            units.append(n if how == "all" else self.draw(st.integers(1, n), "how many") if how == "some" else 0)
        if not any(units):
            first = next(i for i, n in enumerate(left) if n > 0)
            units[first] = left[first]
        billed = [Billed(i + 1, n) for i, n in enumerate(units) if n > 0]
        key = f"prop:{uuid.uuid4()}"
        with self.accepted(f"invoice {billed} of {order.no}") as session:
            issued = issue_invoice(session, key=key, order=row, billed=billed, policy=POLICY, now=now)
            assert issued is not None
            number = issued.invoice_no
        expected = []
        for b in billed:
            sku, _, price = order.lines[b.line_no - 1]
            expected.append((sku, b.qty, price, RATES[TAX_CLASS[sku]]))
        total = sum((price * qty for _, qty, price, _ in expected), ZERO)
        with Session(self.engine) as session:
            invoice = session.get(Invoice, number)
            lines = session.exec(
                select(InvoiceLine).where(InvoiceLine.invoice_no == number).order_by(col(InvoiceLine.position))
            ).all()
        assert invoice is not None
        assert (invoice.kind, invoice.order_no, invoice.customer_id, invoice.key, invoice.total) == (
            "invoice", order.no, order.customer, key, total,
        )  # fmt: skip
        assert invoice.issued_at == now and invoice.due_at == now + timedelta(days=TERMS_DAYS)
        assert [(line.position, line.sku, line.qty, line.unit_price, line.tax_rate_bp, line.net, line.tax,
                 line.gross) for line in lines] == [
            (p, sku, qty, price, int(rate * 10000), *amounts_of(qty, price, rate))
            for p, (sku, qty, price, rate) in enumerate(expected)
        ], f"the lines of {number}"  # fmt: skip
        # Money of the order's in hand settles the new invoice at once.
        applied = min(order.unapplied, total) if order.unapplied > 0 else ZERO
        order.unapplied -= applied
        for i, n in enumerate(units):
            order.invoiced[i] += n
        order.net += total
        order.invoices.append(number)
        self.model.invoices[number] = InvoiceModel(number, key, order.no, expected, total, total - applied)
        self.model.customers[order.customer].invoiced += total
        event("invoice issued, settled by money in hand" if applied else "invoice issued")

    def op_pay(self) -> None:
        """A payment against an order: a new reference (some cents, all that is open, more than is open, or an
        amount that is not positive cents; sometimes naming one invoice); or a reference used before — the same
        payment again (booked once) or another one (refused)."""
        owing = [o.no for o in self.model.orders.values() if any(self.model.invoices[n].open > 0 for n in o.invoices)]
        if not owing or self.rarely("pay an order that owes nothing"):
            owing = list(self.model.orders)
        order = self.model.orders[self.draw(st.sampled_from(owing), "order")]
        mode = self.draw(st.sampled_from(["new", "new", "new", "new", "same", "other"]), "reference")
        now = tick()
        if mode != "new" and self.model.payments:
            reference = self.draw(st.sampled_from(list(self.model.payments)), "earlier reference")
            paid_for, paid = self.model.payments[reference]
            if mode == "same":  # the same payment again, its reference as typed by someone else
                same: Decimal | None = self.draw(st.sampled_from([None, paid]), "amount")
                again = self.unchanged(
                    lambda s: record_payment(s, paid_for, reference=f"  {reference} ", amount=same, by="fiona",
                                             at=now),
                    f"payment {reference} again",
                )  # fmt: skip
                assert again.again and again.amount == paid
                return
            other = [no for no in self.model.orders if no != paid_for]
            target, different = self.draw(
                st.sampled_from([(paid_for, paid + CENTS), (paid_for, paid - CENTS), *((no, paid) for no in other)]),
                "another payment with that reference",
            )
            self.refused(
                lambda s: record_payment(s, target, reference=reference, amount=different, by="fiona", at=now),
                f"reference {reference} used for another payment ({different} for {target})",
            )
            return
        invoices = [self.model.invoices[n] for n in order.invoices]
        only = None
        if invoices and self.rarely("against one invoice"):
            only = self.draw(st.sampled_from([i.no for i in invoices]), "the invoice")
        items = [i for i in invoices if i.open > 0 and only in (None, i.no)]  # issued (so falling due) in order
        owed = sum((i.open for i in items), ZERO)
        kind = self.draw(st.sampled_from(["some", "some", "all", "over", "not cents"]), "amount")
        amount: Decimal | None
        if kind == "all":
            amount = None
        elif kind == "some":
            amount = D(self.draw(st.integers(1, max(int(owed * 100), 1)), "cents")) * CENTS
        elif kind == "over":
            amount = owed + D(self.draw(st.integers(1, 100_000), "cents over")) * CENTS
        else:
            amount = self.draw(st.sampled_from([D("0.00"), D("-5.00"), D("0.005"), D("12.345")]), "bad amount")
        reference = f"BANK-{uuid.uuid4().hex[:12].upper()}"
        if not items or (amount is not None and (amount <= 0 or amount != amount.quantize(CENTS))):
            self.refused(
                lambda s: record_payment(s, order.no, reference=reference, amount=amount, by="fiona", at=now,
                                         only=only),
                f"payment of {amount} against {order.no} ({owed} open)",
            )  # fmt: skip
            return
        with self.accepted(f"payment of {amount} against {order.no} ({owed} open)") as session:
            booked = record_payment(session, order.no, reference=reference, amount=amount, by="fiona", at=now,
                                    only=only)  # fmt: skip
        paid = owed if amount is None else amount
        left, applied = paid, []
        for invoice in items:  # oldest due first
            take = min(invoice.open, left)
            if take <= 0:
                break
            invoice.open -= take
            left -= take
            applied.append((invoice.no, take))
        assert (booked.amount, booked.applied, booked.unapplied, booked.again) == (paid, applied, left, False)
        order.unapplied += left
        order.net -= paid
        self.model.customers[order.customer].paid += paid
        self.model.payments[reference] = (order.no, paid)
        event(f"payment over {len(applied)} invoice(s)" + (", some unapplied" if left else ""))

    def op_credit(self) -> None:
        """Credit an invoice: what it has left, or some units of some of its lines — sometimes more than a line has
        left, or a line it does not have (refused); or a credit note (refused); or a credit note again. Often an
        invoice credited before: what is left to credit depends on what its notes took back."""
        again = [i.no for i in self.model.invoices.values() if any(i.credited) and any(i.rest().values())]
        if again and self.draw(st.booleans(), "credit an invoice credited before"):
            invoice: InvoiceModel | None = self.model.invoices[self.draw(st.sampled_from(again), "invoice")]
        else:
            invoice = self.pick_invoice()
        if invoice is None:
            return
        modes = ["units", "units", "units", "rest", "a credit note", "again", "no reason"]
        mode = self.draw(st.sampled_from(modes), "credit mode")
        now = tick()
        if mode == "a credit note" and self.model.notes:
            note_no = self.draw(st.sampled_from(list(self.model.notes.values())), "credit note")
            self.refused(
                lambda s: issue_credit_note(s, key=f"prop:{uuid.uuid4()}", invoice_no=note_no, reason="x", now=now),
                f"credit the credit note {note_no}",
            )
            return
        if mode == "again" and self.model.notes:
            key = self.draw(st.sampled_from(list(self.model.notes)), "credit note key")
            note = self.unchanged(
                lambda s: issue_credit_note(s, key=key, invoice_no=invoice.no, reason="again", now=now),
                f"credit note {key} again",
            )
            assert note is None
            return
        lines: dict[int, int] | None = None
        if mode != "rest":
            count = len(invoice.lines)
            positions = self.draw(st.lists(st.integers(0, count), min_size=1, max_size=count, unique=True), "positions")
            if self.draw(st.booleans(), "counted from the last line"):  # hypothesis favours the first line
                positions = [count - 1 - p if p < count else p for p in positions]
            lines = {
                p: self.draw(st.integers(1, invoice.lines[p][1] + 1 if p < count else 2), f"units of line {p}")
                for p in positions
            }
        reason = " " if mode == "no reason" else "returned"
        rest = invoice.rest()
        wanted = {p: n for p, n in rest.items() if n} if lines is None else lines
        key = f"prop:{uuid.uuid4()}"
        what = f"credit {lines or 'the rest'} of {invoice.no} (left {rest}, reason {reason!r})"
        if not reason.strip() or not wanted or any(p not in rest or n > rest[p] for p, n in wanted.items()):
            self.refused(
                lambda s: issue_credit_note(s, key=key, invoice_no=invoice.no, reason=reason, now=now, lines=lines),
                what,
            )
            return
        with self.accepted(what) as session:
            note = issue_credit_note(session, key=key, invoice_no=invoice.no, reason=reason, now=now, lines=lines,
                                     by="fiona")  # fmt: skip
            assert note is not None
            number = note.invoice_no
        self.credited(invoice, wanted, number, key)
        event("credit note: the rest" if lines is None else "credit note: some units")
        if len({(sku, price) for sku, _, price, _ in invoice.lines}) < len(invoice.lines):
            event(f"credit note {wanted} of an invoice with two lines of one SKU and price {invoice.lines}")

    def credited(self, invoice: InvoiceModel, wanted: dict[int, int], number: str, key: str) -> None:
        """The model's side of credit note `number` of `wanted` (position → units) of `invoice`, and its rows."""
        expected: list[tuple[str, int, Decimal, int, Decimal, Decimal, Decimal]] = []
        for p, n in sorted(wanted.items()):
            sku, _, price, rate = invoice.lines[p]
            net, tax, gross_of_line = invoice.credit_amounts(p, n)
            expected.append((sku, -n, price, int(rate * 10000), -net, -tax, -gross_of_line))
            took = invoice.taken[p]
            invoice.taken[p] = (took[0] + net, took[1] + tax, took[2] + gross_of_line)
            invoice.credited[p] += n
        gross = -sum((line[-1] for line in expected), ZERO)
        with Session(self.engine) as session:
            note = session.get(Invoice, number)
            lines = session.exec(
                select(InvoiceLine).where(InvoiceLine.invoice_no == number).order_by(col(InvoiceLine.position))
            ).all()
        assert note is not None
        assert (note.kind, note.corrects, note.order_no, note.key, note.total) == (
            "credit_note", invoice.no, invoice.order, key, -gross,
        ), f"credit note {number} of {wanted} of {invoice.no}"  # fmt: skip
        got = [
            (line.sku, line.qty, line.unit_price, line.tax_rate_bp, line.net, line.tax, line.gross) for line in lines
        ]
        assert got == expected, f"the lines of credit note {number} of {wanted} of {invoice.no}"
        invoice.open -= gross
        self.model.orders[invoice.order].net -= gross
        self.customer_of(invoice).credited += gross
        self.model.notes[key] = number
        reversed_ = min(invoice.written_off, gross)  # credited, so no longer written off: that much is reversed
        if reversed_ > 0:
            invoice.written_off -= reversed_
            invoice.open += reversed_
            self.model.orders[invoice.order].net += reversed_
            self.customer_of(invoice).written_off -= reversed_
            event("credit note after a write-off")

    def op_write_off(self) -> None:
        """Write off what an invoice leaves open (refused when nothing is, for a credit note, without a reason)."""
        invoice = self.pick_invoice()
        if invoice is None:
            return
        mode = self.draw(st.sampled_from(["invoice", "invoice", "invoice", "a credit note", "no reason"]), "mode")
        now = tick()
        number = invoice.no
        if mode == "a credit note" and self.model.notes:
            number = self.draw(st.sampled_from(list(self.model.notes.values())), "credit note")
        reason = "" if mode == "no reason" else "customer insolvent"
        what = f"write off {number} ({invoice.open} open, reason {reason!r})"
        if number != invoice.no or not reason or invoice.open <= 0:
            self.refused(lambda s: write_off(s, number, reason=reason, by="fiona", now=now), what)
            return
        with self.accepted(what) as session:
            amount = write_off(session, number, reason=reason, by="fiona", now=now)
        assert amount == invoice.open
        self.customer_of(invoice).written_off += amount
        self.model.orders[invoice.order].net -= amount
        invoice.written_off += amount
        invoice.open = ZERO
        event("written off")

    def op_prepay(self) -> None:
        """A new prepaid order, paid in full before it ships (booked once however often it is recorded); its bank
        reference may be one a payment used before (a prepayment is not that payment)."""
        order = self.add_order("prepaid", OrderStatus.PICKING.value, paid=True)
        earlier = list(self.model.payments)
        reference = f"BANK-{uuid.uuid4().hex[:12].upper()}"
        if earlier and self.draw(st.booleans(), "a payment's reference"):
            reference = self.draw(st.sampled_from(earlier), "reference")
        now = tick()
        with self.accepted(f"prepayment of {order.no}") as session:
            assert book_prepayment(session, order.no, order.customer, order.total, "CNY", at=now, reference=reference,
                                   by="fiona")  # fmt: skip
        again = self.unchanged(
            lambda s: book_prepayment(s, order.no, order.customer, order.total, "CNY", at=now, reference=reference,
                                      by="fiona"),
            f"prepayment of {order.no} again",
        )  # fmt: skip
        assert again is False
        order.unapplied = order.total
        order.net = -order.total
        self.model.customers[order.customer].paid += order.total

    def op_cancel_refund(self) -> None:
        """A paid prepaid order is cancelled and refunded by hand: its invoices credited in full first, what the
        ledger holds of the order paid back, once. Refunding an order that was not stopped (or again) is refused."""
        candidates = [
            o.no for o in self.model.orders.values() if o.method == "prepaid" and o.paid and o.status not in NOT_BILLED
        ]
        now = tick()
        if not candidates or self.rarely("refund an order that has no refund due"):
            others = [no for no in self.model.orders if no not in candidates]  # running, not paid, or refunded
            running = self.draw(st.sampled_from(others), "order")
            self.refused(
                lambda s: record_refund(s, running, reference="REFUND-X", by="fiona", at=now),
                f"refund {running}, which has no refund due",
            )
            return
        order = self.model.orders[self.draw(st.sampled_from(candidates), "prepaid order")]
        with unit_of_work(self.engine) as session:
            row = session.get(SalesOrder, order.no)
            assert row is not None
            row.status = OrderStatus.CANCELLED.value
            session.add(row)
        order.status = OrderStatus.CANCELLED.value
        reference = f"REFUND-{uuid.uuid4().hex[:10].upper()}"
        with self.accepted(f"refund of {order.no}") as session:
            record_refund(session, order.no, reference=reference, by="fiona", at=now)
        # Nothing was delivered: every invoice of the order is credited in full first.
        with Session(self.engine) as session:
            stopped = {
                n.corrects: n.invoice_no
                for n in session.exec(
                    select(Invoice).where(Invoice.order_no == order.no, Invoice.kind == "credit_note")
                )
                if n.key.startswith("credit:stopped:")
            }
        for number in order.invoices:
            invoice = self.model.invoices[number]
            rest = {p: n for p, n in invoice.rest().items() if n}
            assert (number in stopped) == bool(rest), f"{number}: credited at the refund {stopped}, left {rest}"
            if rest:
                self.credited(invoice, rest, stopped[number], f"credit:stopped:{number}")
        held = max(-order.net, ZERO)
        with Session(self.engine) as session:
            refund = session.get(Refund, order.no)
            entries = session.exec(
                select(LedgerEntry).where(LedgerEntry.order_no == order.no, LedgerEntry.kind == "refund")
            ).all()
        assert refund is not None and (refund.state, refund.reference) == ("made", reference)
        assert refund.amount == (held or order.total)
        assert [e.amount for e in entries] == ([held] if held else [])
        order.net += held
        self.model.customers[order.customer].refunded += held
        event(f"refunded, {len(stopped)} invoice(s) credited first")
        self.refused(
            lambda s: record_refund(s, order.no, reference="REFUND-AGAIN", by="fiona", at=now),
            f"refund {order.no} again",
        )

    # --- the invariants ---

    def check(self) -> None:
        cids = list(self.model.customers)
        invoiced_orders = [no for no, o in self.model.orders.items() if o.invoices]
        with Session(self.engine) as session:
            entries = session.exec(select(LedgerEntry).where(col(LedgerEntry.customer_id).in_(cids))).all()
            documents = session.exec(select(Invoice).where(col(Invoice.customer_id).in_(cids))).all()
            lines = session.exec(
                select(InvoiceLine).where(col(InvoiceLine.invoice_no).in_([d.invoice_no for d in documents]))
            ).all()
            orders = session.exec(select(SalesOrder).where(col(SalesOrder.customer_id).in_(cids))).all()
            positions = credit_positions(session, cids)
            reported_balances = balances(session, cids)
            reported_open = {no: open_invoices(session, no) for no in invoiced_orders}

        # Money is Decimal cents everywhere; every entry and document is booked once; nothing else is there.
        for entry in entries:
            assert is_cents(entry.amount), f"ledger entry {entry.key}: {entry.amount!r}"
        for document in documents:
            assert all(is_cents(a) for a in (document.net, document.tax, document.total)), document
        for line in lines:
            assert all(is_cents(a) for a in (line.unit_price, line.net, line.tax, line.gross)), line
        assert len({e.key for e in entries}) == len(entries)
        assert len({d.key for d in documents}) == len(documents)
        assert {d.invoice_no for d in documents if d.kind == "invoice"} == set(self.model.invoices)
        assert {d.invoice_no for d in documents if d.kind == "credit_note"} == set(self.model.notes.values())
        assert {o.order_no for o in orders} == set(self.model.orders)

        # Each document adds up, line by line, and has its one ledger entry.
        by_number = {d.invoice_no: d for d in documents}
        lines_of: dict[str, list[InvoiceLine]] = {}
        for line in lines:
            lines_of.setdefault(line.invoice_no, []).append(line)
        entries_of: dict[str, list[LedgerEntry]] = {}
        for entry in entries:
            if entry.invoice_no is not None:
                entries_of.setdefault(entry.invoice_no, []).append(entry)
        for document in documents:
            own = lines_of.get(document.invoice_no, [])
            assert own, f"{document.invoice_no} has no lines"
            for line in own:
                assert line.net + line.tax == line.gross == line.unit_price * line.qty, line
            assert (document.net, document.tax, document.total) == (
                sum((line.net for line in own), ZERO), sum((line.tax for line in own), ZERO),
                sum((line.gross for line in own), ZERO),
            ), f"{document.invoice_no}: its lines do not add up to it"  # fmt: skip
            assert document.net + document.tax == document.total
            if document.kind == "invoice":
                assert document.total >= 0 and all(line.qty > 0 for line in own)
                booked = [e for e in entries_of.get(document.invoice_no, []) if e.kind == "invoice"]
                assert [(e.key, e.amount) for e in booked] == [(f"invoice:{document.invoice_no}", document.total)]
            else:
                assert document.total < 0 and all(line.qty < 0 for line in own), document
                corrected = by_number[document.corrects or ""]
                assert (corrected.kind, corrected.order_no, corrected.customer_id) == (
                    "invoice", document.order_no, document.customer_id,
                )  # fmt: skip
                booked = [
                    e for e in entries_of.get(corrected.invoice_no, [])
                    if e.kind == "credit_note" and e.reference == document.invoice_no
                ]  # fmt: skip
                assert [(e.key, e.amount) for e in booked] == [(f"credit_note:{document.invoice_no}", document.total)]

        # Credit notes never take back more units than their invoice billed (per SKU and price, as the notes' lines
        # name them), nor more money or tax; an invoice credited in full, in one note or in several, nets to zero.
        for number, model in self.model.invoices.items():
            invoice = by_number[number]
            notes = [d for d in documents if d.corrects == number]
            billed: Counter[tuple[str, Decimal]] = Counter()
            for line in lines_of[number]:
                billed[(line.sku, line.unit_price)] += line.qty
            back: Counter[tuple[str, Decimal]] = Counter()
            for note in notes:
                for line in lines_of[note.invoice_no]:
                    back[(line.sku, line.unit_price)] -= line.qty
            assert set(back) <= set(billed) and all(back[k] <= billed[k] for k in back), (number, billed, back)
            expected_back: Counter[tuple[str, Decimal]] = Counter()
            for (sku, _, price, _), done in zip(model.lines, model.credited, strict=True):
                if done:
                    expected_back[(sku, price)] += done
            assert back == expected_back, (number, back, expected_back)
            taken_back = -sum((note.total for note in notes), ZERO)
            assert taken_back <= invoice.total, f"{number} credited {taken_back} of {invoice.total}"
            assert (taken_back == invoice.total) == (back == billed), f"{number} credited {back} of {billed}"
            self.check_credited_amounts(invoice, notes, lines_of)

        # Each customer's balance: opening + invoices − payments − credit notes − write-offs + refunds.
        for cid, customer in self.model.customers.items():
            balance = sum((e.amount for e in entries if e.customer_id == cid), ZERO)
            invoiced = sum((d.total for d in documents if d.customer_id == cid and d.kind == "invoice"), ZERO)
            credited = -sum((d.total for d in documents if d.customer_id == cid and d.kind == "credit_note"), ZERO)
            assert (invoiced, credited) == (customer.invoiced, customer.credited), cid
            expected = customer.opening + invoiced - customer.paid - credited - customer.written_off + customer.refunded
            assert balance == expected, f"{cid}: the ledger says {balance}, the documents and payments {expected}"
            by_kind = {kind: sum((e.amount for e in entries if e.customer_id == cid and e.kind == kind), ZERO)
                       for kind in KINDS}  # fmt: skip
            assert by_kind == {
                "opening": customer.opening, "invoice": invoiced, "payment": -customer.paid, "credit_note": -credited,
                "write_off": -customer.written_off, "refund": customer.refunded,
            }, cid  # fmt: skip
            assert reported_balances.get(cid, ZERO) == balance, cid

        # Each order's own entries (what a refund reads as the money held for it).
        for no, order_model in self.model.orders.items():
            assert sum((e.amount for e in entries if e.order_no == no), ZERO) == order_model.net, no

        # Open items: total + what settled it, from the ledger rows, as open_invoices reports (and as modelled).
        for no in invoiced_orders:
            issued = sorted(
                (d for d in documents if d.order_no == no and d.kind == "invoice"), key=lambda d: (d.due_at, d.seq)
            )
            recomputed = []
            for invoice in issued:
                settled = sum((e.amount for e in entries_of.get(invoice.invoice_no, []) if e.kind in SETTLING), ZERO)
                assert invoice.total + settled == self.model.invoices[invoice.invoice_no].open, invoice.invoice_no
                if invoice.total + settled > 0:
                    recomputed.append((invoice.invoice_no, invoice.total, invoice.total + settled))
            assert [(i.invoice_no, i.total, i.open) for i in reported_open[no]] == recomputed, no

        # Exposure: the ledger balance + what billable orders will still bill.
        for cid in cids:
            balance = sum((e.amount for e in entries if e.customer_id == cid), ZERO)
            to_bill = ZERO
            for order in orders:
                billable = order.status not in NOT_BILLED and (
                    order.payment_method in ("credit", "cod") or (order.payment_method == "prepaid" and order.paid)
                )
                if order.customer_id == cid and billable:
                    invoiced = sum(
                        (d.total for d in documents if d.order_no == order.order_no and d.kind == "invoice"), ZERO
                    )
                    to_bill += order.total - invoiced
            position = positions.get(cid, CreditPosition())
            assert (position.receivables, position.to_bill) == (balance, to_bill), cid
            assert position.exposure == balance + to_bill, cid

    def check_credited_amounts(
        self, invoice: Invoice, notes: list[Invoice], lines_of: dict[str, list[InvoiceLine]]
    ) -> None:
        """An invoice's credit notes take back no more net or tax than it charged; all of it when they take back
        every unit (as its total does)."""
        number = invoice.invoice_no
        billed = sum((line.qty for line in lines_of[number]), 0)
        back = -sum((line.qty for note in notes for line in lines_of[note.invoice_no]), 0)
        net, tax, total = (-sum((getattr(n, part) for n in notes), ZERO) for part in ("net", "tax", "total"))
        charged = [(li.qty, li.unit_price, li.tax) for li in lines_of[number]]
        taken = [[(li.qty, li.unit_price, li.tax) for li in lines_of[n.invoice_no]] for n in notes]
        assert tax <= invoice.tax and net <= invoice.net, (
            f"{number}: its credit notes take back {tax} of tax and {net} net, it charged {invoice.tax} and "
            f"{invoice.net} (its lines (qty, price, tax) {charged}; its credit notes' {taken})"
        )
        if back == billed:
            assert (net, tax, total) == (invoice.net, invoice.tax, invoice.total), (
                f"{number} credited in full leaves net {invoice.net - net}, tax {invoice.tax - tax} (its lines "
                f"(qty, price, tax) {charged}; its credit notes' {taken})"
            )

    def check_reconciliation(self) -> None:
        """Over all time, and over this example's own period: the report adds up and equals the rows' sums."""
        end = tick()
        with Session(self.engine) as session:
            rows = session.exec(
                select(col(LedgerEntry.key), col(LedgerEntry.kind), col(LedgerEntry.amount), col(LedgerEntry.at))
            ).all()
            issued = session.exec(
                select(func.count()).where(
                    Invoice.kind == "invoice",
                    col(Invoice.issued_at) >= self.model.started,
                    col(Invoice.issued_at) < end,
                )
            ).one()
            reports = [(period, reconcile(session, *period)) for period in (EVER, (self.model.started, end))]
        assert len({key for key, *_ in rows}) == len(rows)
        assert all(is_cents(amount) for _, _, amount, _ in rows)
        for (start, stop), report in reports:
            assert report.balances, report
            assert report.open_at_start == sum((a for _, _, a, at in rows if at < start), ZERO)
            assert report.open_at_end == sum((a for _, _, a, at in rows if at < stop), ZERO)
            moved = dict.fromkeys(report.moved, ZERO)
            for _, kind, amount, at in rows:
                if start <= at < stop:
                    moved[kind] = moved.get(kind, ZERO) + amount
            assert report.moved == moved, (start, stop)
        assert reports[0][1].open_at_end == sum((a for _, _, a, _ in rows), ZERO)
        assert reports[1][1].invoices_issued == issued == len(self.model.invoices)


def run_example(engine: Engine, data: st.DataObject) -> None:
    ensure_products(engine)
    run = LedgerRun(engine, data)
    run.check()
    for step in data.draw(st.lists(st.sampled_from(OPERATIONS), min_size=MIN_STEPS, max_size=MAX_STEPS), label="steps"):
        getattr(run, f"op_{step}")()
        run.check()
    run.check_reconciliation()


@settings(PROPERTIES, max_examples=150)
@given(data=st.data())
def test_the_ledger_balances_over_random_invoices_payments_credit_notes_and_refunds(
    sqlite_engine: Engine, data: st.DataObject
) -> None:
    run_example(sqlite_engine, data)


@settings(PROPERTIES, max_examples=30)
@given(data=st.data())
def test_the_ledger_balances_on_postgres(pg_engine: Engine, data: st.DataObject) -> None:
    run_example(pg_engine, data)


# --- what the property test found, pinned ---------------------------------------------------------------------------


def invoice_of(engine: Engine, lines: list[tuple[str, int, Decimal]]) -> str:
    ensure_products(engine)
    no = place(engine, "C-1003", "credit", OrderStatus.PICKING.value, False, lines)
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None
        billed = [Billed(i + 1, qty) for i, (_, qty, _) in enumerate(lines)]
        invoice = issue_invoice(session, key=f"prop:{no}", order=order, billed=billed, policy=POLICY, now=tick())
        assert invoice is not None
        return invoice.invoice_no


def credit(engine: Engine, invoice_no: str, lines: dict[int, int]) -> Invoice:
    with unit_of_work(engine) as session:
        note = issue_credit_note(session, key=f"prop:{uuid.uuid4()}", invoice_no=invoice_no, reason="returned",
                                 now=tick(), lines=lines)  # fmt: skip
        assert note is not None
        return note


def test_an_invoice_line_credited_in_parts_takes_back_the_tax_it_charged_no_more(engine: Engine) -> None:
    """3 × 199.99 at 13 %: gross 599.97, tax 69.02 (599.97 × 0.13 / 1.13 = 69.023…). Credited one unit (tax 23.01)
    and then the two left: taxed on their own they would take back 46.02 — 69.03 in all, more tax than the invoice
    charged. The part that completes a line takes back exactly the rest (46.01), so the notes net it to zero."""
    number = invoice_of(engine, [("PROP-STD", 3, D("199.99"))])
    notes = [credit(engine, number, {0: 1}), credit(engine, number, {0: 2})]
    with Session(engine) as session:
        invoice = session.get(Invoice, number)
    assert invoice is not None and (invoice.net, invoice.tax, invoice.total) == (D("530.95"), D("69.02"), D("599.97"))
    taken = tuple(-sum((getattr(n, part) for n in notes), ZERO) for part in ("net", "tax", "total"))
    assert taken == (invoice.net, invoice.tax, invoice.total), f"credited in full in two parts: {taken}"


def test_units_credited_count_against_the_line_they_were_credited_on(engine: Engine) -> None:
    """Two lines of one SKU at one price (1 and 3 units). Line 1 credited in full: line 0 still has its unit to
    credit, line 1 has none (matching credited units back by SKU and price, first line first, once counted one of
    line 1's units against line 0 — refusing line 0's unit and letting line 1 be credited a 4th)."""
    number = invoice_of(engine, [("PROP-STD", 1, D("10.00")), ("PROP-STD", 3, D("10.00"))])
    credit(engine, number, {1: 3})
    note = credit(engine, number, {0: 1})
    assert note.total == D("-10.00")
    with pytest.raises(CommandError, match="line 1"), unit_of_work(engine) as session:
        issue_credit_note(session, key=f"prop:{uuid.uuid4()}", invoice_no=number, reason="more", now=tick(),
                          lines={1: 1})  # fmt: skip
