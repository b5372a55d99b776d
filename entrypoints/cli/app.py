"""The command line (docs/contract.md): `orderflow` (starter.py) — orders, stock, master data, reports, users.

Every command calls the application layer (services/) like the HTTP API does. Reads run in read-only transactions
(on SQLite they never queue behind the worker's write lock). JSON when the output is not a terminal, or with
`--json`, which every command takes (before or after its arguments); errors are one line on stderr, exit code 1.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from core.config import Settings
from core.db import make_engine, read_only, unit_of_work
from core.migrate import ensure_current
from core.secrets import runtime_settings
from core.temporal import connect
from domain.kpis import shown
from entrypoints.cli.output import emit, fail, force_json, wants_json
from models.contracts import OrderState
from models.order import Order
from models.status import Role
from models.tables import Invoice, SalesOrder, User
from rules.automation import AutomationError
from services import order_commands, stock
from services.accounts import hash_password, new_password, set_disabled, set_password
from services.automation import runs as automation_runs
from services.automation import store as automation_store
from services.automation.dry_run import dry_run
from services.automation.facts import SubjectGone
from services.billing.ageing import COLUMNS as AGEING_COLUMNS
from services.billing.ageing import ageing as ageing_report
from services.billing.bank import Imported, import_statement, match_by_hand, to_match
from services.billing.cod import RemittanceImported, import_remittance, parse_remittance
from services.billing.credit_notes import issue_credit_note, write_off
from services.billing.invoices import InvoicePolicy, backfill
from services.billing.reconciliation import reconcile as reconcile_period
from services.errors import CommandError, OrderNotFound
from services.notify.writer import NoticeWriter
from services.queries import kpi_request, kpis
from services.queries.customers import customers_view
from services.queries.inventory import inventory_view
from services.queries.order_view import order_view
from services.queries.products import products_view
from services.queries.requisitions import requisitions_view
from services.stock import Receipt
from services.users import add_user, set_notice_channels, set_warehouses

app = typer.Typer(help="orderflow: durable sales-order fulfillment on Temporal.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users, their API tokens and console passwords.", no_args_is_help=True)
app.add_typer(users_app, name="users")
automations_app = typer.Typer(
    help="IF-THEN automations: the rules in force, checks, dry runs, the run log.", no_args_is_help=True
)
app.add_typer(automations_app, name="automations")
payments_app = typer.Typer(
    help="Bank statements (import, match, the lines left to match) and carriers' COD remittances.", no_args_is_help=True
)
app.add_typer(payments_app, name="payments")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON even on a terminal.")]


class CliError(Exception):
    pass


@app.callback()
def _options(json_output: JsonOption = False) -> None:
    force_json(json_output)


def settings() -> Settings:
    """The environment's settings with the embedded stack's secrets (the CLI signs decisions like the API)."""
    return runtime_settings()


def engine() -> Engine:
    found = make_engine(settings().effective_database_url)
    ensure_current(found)
    return found


async def client() -> Client:
    current = settings()
    try:
        return await connect(current)
    except RuntimeError as exc:
        why = "connection refused" if "Connection refused" in str(exc) else str(exc)
        raise CliError(
            f"cannot reach Temporal at {current.temporal_address}: {why}; is the stack up? (make up)"
        ) from None


def command(func: Callable[..., Coroutine[Any, Any, None] | None]) -> Callable[..., None]:
    """Run a sync or async command body: `--json` is taken wherever it stands, and every refusal becomes one
    line on stderr and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, json_output: bool = False, **kwargs: Any) -> None:
        if json_output:
            force_json(True)
        try:
            result = func(*args, **kwargs)
            if isinstance(result, Awaitable):
                asyncio.run(result)
        except (CommandError, CliError) as exc:
            fail(str(exc))
            raise typer.Exit(1) from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'order'}: {err['msg']}" for err in exc.errors()
            )
            fail(f"invalid input: {problems}")
            raise typer.Exit(1) from None
        except RPCError as exc:
            fail(f"Temporal refused the request: {exc.message}")
            raise typer.Exit(1) from None

    # Typer reads the command's options off its signature: the command's own, plus --json.
    signature = inspect.signature(func, eval_str=True)
    json_parameter = inspect.Parameter(
        "json_output", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption
    )
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), json_parameter]
    )
    wrapper.__annotations__ = {**func.__annotations__, "json_output": JsonOption}
    return wrapper


