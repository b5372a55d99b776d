"""The sales rep's order form: its fields become the canonical order, checked as the API checks one (the Order
model, services.intake.intake_refusal) and as the workflow's validation step will (services.order_checks), so a
mistake is shown beside its field before anything starts; each message names the field's problem."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from models.order import Order
from models.status import Role
from models.tables import Customer, Product, User, Warehouse
from services.intake import intake_refusal
from services.order_checks import rejection_reasons

LINE_ROWS = 5  # line rows on the form; empty ones are left out
SHIP_FIELDS = ("name", "phone", "region", "province", "city", "address", "postcode")
PAYMENT_METHODS = ("credit", "prepaid", "cod")
ORDER_TYPES = ("standard", "sample")


def new_order_no(now: datetime) -> str:
    """Chosen when the form is shown, so sending it twice submits one order (intake is once per number)."""
    return f"SO-{now:%Y%m%d}-{secrets.token_hex(3).upper()}"


@dataclass
class FormChoices:
    customers: list[tuple[str, str]]  # (id, name)
    products: list[tuple[str, str, Decimal]]  # (sku, name, list price)
    regions: list[str]
    sales_reps: list[str]


def choices(session: Session) -> FormChoices:
    customers = session.exec(select(Customer).order_by(col(Customer.customer_id))).all()
    products = session.exec(select(Product).where(col(Product.active).is_(True)).order_by(col(Product.sku))).all()
    regions = sorted(set(session.exec(select(Warehouse.region)).all()))
    reps = session.exec(
        select(User.name).where(User.role == Role.SALES.value, col(User.disabled).is_(False)).order_by(col(User.name))
    ).all()
    return FormChoices(
        customers=[(c.customer_id, c.name) for c in customers],
        products=[(p.sku, p.name, p.unit_price) for p in products],
        regions=regions,
        sales_reps=list(reps),
    )


@dataclass
class FormResult:
    order: Order | None
    errors: dict[str, str] = field(default_factory=dict)  # field name → why ("form": the order as a whole)


def read_form(session: Session, form: dict[str, str], *, user: str, role: str, price_tolerance: Decimal) -> FormResult:
    """The order the form describes, or the reasons beside their fields (nothing is written either way)."""
    errors: dict[str, str] = {}
    rows: list[int] = []  # the form row of each order line
    lines: list[dict[str, Any]] = []
    list_prices = {product.sku: product.unit_price for product in session.exec(select(Product)).all()}
    for row in range(1, LINE_ROWS + 1):
        sku, qty, price = (form.get(f"{name}_{row}", "").strip() for name in ("sku", "qty", "price"))
        if not (sku or qty or price):
            continue
        if not sku:
            errors[f"sku_{row}"] = "choose a product"
            continue
        rows.append(row)
        lines.append({"sku": sku, "qty": qty or "1", "unit_price": price or str(list_prices.get(sku, "0.00"))})
    if not lines and not errors:
        errors["sku_1"] = "an order needs at least one line"
    sales_rep = form.get("sales_rep", "").strip() if role != Role.SALES.value else user
    payload = {
        "order_no": form.get("order_no", ""),
        "channel": "console",
        "customer_id": form.get("customer_id", "").strip(),
        "sales_rep": sales_rep or user,
        "order_type": form.get("order_type", "standard"),
        "payment": {"method": form.get("payment_method", "credit"), "paid": False},
        "ship_to": {name: form.get(f"ship_{name}", "") for name in SHIP_FIELDS},
        "lines": lines,
    }
    if errors:
        return FormResult(None, errors)
    try:
        order = Order.model_validate(payload)
    except ValidationError as exc:
        for error in exc.errors():
            errors.setdefault(_field_of(error["loc"], rows), _message(error))
        return FormResult(None, errors)
    refusal = intake_refusal(order, user=user, role=role)
    if refusal is not None:
        return FormResult(None, {"form": str(refusal)})
    reasons, _customer = rejection_reasons(session, order, price_tolerance)
    for reason in reasons:
        for name, why in _reason_fields(reason, rows):
            errors.setdefault(name, why)
    return FormResult(None if errors else order, errors)


def _field_of(loc: tuple[int | str, ...], rows: list[int]) -> str:
    match loc:
        case ("lines", int(index), name, *_):
            return {"sku": "sku", "qty": "qty", "unit_price": "price"}.get(str(name), "sku") + f"_{rows[index]}"
        case ("lines", *_):
            return "sku_1"
        case ("ship_to", str(name), *_):
            return f"ship_{name}"
        case ("payment", *_):
            return "payment_method"
        case (str(name), *_) if name in ("customer_id", "order_type", "sales_rep"):
            return name
    return "form"


def _message(error: Any) -> str:
    text = str(error.get("msg", "not valid"))
    return text.removeprefix("Value error, ")


def _reason_fields(reason: str, rows: list[int]) -> list[tuple[str, str]]:
    """Where a business validation reason (domain/validation.py) belongs on the form."""
    if reason.startswith("unknown customer"):
        return [("customer_id", reason)]
    if reason.startswith("ship-to address incomplete"):
        return [(f"ship_{name}", "required") for name in reason.split("missing ", 1)[-1].split(", ")]
    if reason.startswith("line "):
        number = int(reason.split(":", 1)[0].removeprefix("line "))
        row = rows[number - 1] if 0 < number <= len(rows) else 1
        return [(f"price_{row}" if "unit price" in reason else f"sku_{row}", reason.split(": ", 1)[-1])]
    return [("form", reason)]
