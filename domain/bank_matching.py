"""Matching a bank statement line to what it pays, defined once (services/billing/bank.py imports and books).

A line pays an open invoice when, in order:
1. its reference names one of our open invoices (OF-2026-000042) and the amount is what that invoice leaves open;
2. its reference names one of our orders and the amount is what that order's invoices leave open together;
3. no number is named, and exactly one open invoice leaves exactly that amount open for a customer whose name is
   the payer's (after trimming; banks print names as the payer gave them).
Anything else — a named number with another amount, two candidates, none — goes to finance's "to match" queue with
the reason: money is never put against the wrong invoice to save a click.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

# A word of a free-text bank reference that may be one of our numbers (orders: letters, digits, `_ . -`).
_TOKEN = re.compile(r"[A-Z0-9][A-Z0-9_.-]*[A-Z0-9]")
_INVOICE_NO = re.compile(r"^[A-Z0-9]{1,8}-\d{4}-\d{6}$")  # domain/billing.invoice_number's form


def reference_tokens(reference: str) -> list[str]:
    """The words of a reference that could be an invoice or order number, upper-cased, in order, once each."""
    return list(dict.fromkeys(_TOKEN.findall(reference.upper())))


@dataclass(frozen=True)
class OpenItem:
    invoice_no: str
    order_no: str
    customer_name: str
    open: Decimal


@dataclass(frozen=True)
class Match:
    order_no: str | None  # None: to match by hand
    why: str
    invoice_no: str | None = None  # the one invoice it pays; None with an order: all that order leaves open


class OpenBook:
    """The open invoices a statement's lines could pay, indexed for matching: a line costs a few lookups however
    many invoices are open. What a matched line paid is closed (`settle`) before the next line is matched."""

    def __init__(self, items: Iterable[OpenItem], shared_names: Collection[str] = ()) -> None:
        """`shared_names`: payer names more than one customer has (a payment from one is never guessed)."""
        self._shared = {name.strip() for name in shared_names}
        self._by_invoice: dict[str, OpenItem] = {}
        self._by_order: dict[str, list[OpenItem]] = defaultdict(list)
        self._by_payer: dict[tuple[str, Decimal], list[OpenItem]] = defaultdict(list)
        for item in items:
            self._by_invoice[item.invoice_no.upper()] = item
            self._by_order[item.order_no].append(item)
            self._by_payer[(item.customer_name.strip(), item.open)].append(item)

    def settle(self, match: Match) -> list[OpenItem]:
        """What the matched line paid — its invoice, or all its order leaves open — closed, so no later line
        matches it; returned, each with the amount the line pays it (its open amount: a match is exact)."""
        if match.order_no is None:
            return []
        paid = [item for item in self._by_order[match.order_no] if match.invoice_no in (None, item.invoice_no)]
        for item in paid:
            self._by_order[match.order_no].remove(item)
            self._by_invoice.pop(item.invoice_no.upper(), None)
            self._by_payer[(item.customer_name.strip(), item.open)].remove(item)
        return paid

    def match(self, amount: Decimal, payer: str, reference: str, known_orders: Mapping[str, str]) -> Match:
        """`known_orders`: the order numbers we know among the reference's words (upper-cased → as stored)."""
        tokens = reference_tokens(reference)
        named_invoices = [self._by_invoice[token] for token in tokens if token in self._by_invoice]
        if len(named_invoices) > 1:
            return Match(None, f"reference names invoices {', '.join(item.invoice_no for item in named_invoices)}")
        if named_invoices:
            item = named_invoices[0]
            if item.open == amount:
                why = f"reference names invoice {item.invoice_no}, amount is what it leaves open"
                return Match(item.order_no, why, item.invoice_no)
            return Match(None, f"reference names invoice {item.invoice_no}: {amount} is not what it leaves open "
                         f"({item.open})")  # fmt: skip
        named_orders = list(dict.fromkeys(known_orders[token] for token in tokens if token in known_orders))
        if len(named_orders) > 1:
            return Match(None, f"reference names orders {', '.join(named_orders)}")
        if named_orders:
            order_no = named_orders[0]
            owed = sum((item.open for item in self._by_order.get(order_no, [])), Decimal("0.00"))
            if owed == amount:
                return Match(order_no, f"reference names order {order_no}, amount is what its invoices leave open")
            return Match(None, f"reference names order {order_no}: {amount} is not what its invoices leave open "
                         f"({owed})")  # fmt: skip
        closed = [token for token in tokens if _INVOICE_NO.match(token)]
        if closed:  # one of our invoice numbers, but nothing open: a second payment of it is not guessed elsewhere
            return Match(None, f"reference names invoice {closed[0]}, which leaves nothing open")
        name = payer.strip()
        if name in self._shared:
            return Match(None, f"more than one customer is called {name}")
        candidates = self._by_payer.get((name, amount), []) if name else []
        if len(candidates) == 1:
            only = candidates[0]
            return Match(
                only.order_no, f"the payer's only open invoice of {amount} ({only.invoice_no})", only.invoice_no
            )
        if candidates:
            return Match(None, f"{len(candidates)} open invoices of {amount} for {name}")
        return Match(None, "no invoice or order named, and no single open invoice of this amount for this payer")