def _state_json(state: OrderState) -> dict[str, Any]:
    return state.model_dump(mode="json")


# --- orders ------------------------------------------------------------------------------------


@app.command()
@command
async def submit(file: Annotated[str, typer.Argument(help="Order JSON file, or - for stdin.")]) -> None:
    """Submit a canonical order; prints {order_no, workflow_id, status}."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")  # noqa: ASYNC240 (CLI, one small file)
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{file} is not valid JSON: {exc}") from None
    order = Order.model_validate(raw)
    answer = await order_commands.submit(await client(), order, settings().task_queue)
    emit(answer.model_dump(exclude={"created"}))


@app.command()
@command
async def status(order_no: str) -> None:
    """The order view: status, lines, approvals, allocations, shipments with tracking, timeline."""
    try:
        with read_only(engine()) as session:
            emit(order_view(session, order_no))
    except OrderNotFound:
        # Submitted a moment ago: the workflow knows it before the read model does.
        emit(_state_json(await order_commands.live_state(await client(), order_no)))


async def _decide(order_no: str, user: str, decision: str, comment: str, on_behalf_of: str) -> None:
    state = await order_commands.decide(
        await client(),
        engine(),
        order_no,
        user=user,
        decision=decision,
        comment=comment,
        secret=settings().decision_secret,
        on_behalf_of=on_behalf_of,
    )
    emit(_state_json(state))


OnBehalfOf = Annotated[
    str, typer.Option("--on-behalf-of", help="The absent approver USER stands in for (a substitution in force).")
]


@app.command()
@command
async def approve(
    order_no: str,
    user: Annotated[str, typer.Option("--as", help="Approver's user name.")],
    comment: Annotated[str, typer.Option(help="Optional comment for the audit trail.")] = "",
    on_behalf_of: OnBehalfOf = "",
) -> None:
    """Approve the order's pending level as USER (role and sales-rep rules are checked by the workflow)."""
    await _decide(order_no, user, "approve", comment, on_behalf_of)


@app.command()
@command
async def reject(
    order_no: str,
    user: Annotated[str, typer.Option("--as", help="Approver's user name.")],
    comment: Annotated[str, typer.Option(help="Why the order is rejected (required).")],
    on_behalf_of: OnBehalfOf = "",
) -> None:
    """Reject the order at its pending level."""
    await _decide(order_no, user, "reject", comment, on_behalf_of)


@app.command()
@command
async def pay(
    order_no: str,
    reference: Annotated[str, typer.Option(help="Payment reference (the bank's or the provider's).")] = "",
    amount: Annotated[
        str, typer.Option(help="Amount paid (default: the prepayment, or all the invoices leave open).")
    ] = "",
) -> None:
    """Record a payment: the prepayment the order waits for, or money against its open invoices."""
    paid = _amount(amount) if amount else None
    answer = await order_commands.receive_payment(
        await client(), engine(), order_no, reference=reference, amount=paid, by="cli"
    )
    if answer.state is not None:
        emit(_state_json(answer.state))
        return
    assert answer.booked is not None
    booked = answer.booked
    emit({
        "order_no": order_no,
        "reference": booked.reference,
        "amount": str(booked.amount),
        "applied": [{"invoice_no": number, "amount": str(part)} for number, part in booked.applied],
        "unapplied": str(booked.unapplied),
        "recorded_before": booked.again,
    })  # fmt: skip


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise typer.BadParameter(f"{text!r} is not an amount (e.g. 1200.00)") from None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise typer.BadParameter(f"{text!r} is not a positive amount in cents (e.g. 1200.00)")
    return value


@app.command()
@command
async def dispatch(
    order_no: str,
    warehouse: Annotated[str, typer.Option(help="Warehouse code the parcel leaves from.")],
    carrier: Annotated[str, typer.Option(help="Carrier code, e.g. sim.")],
    tracking_no: Annotated[str, typer.Option("--tracking-no", help="The carrier's tracking number.")],
) -> None:
    """Report that a warehouse handed the order's parcel to a carrier."""
    state = await order_commands.dispatch(
        await client(), order_no, warehouse=warehouse, carrier=carrier, tracking_no=tracking_no
    )
    emit(_state_json(state))


