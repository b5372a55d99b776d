"""Which invoice a bank line pays (domain/bank_matching.py): named invoice, named order, the payer's only one."""

from __future__ import annotations

from decimal import Decimal

from domain.bank_matching import OpenBook, OpenItem, reference_tokens

D = Decimal
ITEMS = [
    OpenItem("OF-2026-000001", "SO-1", "上海星辰科技", D("113.00")),
    OpenItem("OF-2026-000002", "SO-1", "上海星辰科技", D("50.00")),
    OpenItem("OF-2026-000003", "SO-2", "北京远航贸易", D("200.00")),
    OpenItem("OF-2026-000004", "SO-3", "北京远航贸易", D("200.00")),
    OpenItem("OF-2026-000005", "SO-4", "广州南方电子", D("75.50")),
]
ORDERS = {"SO-1": "SO-1", "SO-2": "SO-2", "SO-9": "SO-9"}


def test_a_reference_is_read_for_our_numbers_whatever_surrounds_them() -> None:
    assert reference_tokens("payment for so-1, inv OF-2026-000002.") == [
        "PAYMENT",
        "FOR",
        "SO-1",
        "INV",
        "OF-2026-000002",
    ]
    assert reference_tokens("货款 SO-1/SO-2") == ["SO-1", "SO-2"]


def test_a_named_invoice_is_paid_when_the_amount_is_what_it_leaves_open() -> None:
    book = OpenBook(ITEMS)
    found = book.match(D("50.00"), "anyone", "OF-2026-000002", ORDERS)
    assert (found.order_no, found.invoice_no) == ("SO-1", "OF-2026-000002")
    other = book.match(D("49.00"), "anyone", "inv of-2026-000002", ORDERS)
    assert other.order_no is None and "is not what it leaves open (50.00)" in other.why
    two = book.match(D("163.00"), "", "OF-2026-000001 OF-2026-000002", ORDERS)
    assert two.order_no is None and "names invoices" in two.why


def test_a_named_order_is_paid_when_the_amount_is_all_its_invoices_leave_open() -> None:
    book = OpenBook(ITEMS)
    found = book.match(D("163.00"), "", "PO 4711 / SO-1", ORDERS)
    assert (found.order_no, found.invoice_no) == ("SO-1", None)
    partial = book.match(D("100.00"), "", "SO-1", ORDERS)
    assert partial.order_no is None and "(163.00)" in partial.why
    paid_up = book.match(D("10.00"), "", "SO-9", ORDERS)  # known, nothing open
    assert paid_up.order_no is None and "(0.00)" in paid_up.why
    both = book.match(D("200.00"), "", "SO-1 SO-2", ORDERS)
    assert both.order_no is None and "names orders SO-1, SO-2" in both.why


def test_without_a_number_only_the_payers_single_open_invoice_of_that_amount_matches() -> None:
    book = OpenBook(ITEMS)
    found = book.match(D("75.50"), " 广州南方电子 ", "货款", ORDERS)
    assert (found.order_no, found.invoice_no) == ("SO-4", "OF-2026-000005")
    twice = book.match(D("200.00"), "北京远航贸易", "货款", ORDERS)  # two invoices of 200.00: finance chooses
    assert twice.order_no is None and "2 open invoices" in twice.why
    assert book.match(D("75.50"), "", "", ORDERS).order_no is None
    assert book.match(D("75.50"), "Somebody else", "", ORDERS).order_no is None


def test_what_a_line_paid_is_closed_for_the_next_line() -> None:
    book = OpenBook(ITEMS)
    first = book.match(D("75.50"), "广州南方电子", "", ORDERS)
    book.settle(first)
    assert book.match(D("75.50"), "广州南方电子", "", ORDERS).order_no is None  # the same payment twice: queued
    by_invoice = book.match(D("113.00"), "", "OF-2026-000001", ORDERS)
    book.settle(by_invoice)
    rest = book.match(D("50.00"), "", "SO-1", ORDERS)  # the order's other invoice is still open
    assert (rest.order_no, rest.invoice_no) == ("SO-1", None)
    book.settle(rest)
    assert book.match(D("50.00"), "", "OF-2026-000002", ORDERS).order_no is None


def test_a_second_payment_of_a_closed_invoice_or_from_a_shared_name_is_never_guessed() -> None:
    book = OpenBook(ITEMS, shared_names=["北京远航贸易"])
    book.settle(book.match(D("113.00"), "上海星辰科技", "OF-2026-000001", ORDERS))
    again = book.match(D("113.00"), "上海星辰科技", "OF-2026-000001", ORDERS)  # paid twice: not put elsewhere
    assert again.order_no is None and "leaves nothing open" in again.why
    unknown = book.match(D("50.00"), "上海星辰科技", "OF-2025-999999", ORDERS)  # not one of ours any more
    assert unknown.order_no is None
    shared = book.match(D("200.00"), "北京远航贸易", "货款", ORDERS)
    assert shared.order_no is None and "more than one customer" in shared.why
