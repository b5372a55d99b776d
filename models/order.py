"""The canonical order (docs/contract.md) and its parts: the payload integrations submit."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from models.text import storable

# Money is stored as integer cents in a BIGINT; orders are capped far below that.
MAX_ORDER_TOTAL = Decimal("999999999999.99")
# Documented as what docs/contract.md says amounts are, decimal strings (pydantic's generic decimal pattern relies on a
# lookahead that request generators cannot honour); validation still takes numbers too.
Money = Annotated[
    Decimal,
    Field(max_digits=14, decimal_places=2, ge=0),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,2})?$", "examples": ["199.00"]}),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(storable)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(storable)]


class OrderType(StrEnum):
    STANDARD = "standard"
    SAMPLE = "sample"


class PaymentMethod(StrEnum):
    PREPAID = "prepaid"
    CREDIT = "credit"
    COD = "cod"


class Payment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    method: PaymentMethod = PaymentMethod.CREDIT
    paid: bool = False


class Address(BaseModel):
    """Ship-to address. Fields may be empty here: business validation rejects the order with reasons."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Text = ""
    phone: Text = ""
    region: Text = ""
    province: Text = ""
    city: Text = ""
    address: Text = ""
    postcode: Text = ""


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sku: Code
    qty: int = Field(gt=0, le=1_000_000)
    unit_price: Money

    @field_validator("unit_price")
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        # "199", "199.0" and "199.00" are the same price: one representation keeps content hashes stable.
        # Adding zero turns "-0.00" (it passes ge=0) into "0.00".
        return value.quantize(Decimal("0.01")) + 0


class Order(BaseModel):
    """The canonical sales order every channel maps onto."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    order_no: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    channel: Code = "web"
    customer_id: Code
    sales_rep: Code
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "CNY"
    order_type: OrderType = OrderType.STANDARD
    payment: Payment = Payment()
    ship_to: Address
    lines: list[OrderLine] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _total_fits(self) -> Order:
        if self.total > MAX_ORDER_TOTAL:
            raise ValueError(f"order total {self.total} exceeds the maximum of {MAX_ORDER_TOTAL}")
        return self

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.qty for line in self.lines), Decimal("0.00"))

    def content_hash(self) -> str:
        """Fingerprint of the order's content: the same order submitted twice has the same hash."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()