@app.command()
@command
async def cancel(order_no: str, reason: Annotated[str, typer.Option(help="Why the order is cancelled.")]) -> None:
    """Cancel before dispatch: stock is released and pick lists voided."""
    emit(_state_json(await order_commands.cancel(await client(), order_no, reason=reason)))


# --- stock, master data and reports ------------------------------------------------------------


@app.command()
@command
def inventory(sku: str) -> None:
    """Per-warehouse on hand / reserved / available for a SKU."""
    with read_only(engine()) as session:
        view = inventory_view(session, sku)
    if wants_json():
        emit(view)
        return
    emit(
        view["warehouses"],
        ["warehouse", "region", "on_hand", "reserved", "available", "incoming"],
        f"{sku} {view['name']}",
    )


@app.command()
@command
async def receive(
    sku: str,
    warehouse: Annotated[str, typer.Option(help="Receiving warehouse code.")],
    qty: Annotated[int, typer.Option(help="Units received.")],
    lot: Annotated[str, typer.Option(help="Lot number (more of an existing lot adds to it).")],
    bin_code: Annotated[str, typer.Option("--bin", help="Bin the lot is put away in.")] = "RECV-01",
    expires: Annotated[str | None, typer.Option(help="Lot expiry, ISO 8601 with zone (FEFO).")] = None,
    receipt_no: Annotated[
        str | None, typer.Option("--receipt-no", help="Delivery note number: the same one again books nothing.")
    ] = None,
) -> None:
    """Book a goods receipt, close the requisitions it answers, and wake backordered orders oldest first (in the
    background: `woken_by` names the workflow doing it)."""
    receipt = Receipt.model_validate(
        {
            "sku": sku,
            "warehouse": warehouse,
            "qty": qty,
            "lot": lot,
            "bin": bin_code,
            "expires_at": expires,
            "receipt_no": receipt_no,
        }
    )
    db = engine()
    booked = stock.receive(db, receipt)
    waiting = stock.backordered_orders(db, sku)
    booked["backordered_orders"] = waiting
    if waiting:
        try:
            temporal = await client()
        except CliError as exc:
            booked["note"] = f"{exc}; waiting orders re-check stock by themselves"
        else:
            try:
                booked["woken_by"] = await order_commands.wake_backordered(
                    temporal, booked, waiting, [sku], settings().task_queue
                )
            except RPCError as exc:  # booked already: never make the user book it twice
                booked["note"] = f"waiting orders not woken now ({exc.message}); they re-check later"
    emit(booked)


@app.command()
@command
def requisitions(include_closed: Annotated[bool, typer.Option("--all", help="Include closed ones.")] = False) -> None:
    """Purchase requisitions (open ones unless --all)."""
    with read_only(engine()) as session:
        rows = requisitions_view(session, include_closed=include_closed)
    emit(rows, ["id", "sku", "warehouse", "qty", "reason", "order_no", "state"], "Purchase requisitions")


@app.command()
@command
def products() -> None:
    """Products with list price and available quantity."""
    with read_only(engine()) as session:
        emit(products_view(session), ["sku", "name", "unit_price", "available"], "Products")


def _read_text(file: str) -> tuple[Path, str]:
    """A file finance hands the CLI (a statement, a remittance), as UTF-8 text; a clear error when it cannot be."""
    path = Path(file)
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {file}: {exc}") from None


@payments_app.command("import")
@command
async def payments_import(
    file: Annotated[str, typer.Argument(help="The statement: CSV with date,amount,payer,reference[,bank_ref].")],
    by: Annotated[str, typer.Option("--as", help="Who imports it (finance).")] = "cli",
) -> None:
    """Import a bank statement: each new line matched to the invoices it pays and booked, the rest queued."""
    path, text = _read_text(file)
    db = engine()

    def book() -> Imported:
        with unit_of_work(db) as session:
            return import_statement(session, text, file=path.name, by=by, now=datetime.now(UTC))

    done = await asyncio.to_thread(book)
    emit({
        "file": path.name, "lines": done.lines, "already_imported": done.already, "matched": done.matched,
        "matched_amount": str(done.matched_amount), "to_match": done.to_match,
        "credit_holds_told": await _tell_credit_holds(db, sorted(done.paid_by)),
    })  # fmt: skip


