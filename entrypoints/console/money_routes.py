"""Finance's books in the console: the invoices list with what each leaves open and its ageing, an invoice as a
printable page and as a PDF, the bank statement import with the "to match" queue, and the reconciliation report
of a period (with its CSV).

An invoice is seen by whoever may see its order (services/queries/order_list.py may_see: a sales rep their own);
the lists, the import and the report are finance's (finance, finance_director); anyone else gets the 404 page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select

from core.db import read_only, unit_of_work
from domain.billing import AGEING_BUCKETS, ZERO
from entrypoints.api.deps import settings_of
from entrypoints.console.finance_routes import FINANCE_ROLES
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.web import (
    ROW_ID_MAX,
    EngineDep,
    FormText,
    Me,
    RowId,
    TemporalDown,
    check_csrf,
    not_found,
    now,
    page,
    workflow_client,
)
from models.tables import BankLine, Invoice, SalesOrder
from services import order_commands
from services.accounts import SignedIn
from services.billing.ageing import ageing
from services.billing.bank import import_statement, match_by_hand, to_match
from services.billing.invoice_document import invoice_pdf, load_document, money, rate
from services.billing.payments import record_payment, settled
from services.billing.reconciliation import Reconciliation, reconcile
from services.errors import CommandError
from services.queries.invoices import InvoiceState, invoice_rows
from services.queries.order_list import may_see

STATEMENT_MAX_BYTES = 5_000_000  # a month of a busy account's lines is far less
UNREADABLE = status.HTTP_422_UNPROCESSABLE_CONTENT


def money_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/invoices/{invoice_no}", response_class=HTMLResponse)
    def invoice_page(
        request: Request,
        invoice_no: str,
        me: Me,
        engine: EngineDep,
        paid: Annotated[Decimal | None, Query(gt=0, lt=10**12, decimal_places=2)] = None,
    ) -> HTMLResponse:
        t = translator(language_of(request))
        flash = t("payment_booked").format(amount=paid) if paid is not None else ""
        return _invoice_page(request, engine, me, invoice_no, flash=flash)

    @router.post("/invoices/{invoice_no}/payment", response_model=None)
    async def invoice_payment(
        request: Request,
        invoice_no: str,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        reference: Annotated[FormText, Form(max_length=200)] = "",
        amount: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        try:
            wanted = Decimal(amount.strip()) if amount.strip() else None
        except InvalidOperation:
            wanted = Decimal("-1")  # refused below as not positive cents, with the other refusals
        try:
            with unit_of_work(engine) as session:
                invoice = session.get(Invoice, invoice_no)
                if invoice is None or invoice.kind != "invoice":
                    return not_found(request, "not_yours")
                booked = record_payment(
                    session, invoice.order_no, reference=reference, amount=wanted, by=me.user.name, at=now(),
                    only=invoice_no,
                )  # fmt: skip
                customer_id = invoice.customer_id
        except CommandError as exc:
            return _invoice_page(request, engine, me, invoice_no, error=str(exc), code=status.HTTP_409_CONFLICT)
        await _tell_holds(request, engine, [customer_id])
        return RedirectResponse(
            f"/console/invoices/{quote(invoice_no)}?paid={booked.amount}", status.HTTP_303_SEE_OTHER
        )

    @router.get("/invoices/{invoice_no}/pdf", response_model=None)
    def invoice_download(request: Request, invoice_no: str, me: Me, engine: EngineDep) -> Response:
        with read_only(engine) as session:
            invoice = session.get(Invoice, invoice_no)
            if invoice is None or not may_see(session, invoice.order_no, me.user.name, me.user.role):
                return not_found(request, "not_yours")
            pdf = invoice_pdf(session, invoice_no, settings_of(request))
        assert pdf is not None  # the invoice exists
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{invoice_no}.pdf"', "Cache-Control": "no-store"},
        )

    @router.get("/finance/invoices", response_class=HTMLResponse)
    def invoices(
        request: Request,
        me: Me,
        engine: EngineDep,
        state: Literal["open", "overdue", "all"] = "open",
        customer: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        chosen: InvoiceState = state
        with read_only(engine) as session:
            rows = invoice_rows(session, as_of=now(), state=chosen, customer_id=customer.strip() or None)
            report = ageing(session, now())
        context = {"me": me, "rows": rows, "state": state, "customer": customer, "ageing": report,
                   "buckets": AGEING_BUCKETS}  # fmt: skip
        return page(request, "finance_invoices.html", context)

    @router.get("/finance/bank", response_class=HTMLResponse)
    def bank(
        request: Request,
        me: Me,
        engine: EngineDep,
        imported: Annotated[list[int] | None, Query(max_length=4)] = None,  # lines, matched, to match, already
        matched: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,  # the line just matched by hand
    ) -> HTMLResponse:
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        t = translator(language_of(request))
        flash = ""
        if imported is not None and len(imported) == 4:
            lines, done, left, already = imported
            flash = t("statement_imported").format(lines=lines, matched=done, to_match=left, already=already)
        elif matched is not None:
            with read_only(engine) as session:
                line = session.get(BankLine, matched)
            if line is not None and line.order_no:
                flash = t("line_matched").format(amount=line.amount, order_no=line.order_no)
        return _bank_page(request, engine, me, flash=flash)

    @router.post("/finance/bank/import", response_model=None)
    async def bank_import(
        request: Request,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        statement: Annotated[UploadFile | None, File()] = None,
    ) -> Response:
        check_csrf(me, csrf)
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        t = translator(language_of(request))
        if statement is None or not statement.filename:
            return _bank_page(
                request, engine, me, error=t("statement_required"), code=status.HTTP_422_UNPROCESSABLE_CONTENT
            )
        raw = await statement.read(STATEMENT_MAX_BYTES + 1)
        if len(raw) > STATEMENT_MAX_BYTES:
            return _bank_page(
                request, engine, me, error=t("statement_too_big"), code=status.HTTP_422_UNPROCESSABLE_CONTENT
            )
        try:
            text = raw.decode("utf-8-sig")
            with unit_of_work(engine) as session:
                done = import_statement(session, text, file=statement.filename[:200], by=me.user.name, now=now())
        except UnicodeDecodeError:
            return _bank_page(
                request, engine, me, error=t("statement_not_utf8"), code=status.HTTP_422_UNPROCESSABLE_CONTENT
            )
        except CommandError as exc:  # a malformed line: the whole file refused, naming the line
            return _bank_page(request, engine, me, error=str(exc), code=UNREADABLE)
        await _tell_holds(request, engine, sorted(done.paid_by))
        counts = [done.lines, done.matched, done.to_match, done.already]
        query = urlencode([("imported", n) for n in counts])
        return RedirectResponse(f"/console/finance/bank?{query}", status.HTTP_303_SEE_OTHER)

    @router.post("/finance/bank/{line_id}/match", response_model=None)
    async def bank_match(
        request: Request,
        line_id: RowId,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        order_no: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        t = translator(language_of(request))
        try:
            if not order_no.strip():
                raise CommandError(t("order_no_required"))
            with unit_of_work(engine) as session:
                line = match_by_hand(session, line_id, order_no.strip(), by=me.user.name, now=now())
                order = session.get(SalesOrder, order_no.strip())
                customer_id = order.customer_id if order is not None else ""
        except CommandError as exc:
            errors = {f"match-{line_id}": str(exc)}
            return _bank_page(request, engine, me, errors=errors, code=status.HTTP_409_CONFLICT)
        await _tell_holds(request, engine, [customer_id])
        return RedirectResponse(f"/console/finance/bank?matched={line.id}", status.HTTP_303_SEE_OTHER)

    @router.get("/finance/reconciliation", response_class=HTMLResponse)
    def reconciliation(
        request: Request,
        me: Me,
        engine: EngineDep,
        start: Annotated[date | None, Query(alias="from")] = None,
        end: Annotated[date | None, Query(alias="to")] = None,
    ) -> HTMLResponse:
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        first, last = _period(start, end)
        try:
            report = _reconcile(engine, first, last)
        except CommandError as exc:
            return page(
                request, "finance_reconciliation.html",
                {"me": me, "report": None, "error": str(exc), "start": first, "end": last, "query": ""},
                status.HTTP_422_UNPROCESSABLE_CONTENT,
            )  # fmt: skip
        query = urlencode({"from": first.isoformat(), "to": last.isoformat()})
        context = {"me": me, "report": report, "error": "", "start": first, "end": last, "query": query}
        return page(request, "finance_reconciliation.html", context)

    @router.get("/finance/reconciliation.csv", response_model=None)
    def reconciliation_csv(
        request: Request,
        me: Me,
        engine: EngineDep,
        start: Annotated[date | None, Query(alias="from")] = None,
        end: Annotated[date | None, Query(alias="to")] = None,
    ) -> Response:
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        first, last = _period(start, end)
        try:
            report = _reconcile(engine, first, last)
        except CommandError as exc:
            return Response(str(exc), status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="text/plain")
        name = quote(f"reconciliation-{first.isoformat()}-{last.isoformat()}.csv")
        return Response(
            report.csv(), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )  # fmt: skip

    return router


def _invoice_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    invoice_no: str,
    *,
    flash: str = "",
    error: str = "",
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    with read_only(engine) as session:
        invoice = session.get(Invoice, invoice_no)
        if invoice is None or not may_see(session, invoice.order_no, me.user.name, me.user.role):
            return not_found(request, "not_yours")
        doc = load_document(session, invoice_no, settings_of(request))
        notes = session.exec(select(Invoice).where(Invoice.corrects == invoice_no).order_by(col(Invoice.seq))).all()
        left = (
            invoice.total + settled(session, [invoice_no]).get(invoice_no, ZERO) if invoice.kind == "invoice" else ZERO
        )
    context = {
        "me": me, "doc": doc, "notes": notes, "money": money, "rate": rate, "open": max(left, ZERO),
        "may_book": me.user.role in FINANCE_ROLES, "flash": flash, "error": error,
    }  # fmt: skip
    return page(request, "invoice.html", context, code)


def _bank_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    *,
    flash: str = "",
    error: str = "",
    errors: dict[str, str] | None = None,
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    with read_only(engine) as session:
        queue = to_match(session)
    context = {"me": me, "queue": queue, "flash": flash, "error": error, "errors": errors or {}}
    return page(request, "finance_bank.html", context, code)


async def _tell_holds(request: Request, engine: EngineDep, customer_ids: list[str]) -> None:
    """Booked money may release the customers' orders on credit hold: tell them (the booking stands either way;
    `orderflow payments recheck` tells them later if Temporal is down now)."""
    held = order_commands.held_orders(engine, [c for c in customer_ids if c])
    if not held:
        return
    try:
        await order_commands.tell_credit_holds(await workflow_client(request), held)
    except TemporalDown:  # the booking stands; `orderflow payments recheck` tells them once Temporal is back
        pass


def _period(start: date | None, end: date | None) -> tuple[date, date]:
    """The period shown: [from, to) in UTC days; by default the month so far (to tomorrow)."""
    last = end or now().date() + timedelta(days=1)
    return start or (last - timedelta(days=1)).replace(day=1), last


def _reconcile(engine: EngineDep, first: date, last: date) -> Reconciliation:
    """The report of [first, last) in UTC days (CommandError when the period ends before it starts)."""
    with read_only(engine) as session:
        return reconcile(session, _midnight(first), _midnight(last))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
