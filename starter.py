"""orderflow — the command line (console script `orderflow`; `python starter.py ...` is the same program)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from core.config import get_settings
from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from core.seed import add_user, seed
from core.temporal import connect
from integrations import orders_client, stock, views
from integrations.cli.output import emit, fail, force_json
from integrations.orders_client import CommandError
from integrations.stock import Receipt
from integrations.views import NotFound
from models.contracts import OrderState
from models.order import Order
from models.status import Role
from models.tables import User

app = typer.Typer(help="orderflow: durable sales-order fulfillment on Temporal.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users and their API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")

T = TypeVar("T")


class CliError(Exception):
    pass


@app.callback()
def _options(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON even on a terminal.")] = False,
) -> None:
    force_json(json_output)


def _engine() -> Engine:
    engine = make_engine(get_settings().effective_database_url)
    upgrade(engine)
    return engine


async def _client() -> Client:
    settings = get_settings()
    try:
        return await connect(settings)
    except RuntimeError as exc:
        why = "connection refused" if "Connection refused" in str(exc) else str(exc)
        raise CliError(
            f"cannot reach Temporal at {settings.temporal_address}: {why}; is the stack up? (make up)"
        ) from None


def command(func: Callable[..., Coroutine[Any, Any, None] | None]) -> Callable[..., None]:
    """Run sync or async command bodies and turn every refusal into one line on stderr and exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            result = func(*args, **kwargs)
            if isinstance(result, Awaitable):
                asyncio.run(result)
        except (CommandError, CliError, NotFound) as exc:
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
    answer = await orders_client.submit(await _client(), order, get_settings().task_queue)
    emit(answer.model_dump(exclude={"created"}))


@app.command()
@command
async def status(order_no: str) -> None:
    """The order view: status, lines, approvals, allocations, shipments with tracking, timeline."""
    engine = _engine()
    try:
        with unit_of_work(engine) as session:
            emit(views.order_view(session, order_no))
    except NotFound:
        # Submitted a moment ago: the workflow knows it before the read model does.
        emit(_state_json(await orders_client.live_state(await _client(), order_no)))


@app.command()
@command
async def approve(
    order_no: str,
    user: Annotated[str, typer.Option("--as", help="Approver's user name.")],
    comment: Annotated[str, typer.Option(help="Optional comment for the audit trail.")] = "",
) -> None:
    """Approve the order's pending level as USER (role and sales-rep rules are checked by the workflow)."""
    state = await orders_client.decide(
        await _client(),
        _engine(),
        order_no,
        user=user,
        decision="approve",
        comment=comment,
        secret=get_settings().decision_secret,
    )
    emit(_state_json(state))


@app.command()
@command
async def reject(
    order_no: str,
    user: Annotated[str, typer.Option("--as", help="Approver's user name.")],
    comment: Annotated[str, typer.Option(help="Why the order is rejected (required).")],
) -> None:
    """Reject the order at its pending level."""
    state = await orders_client.decide(
        await _client(),
        _engine(),
        order_no,
        user=user,
        decision="reject",
        comment=comment,
        secret=get_settings().decision_secret,
    )
    emit(_state_json(state))


@app.command()
@command
async def pay(order_no: str, reference: Annotated[str, typer.Option(help="Payment reference.")] = "") -> None:
    """Record the prepayment the order is waiting for."""
    emit(_state_json(await orders_client.pay(await _client(), order_no, reference=reference)))


@app.command()
@command
async def dispatch(
    order_no: str,
    warehouse: Annotated[str, typer.Option(help="Warehouse code the parcel leaves from.")],
    carrier: Annotated[str, typer.Option(help="Carrier code, e.g. sim.")],
    tracking_no: Annotated[str, typer.Option("--tracking-no", help="The carrier's tracking number.")],
) -> None:
    """Report that a warehouse handed the order's parcel to a carrier."""
    state = await orders_client.dispatch(
        await _client(), order_no, warehouse=warehouse, carrier=carrier, tracking_no=tracking_no
    )
    emit(_state_json(state))