@payments_app.command("cod-remittance")
@command
async def payments_cod_remittance(
    file: Annotated[str, typer.Argument(help="The carrier's remittance: CSV with carrier,tracking_no,amount.")],
    by: Annotated[str, typer.Option("--as", help="Who imports it (finance).")] = "cli",
) -> None:
    """Import a carrier's cash-on-delivery remittance: each parcel's collection booked once, the rest listed."""
    path, text = _read_text(file)
    lines = parse_remittance(text)
    db = engine()

    def book() -> RemittanceImported:
        with unit_of_work(db) as session:
            return import_remittance(session, lines, by=by, now=datetime.now(UTC))

    done = await asyncio.to_thread(book)
    emit({
        "file": path.name, "lines": done.lines, "booked": done.booked, "booked_amount": str(done.booked_amount),
        "already_booked": done.already_booked,
        "problems": [{"line": p.line, "tracking_no": p.tracking_no, "why": p.why} for p in done.problems],
        "credit_holds_told": await _tell_credit_holds(db, sorted(done.paid_by)),
    })  # fmt: skip


@payments_app.command("to-match")
@command
def payments_to_match() -> None:
    """The bank lines no invoice was found for, with why."""
    with read_only(engine()) as session:
        rows = [
            {"id": line.id, "date": line.booked_on.isoformat(), "amount": str(line.amount), "payer": line.payer,
             "reference": line.reference, "why": line.why}
            for line in to_match(session)
        ]  # fmt: skip
    emit(rows, ["id", "date", "amount", "payer", "reference", "why"], "Bank lines to match")


@payments_app.command("match")
@command
async def payments_match(
    line_id: Annotated[int, typer.Argument(help="The bank line's id (payments to-match).")],
    order_no: Annotated[str, typer.Option("--order", help="The order it pays.")],
    by: Annotated[str, typer.Option("--as", help="Who matches it (finance).")] = "cli",
) -> None:
    """Put a queued bank line against an order's open invoices (any excess is kept as unapplied cash)."""
    db = engine()

    def book() -> tuple[dict[str, Any], str]:
        with unit_of_work(db) as session:
            line = match_by_hand(session, line_id, order_no, by=by, now=datetime.now(UTC))
            order = session.get(SalesOrder, order_no)
            answer = {"id": line.id, "order_no": line.order_no, "amount": str(line.amount), "state": line.state}
            return answer, order.customer_id if order else ""

    answer, customer_id = await asyncio.to_thread(book)
    emit({**answer, "credit_holds_told": await _tell_credit_holds(db, [customer_id])})


async def _tell_credit_holds(db: Engine, customer_ids: list[str]) -> list[str] | str:
    """The held orders of these customers told to look at their exposure again (the booking stands either way)."""
    held = await asyncio.to_thread(order_commands.held_orders, db, customer_ids)
    if not held:
        return []
    try:
        return await order_commands.tell_credit_holds(await client(), held)
    except (CliError, RuntimeError, OSError, RPCError) as exc:
        return f"not told, Temporal unreachable ({exc}): tell them with `orderflow payments recheck`"


@payments_app.command("recheck")
@command
async def payments_recheck(
    customer_id: Annotated[str, typer.Argument(help="The customer whose payments came in.")],
) -> None:
    """Tell a customer's orders on credit hold to look at their exposure again."""
    db = engine()
    emit(
        {
            "customer_id": customer_id,
            "credit_holds_told": await order_commands.recheck_credit_holds(await client(), db, [customer_id]),
        }
    )


invoices_app = typer.Typer(help="Invoices.", no_args_is_help=True)
app.add_typer(invoices_app, name="invoices")


@invoices_app.command("backfill")
@command
def invoices_backfill() -> None:
    """Invoice the parcels that left before invoicing existed (once each; today's numbers and date)."""
    db = engine()
    with unit_of_work(db) as session:
        issued = backfill(session, InvoicePolicy.of(settings()), datetime.now(UTC))
        rows = [
            {"invoice_no": i.invoice_no, "order_no": i.order_no, "tracking_no": i.tracking_no, "total": str(i.total)}
            for i in issued
        ]
    emit(rows, ["invoice_no", "order_no", "tracking_no", "total"], "Invoices issued")


@invoices_app.command("credit")
@command
async def invoices_credit(
    invoice_no: Annotated[str, typer.Argument(help="The invoice to correct.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (printed on the credit note).")],
    lines: Annotated[
        list[str] | None, typer.Option("--line", help="POSITION=UNITS of the invoice's lines (from 0); none: all.")
    ] = None,
    by: Annotated[str, typer.Option("--as", help="Who issues it (finance).")] = "cli",
) -> None:
    """Issue a credit note for an invoice, in full or some units of some lines (the same one asked twice: once)."""
    try:
        wanted = {int(p): int(q) for p, _, q in (item.partition("=") for item in lines)} if lines else None
    except ValueError:
        raise CliError("--line is POSITION=UNITS, e.g. --line 0=2") from None
    db = engine()
    policy = InvoicePolicy.of(settings())

    def issue() -> tuple[dict[str, Any], str]:
        with unit_of_work(db) as session:
            digest = hashlib.sha256(f"{sorted((wanted or {}).items())}:{reason.strip()}".encode()).hexdigest()[:16]
            note = issue_credit_note(
                session, key=f"manual:{invoice_no}:{digest}", invoice_no=invoice_no, reason=reason, by=by,
                now=datetime.now(UTC), lines=wanted, zone=policy.zone,
            )  # fmt: skip
            if note is None:
                raise CliError(f"this credit note of {invoice_no} was issued before")
            return (
                {"invoice_no": note.invoice_no, "corrects": note.corrects, "total": str(note.total),
                 "order_no": note.order_no},
                note.customer_id,
            )  # fmt: skip

    answer, customer_id = await asyncio.to_thread(issue)
    emit({**answer, "credit_holds_told": await _tell_credit_holds(db, [customer_id])})


@invoices_app.command("write-off")
@command
async def invoices_write_off(
    invoice_no: Annotated[str, typer.Argument(help="The invoice whose open amount will not be paid.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the ledger entry).")],
    by: Annotated[str, typer.Option("--as", help="Who writes it off (finance).")] = "cli",
) -> None:
    """Write off what an invoice leaves open (once per invoice)."""
    db = engine()

    def book() -> tuple[dict[str, Any], str]:
        with unit_of_work(db) as session:
            amount = write_off(session, invoice_no, reason=reason, by=by, now=datetime.now(UTC))
            invoice = session.get(Invoice, invoice_no)
            assert invoice is not None  # write_off found it
            return {"invoice_no": invoice_no, "written_off": str(amount)}, invoice.customer_id

    answer, customer_id = await asyncio.to_thread(book)
    emit({**answer, "credit_holds_told": await _tell_credit_holds(db, [customer_id])})


@app.command()
@command
def reconcile(
    start: Annotated[str, typer.Option("--from", help="First day of the period (YYYY-MM-DD, UTC).")],
    end: Annotated[str, typer.Option("--to", help="The day after the period (YYYY-MM-DD, UTC).")],
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (for a spreadsheet).")] = False,
) -> None:
    """The receivables ledger over a period: open at start + invoiced − paid − credited + refunded = open at end."""
    period = [_day(start, "--from"), _day(end, "--to")]
    with read_only(engine()) as session:
        report = reconcile_period(session, period[0], period[1])
    if as_csv:
        sys.stdout.write(report.csv())
        return
    emit({"from": start, "to": end, "balances": report.balances, **dict(report.rows())})