@app.command()
@command
async def cancel(order_no: str, reason: Annotated[str, typer.Option(help="Why the order is cancelled.")]) -> None:
    """Cancel before dispatch: stock is released and pick lists voided."""
    emit(_state_json(await orders_client.cancel(await _client(), order_no, reason=reason)))


# --- master data and reports -------------------------------------------------------------------


@app.command()
@command
def inventory(sku: str) -> None:
    """Per-warehouse on hand / reserved / available for a SKU."""
    with unit_of_work(_engine()) as session:
        view = views.inventory_view(session, sku)
    if not _wants_table():
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
    """Book a goods receipt, close the requisitions it answers, and wake backordered orders oldest first."""
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
    engine = _engine()
    booked = stock.receive(engine, receipt)
    waiting = stock.backordered_orders(engine, sku)
    booked["backordered_orders"] = waiting
    if waiting:
        try:
            client = await _client()
        except CliError as exc:
            booked["note"] = f"{exc}; waiting orders re-check stock by themselves"
        else:
            try:
                booked["allocated_orders"] = await orders_client.notify_restock(client, waiting, [sku])
            except RPCError as exc:  # booked already: never make the user book it twice
                booked["note"] = f"waiting orders not woken now ({exc.message}); they re-check later"
    emit(booked)


@app.command()
@command
def requisitions(include_closed: Annotated[bool, typer.Option("--all", help="Include closed ones.")] = False) -> None:
    """Purchase requisitions (open ones unless --all)."""
    emit(
        stock.requisitions_view(_engine(), include_closed=include_closed),
        ["id", "sku", "warehouse", "qty", "reason", "order_no", "state"],
        "Purchase requisitions",
    )


@app.command()
@command
def products() -> None:
    """Products with list price and available quantity."""
    with unit_of_work(_engine()) as session:
        emit(views.products_view(session), ["sku", "name", "unit_price", "available"], "Products")


@app.command()
@command
def customers() -> None:
    """Customers with credit limit and current exposure."""
    with unit_of_work(_engine()) as session:
        emit(views.customers_view(session), ["customer_id", "name", "credit_limit", "exposure", "new"], "Customers")


@app.command()
@command
def report() -> None:
    """KPIs: orders by status, lead time, mean seconds per stage."""
    with unit_of_work(_engine()) as session:
        kpis = views.kpis(session)
    if not _wants_table():
        emit(kpis)
        return
    rows = [{"metric": f"orders {status}", "value": n} for status, n in sorted(kpis["orders_by_status"].items())]
    rows += [{"metric": f"lead time {p} (s)", "value": v} for p, v in kpis["lead_time_seconds"].items()]
    rows += [{"metric": f"mean s in {stage}", "value": v} for stage, v in kpis["mean_stage_seconds"].items()]
    emit(rows, ["metric", "value"], "orderflow KPIs")


def _wants_table() -> bool:
    from integrations.cli.output import wants_json

    return not wants_json()


@app.command(name="seed")
@command
def seed_command() -> None:
    """Load the demo world (idempotent) and print the API tokens of users created now."""
    report_ = seed(_engine())
    emit({"created": report_.created, "tokens": report_.tokens})


@users_app.command("add")
@command
def users_add(name: str, role: Annotated[Role, typer.Option(help="The user's role.")]) -> None:
    """Add a user; prints their API token once (only its hash is stored)."""
    with unit_of_work(_engine()) as session:
        if session.get(User, name) is not None:
            raise CliError(f"user {name} already exists")
        token = add_user(session, name, role)
    emit({"name": name, "role": role.value, "token": token})


@app.command()
@command
async def demo(orders: Annotated[int, typer.Option(help="How many sample orders (at least 20).")] = 22) -> None:
    """Run the sample orders to signed receipt against the running stack, playing approvers and warehouse."""
    from integrations.demo import run_demo

    ok = await run_demo(await _client(), _engine(), get_settings(), orders)
    if not ok:
        raise CliError("some demo orders did not reach their expected end state")


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


if __name__ == "__main__":
    main()