@app.command()
@command
def ageing(
    as_of: Annotated[str | None, typer.Option("--as-of", help="The day to age at (YYYY-MM-DD, UTC; today).")] = None,
    customer: Annotated[list[str] | None, typer.Option("--customer", help="Only this customer (repeatable).")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (for a spreadsheet).")] = False,
) -> None:
    """Open receivables by customer and days overdue, the unallocated rest, and the balance they add up to."""
    day = _day(as_of, "--as-of") if as_of is not None else datetime.now(UTC)
    with read_only(engine()) as session:
        report = ageing_report(session, day, customer or None)
    if as_csv:
        sys.stdout.write(report.csv())
        return
    emit(report.rows(), list(AGEING_COLUMNS), f"Receivables ageing at {day.date().isoformat()}")


def _day(text: str, option: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r} is not YYYY-MM-DD") from None


@app.command()
@command
def customers() -> None:
    """Customers with credit limit and current exposure."""
    with read_only(engine()) as session:
        emit(customers_view(session), ["customer_id", "name", "credit_limit", "exposure", "new"], "Customers")


@app.command()
@command
def report(
    period: Annotated[str, typer.Option(help="today, 7d, 30d, 90d, 365d or mtd (or --from/--to).")] = "30d",
    first: Annotated[str, typer.Option("--from", help="First business day, YYYY-MM-DD.")] = "",
    last: Annotated[str, typer.Option("--to", help="Last business day, YYYY-MM-DD (inclusive).")] = "",
    channel: Annotated[str, typer.Option(help="Only this channel.")] = "",
    region: Annotated[str, typer.Option(help="Only this ship-to region.")] = "",
    warehouse: Annotated[str, typer.Option(help="Only this warehouse.")] = "",
    carrier: Annotated[str, typer.Option(help="Only this carrier.")] = "",
    product_line: Annotated[str, typer.Option(help="Only this product line.")] = "",
    sales_rep: Annotated[str, typer.Option(help="Only this sales rep's orders.")] = "",
    currency: Annotated[str, typer.Option(help="Money KPIs count orders in this currency.")] = "CNY",
    kpi: Annotated[str, typer.Option(help="Comma-separated KPI ids (default: all; docs/kpis.md).")] = "",
    by: Annotated[str, typer.Option(help="Break --kpi (one) down by a dimension: day, week, channel, stage …")] = "",
    as_user: Annotated[str, typer.Option("--as", help="Count only what this user may see (their scope).")] = "",
) -> None:
    """The KPIs of the cockpit (docs/kpis.md) for a period and filters, with the previous period's and the trend;
    `--kpi K --by D` breaks one down. Rich tables in a terminal, JSON otherwise."""
    zone = settings().business_zone
    params = {"period": period, "from": first, "to": last, "channel": channel, "region": region,
              "warehouse": warehouse, "carrier": carrier, "product_line": product_line, "sales_rep": sales_rep,
              "currency": currency}  # fmt: skip
    now = datetime.now(UTC)
    with read_only(engine()) as session:
        scope = kpis.EVERYTHING
        if as_user:
            user = session.get(User, as_user)
            if user is None:
                raise CommandError(f"no user {as_user!r}")
            scope = kpis.scope_of(session, user)
        ask = kpis.Ask(kpi_request.filters_of(params, zone, now), scope, zone, now)
        if by:
            wanted = kpi_request.kpis_of(kpi) or []
            if len(wanted) != 1:
                raise CommandError("--by breaks down one KPI: name it with --kpi")
            chart = kpis.breakdown(session, ask, wanted[0], kpi_request.breakdown_of(wanted[0], by))
            if wants_json():
                emit(chart)
                return
            rows = [{chart["by"]: r["key"], chart["title"]: shown(chart["unit"], r["value"])} for r in chart["rows"]]
            emit(rows, [chart["by"], chart["title"]], f"{chart['title']} by {chart['by']} · {_span(chart['period'])}")
            return
        figures = kpis.report(session, ask, kpi_request.kpis_of(kpi))
    if wants_json():
        emit(figures)
        return
    arrows = {"up": "↑", "down": "↓", "flat": "→", "none": ""}
    rows = [
        {"group": card["group"], "KPI": card["title"], "value": shown(card["unit"], card["value"]),
         "previous": shown(card["unit"], card["previous"]) if card["trend"] != "none" else "",
         "trend": arrows[card["trend"]], "id": kpi_id}
        for kpi_id, card in figures["kpis"].items()
    ]  # fmt: skip
    title = f"orderflow KPIs · {_span(figures['period'])} vs {_span(figures['previous_period'])} · {figures['scope']}"
    emit(rows, ["group", "KPI", "value", "previous", "trend", "id"], title)


def _span(period: dict[str, str]) -> str:
    return f"{period['first']} – {period['last']}"


# --- users ---------------------------------------------------------------------------------------


@users_app.command("add")
@command
def users_add(
    name: str,
    role: Annotated[Role, typer.Option(help="The user's role.")],
    email: Annotated[str | None, typer.Option(help="Where staff notices are e-mailed.")] = None,
    phone: Annotated[str | None, typer.Option(help="Where staff notices are texted.")] = None,
    warehouse: Annotated[
        list[str] | None, typer.Option(help="A warehouse the user works in (repeat for several).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the console password from stdin instead of making one.")
    ] = False,
) -> None:
    """Add a user; prints their API token and console password once (only hashes are stored)."""
    password = _password_from(password_stdin)
    with unit_of_work(engine()) as session:
        if session.get(User, name) is not None:
            raise CliError(f"user {name} already exists")
        token = add_user(session, name, role, email=email, phone=phone)
        session.flush()
        set_password(session, name, password)
        set_warehouses(session, name, warehouse or [])
    emit(
        {
            "name": name,
            "role": role.value,
            "token": token,
            "password": None if password_stdin else password,  # only one we made up is shown
            "email": email,
            "phone": phone,
            "warehouses": sorted(set(warehouse or [])),
        }
    )


@users_app.command("password")
@command
def users_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from stdin instead of making one.")
    ] = False,
) -> None:
    """Give a user a new console password (printed once); their open console sessions end."""
    password = _password_from(password_stdin)
    with unit_of_work(engine()) as session:
        set_password(session, name, password)
    emit({"name": name, "password": None if password_stdin else password})


@users_app.command("disable")
@command
def users_disable(name: str) -> None:
    """Disable a user: no console sign-in, their sessions end, their API token is refused."""
    with unit_of_work(engine()) as session:
        set_disabled(session, name, True)
    emit({"name": name, "disabled": True})


@users_app.command("notices")
@command
def users_notices(
    name: str,
    email: Annotated[bool | None, typer.Option("--email/--no-email", help="Also e-mail them staff notices.")] = None,
    sms: Annotated[bool | None, typer.Option("--sms/--no-sms", help="Also text them staff notices.")] = None,
) -> None:
    """How a user gets staff notices besides the console's inbox (a channel left out stays as it is)."""
    with unit_of_work(engine()) as session:
        user = session.get(User, name)
        if user is None:
            raise CliError(f"unknown user {name}")
        wanted_email = user.notify_email if email is None else email
        wanted_sms = user.notify_sms if sms is None else sms
        set_notice_channels(session, name, email=wanted_email, sms=wanted_sms)
    emit({"name": name, "email": wanted_email, "sms": wanted_sms})


@users_app.command("enable")
@command
def users_enable(name: str) -> None:
    """Enable a disabled user again (a new password may be wanted: `orderflow users password NAME`)."""
    with unit_of_work(engine()) as session:
        set_disabled(session, name, False)
    emit({"name": name, "disabled": False})


def _password_from(stdin: bool) -> str:
    if not stdin:
        return new_password()
    password = sys.stdin.readline().rstrip("\n")
    hash_password(password)  # refuses a short one before anything is written
    return password


# --- automations --------------------------------------------------------------------------------


def _rule_row(stored: automation_store.StoredRule) -> dict[str, Any]:
    rule = stored.rule
    return {
        "name": rule.name,
        "version": stored.version,
        "enabled": rule.enabled,
        "trigger": rule.trigger.type,
        "owner": rule.owner,
        "saved_by": stored.saved_by,
        "saved_at": stored.saved_at.isoformat(),
        "description": rule.description,
    }


@automations_app.command("list")
@command
def automations_list() -> None:
    """The rules in force: name, version, enabled, trigger, owner."""
    with read_only(engine()) as session:
        rows = [_rule_row(stored) for stored in automation_store.current(session)]
    emit(rows, ["name", "version", "enabled", "trigger", "owner", "saved_by"], "Automations")


@automations_app.command("check")
@command
def automations_check(file: Annotated[Path, typer.Argument(help="A YAML automations file.")]) -> None:
    """Validate a file without storing anything; an error names the rule and the field."""
    try:
        rules = automation_store.read_file(file)
    except AutomationError as exc:
        raise CliError(str(exc)) from None
    emit({"file": str(file), "valid": True, "rules": [rule.name for rule in rules]})


@automations_app.command("load")
@command
def automations_load(
    file: Annotated[Path, typer.Argument(help="A YAML automations file.")],
    by: Annotated[str, typer.Option(help="Who saves them (the run log says).")] = "cli",
) -> None:
    """Store every rule of the file as its next version (all or nothing; unchanged rules keep theirs)."""
    try:
        saved = automation_store.load_file(engine(), file, by=by, now=datetime.now(UTC))
    except AutomationError as exc:
        raise CliError(str(exc)) from None
    emit([_rule_row(stored) for stored in saved], ["name", "version", "enabled", "trigger"], "Saved")


def _set_enabled(name: str, enabled: bool, by: str) -> None:
    try:
        with unit_of_work(engine()) as session:
            stored = automation_store.set_enabled(session, name, enabled, by=by, now=datetime.now(UTC))
    except AutomationError as exc:
        raise CliError(str(exc)) from None
    emit(_rule_row(stored))


@automations_app.command("enable")
@command
def automations_enable(name: str, by: Annotated[str, typer.Option(help="Who enables it.")] = "cli") -> None:
    """Enable a rule (a new version; runs under way keep theirs)."""
    _set_enabled(name, True, by)


@automations_app.command("disable")
@command
def automations_disable(name: str, by: Annotated[str, typer.Option(help="Who disables it.")] = "cli") -> None:
    """Disable a rule: nothing new fires (runs under way finish with their version)."""
    _set_enabled(name, False, by)


@automations_app.command("test")
@command
def automations_test(
    rule: str,
    order: Annotated[str, typer.Option("--order", help="The order to try it on.")] = "",
    subject: Annotated[str, typer.Option(help="Or another subject: SKU@WAREHOUSE for stock rules.")] = "",
) -> None:
    """Dry run: which branch holds for the order now and the actions the rule would take, rendered; changes
    nothing."""
    with read_only(engine()) as session:
        found = next((stored for stored in automation_store.current(session) if stored.rule.name == rule), None)
        if found is None:
            raise CliError(f"no automation named {rule!r}")
        try:
            result = dry_run(session, found.rule, order or subject, datetime.now(UTC), NoticeWriter.load(settings()))
        except SubjectGone as exc:
            raise CliError(str(exc)) from None
    emit(result.as_dict())


@automations_app.command("runs")
@command
def automations_runs(
    failed: Annotated[bool, typer.Option("--failed", help="Only failed runs.")] = False,
    rule: Annotated[str, typer.Option(help="Only this rule's runs.")] = "",
    subject: Annotated[str, typer.Option(help="Only runs about this order (or subject).")] = "",
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """The run log, newest first: each run's rule, version, subject, state and error."""
    with read_only(engine()) as session:
        found = automation_runs.runs(session, rule=rule or None, subject=subject or None, failed=failed, limit=limit)
        rows = [
            {
                "run_id": run.run_id,
                "rule": run.rule,
                "version": run.version,
                "subject": run.subject,
                "trigger": run.trigger,
                "state": run.state,
                "attempt": run.attempt,
                "started_at": run.started_at.isoformat(),
                "error": run.error or "",
            }
            for run in found
        ]
    emit(rows, ["run_id", "rule", "version", "subject", "state", "started_at", "error"], "Automation runs")


@automations_app.command("run")
@command
def automations_run(run_id: str) -> None:
    """One run: the facts it saw, its branch and every step with why."""
    with read_only(engine()) as session:
        emit(automation_runs.describe_run(automation_runs.run_view(session, run_id)))


@automations_app.command("retry")
@command
async def automations_retry(
    run_id: str,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Every action again, not only from the failed one.")
    ] = False,
) -> None:
    """Retry a failed run from its failed step (or from the start), with the rule version it started with."""
    run = await automation_runs.retry(
        engine(), await client(), run_id, from_start=from_start, task_queue=settings().task_queue
    )
    emit({"run_id": run.run_id, "state": run.state, "attempt": run.attempt})


# --- the development room's commands --------------------------------------------------------------


def add_source_only_commands(cli: typer.Typer) -> None:
    """`seed` and `demo` in an installed package: they need the demo world of a source checkout (dev/)."""

    def source_only(name: str) -> Callable[[], None]:
        def refuse() -> None:
            fail(f"orderflow {name} runs from a source checkout (make demo): the installed package has no demo world")
            raise typer.Exit(1)

        refuse.__doc__ = f"Only in a source checkout: `orderflow {name}` needs the demo world (dev/)."
        return refuse

    for name in ("seed", "demo"):
        cli.command(name=name)(source_only(name))


def main() -> None:
    """Run the CLI, then leave without interpreter teardown.

    The Temporal client's Rust runtime threads can abort CPython's finalisation ("PyGILState_Release:
    thread state must be current", temporalio/sdk-python#300), turning a finished command into SIGABRT.
    Output is flushed first, so skipping teardown loses nothing.
    """
    code = 0
    try:
        app()
    except SystemExit as exc:  # typer's standalone mode ends every command this way
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
