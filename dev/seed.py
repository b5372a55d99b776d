"""The demo world: warehouses in three regions, 24 SKUs with FIFO lots, customers, and the demo users.

Idempotent: rows that exist are left alone, so seeding twice changes nothing (and prints no new tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlmodel import SQLModel, select

from core.db import unit_of_work
from models.status import Role
from models.tables import Customer, Product, RegionDistance, StockLot, User, Warehouse
from services.accounts import new_password, set_password
from services.billing.ledger import book
from services.users import add_user, set_warehouses

REGIONS = ["华东", "华北", "华南", "华中", "西南"]
# Road distance between region hubs, km (symmetric; a region to itself is 0).
_DISTANCES = {
    ("华东", "华北"): 1200,
    ("华东", "华南"): 1400,
    ("华东", "华中"): 800,
    ("华东", "西南"): 1900,
    ("华北", "华南"): 2100,
    ("华北", "华中"): 1100,
    ("华北", "西南"): 1800,
    ("华南", "华中"): 1000,
    ("华南", "西南"): 1300,
    ("华中", "西南"): 1100,
}

WAREHOUSES = [("WH-SH", "上海嘉定仓", "华东"), ("WH-BJ", "北京顺义仓", "华北"), ("WH-GZ", "广州白云仓", "华南")]

_PRODUCT_NAMES = [
    ("SKU-1001", "无线鼠标", "199.00"),
    ("SKU-1002", "机械键盘", "499.00"),
    ("SKU-1003", "27寸显示器", "1899.00"),
    ("SKU-1004", "USB-C 扩展坞", "359.00"),
    ("SKU-1005", "降噪耳机", "1299.00"),
    ("SKU-1006", "笔记本支架", "129.00"),
    ("SKU-1007", "高清摄像头", "399.00"),
    ("SKU-1008", "办公椅", "1599.00"),
    ("SKU-1009", "升降桌", "2999.00"),
    ("SKU-1010", "投影仪", "4599.00"),
    ("SKU-1011", "激光打印机", "2199.00"),
    ("SKU-1012", "碎纸机", "699.00"),
    ("SKU-1013", "路由器", "459.00"),
    ("SKU-1014", "移动硬盘 2TB", "599.00"),
    ("SKU-1015", "U盘 128GB", "89.00"),
    ("SKU-1016", "网线 10m", "39.00"),
    ("SKU-1017", "服务器机柜", "8999.00"),
    ("SKU-1018", "工作站", "12999.00"),
    ("SKU-1019", "平板电脑", "3299.00"),
    ("SKU-1020", "会议音箱", "899.00"),
    ("SKU-1021", "白板", "259.00"),
    ("SKU-1022", "文件柜", "1199.00"),
    ("SKU-1023", "UPS 电源", "1799.00"),
    ("SKU-1024", "手写笔", "299.00"),
]
DISCONTINUED_SKU = "SKU-1099"
# The product lines the cockpit groups by (SKU number ranges of the list above).
PRODUCT_LINES = [
    (1001, 1007, "外设 peripherals"),
    (1008, 1009, "办公家具 furniture"),
    (1010, 1012, "办公设备 office equipment"),
    (1013, 1017, "网络与存储 network & storage"),
    (1018, 1020, "电脑与影音 computers & AV"),
    (1021, 1024, "办公用品 supplies"),
]
COST_SHARE = Decimal("0.62")  # what a unit costs us, of its list price


def product_line(sku: str) -> str:
    number = int(sku.removeprefix("SKU-"))
    return next((line for low, high, line in PRODUCT_LINES if low <= number <= high), "general")


def unit_cost(price: str) -> Decimal:
    return (Decimal(price) * COST_SHARE).quantize(Decimal("0.01"))


# customer_id, name, region, e-mail, credit limit, opening receivables (an opening entry in the ledger), first order
# still to come
CUSTOMERS = [
    ("C-1001", "上海星辰科技", "华东", "buyer@xingchen.example", "500000.00", "12000.00", False),
    ("C-1002", "北京远航贸易", "华北", "po@yuanhang.example", "300000.00", "45000.00", False),
    ("C-1003", "广州南方电子", "华南", "cg@nanfang.example", "200000.00", "0.00", False),
    ("C-1004", "武汉光谷创新", "华中", "caigou@guanggu.example", "150000.00", "30000.00", False),
    ("C-1005", "成都天府商贸", "西南", "order@tianfu.example", "50000.00", "47500.00", False),  # near its limit
    ("C-2001", "杭州新芽工作室", "华东", "hello@xinya.example", "20000.00", "0.00", True),  # new customer
]

DEMO_USERS = [
    ("alice", Role.SALES),
    ("bob", Role.SALES),
    ("fiona", Role.FINANCE),
    ("derek", Role.FINANCE_DIRECTOR),
    ("wang", Role.WAREHOUSE),
    ("olga", Role.OPS),
    ("root", Role.ADMIN),
]

# Lots arrive at different times, so FIFO has something to choose between.
_EPOCH = datetime(2026, 9, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SeedReport:
    created: dict[str, int]
    tokens: dict[str, str]  # user -> API token, only for users created now
    passwords: dict[str, str]  # user -> console password, only for users created now


def _lots() -> list[StockLot]:
    lots: list[StockLot] = []
    for index, (sku, _, _) in enumerate(_PRODUCT_NAMES):
        for w_index, (code, _, _) in enumerate(WAREHOUSES):
            if sku == "SKU-1024" and code != "WH-GZ":
                continue  # a scarce item: only a few units, in one warehouse
            for age in (0, 1):
                qty = 5 if sku == "SKU-1024" else 120 + 40 * ((index + w_index + age) % 5)
                lots.append(
                    StockLot(
                        warehouse=code,
                        sku=sku,
                        bin=f"{'ABC'[index % 3]}-{(index % 12) + 1:02d}-{age * 10 + w_index + 1:02d}",
                        lot=f"L{2609 + age}-{index + 1:03d}",
                        received_at=_EPOCH + timedelta(days=30 * age + index),
                        on_hand=qty,
                    )
                )
    return lots


def seeded_stock() -> dict[tuple[str, str], int]:
    """(sku, warehouse) → units the seed puts there: the demo tops its world back up to these."""
    levels: dict[tuple[str, str], int] = {}
    for lot in _lots():
        levels[(lot.sku, lot.warehouse)] = levels.get((lot.sku, lot.warehouse), 0) + lot.on_hand
    return levels


def reset_demo_passwords(engine: Engine) -> dict[str, str]:
    """New console passwords for the demo users (the demo prints them; their open sessions end)."""
    passwords = {name: new_password() for name, _ in DEMO_USERS}
    with unit_of_work(engine) as session:
        for name, password in passwords.items():
            set_password(session, name, password)
    return passwords


def seed(engine: Engine, *, console_passwords: bool = True) -> SeedReport:
    """The demo world. `console_passwords=False` leaves the users without one (hashing a password takes ~0.1 s:
    the tests that seed a database per test sign in with users of their own)."""
    created: dict[str, int] = {}
    tokens: dict[str, str] = {}
    with unit_of_work(engine) as session:

        def add_missing(kind: str, rows: Sequence[SQLModel], key: Callable[[Any], object]) -> None:
            count = 0
            for row in rows:
                if session.get(type(row), key(row)) is None:
                    session.add(row)
                    count += 1
            created[kind] = count

        add_missing("warehouses", [Warehouse(code=c, name=n, region=r) for c, n, r in WAREHOUSES], lambda w: w.code)
        distances = [RegionDistance(from_region=r, to_region=r, distance=0) for r in REGIONS]
        for (a, b), km in _DISTANCES.items():
            distances += [
                RegionDistance(from_region=a, to_region=b, distance=km),
                RegionDistance(from_region=b, to_region=a, distance=km),
            ]
        add_missing("region_distances", distances, lambda d: (d.from_region, d.to_region))
        products = [
            Product(
                sku=sku,
                name=name,
                unit_price=Decimal(price),
                product_line=product_line(sku),
                unit_cost=unit_cost(price),
            )
            for sku, name, price in _PRODUCT_NAMES
        ]
        products.append(Product(sku=DISCONTINUED_SKU, name="停产型号", unit_price=Decimal("99.00"), active=False))
        add_missing("products", products, lambda p: p.sku)
        customers = [
            Customer(
                customer_id=cid,
                name=name,
                region=region,
                email=email,
                credit_limit=Decimal(limit),
                first_order=new,
            )
            for cid, name, region, email, limit, _, new in CUSTOMERS
        ]
        add_missing("customers", customers, lambda c: c.customer_id)
        for cid, _, _, _, _, opening, _ in CUSTOMERS:  # what they owed before orderflow: once per customer
            if Decimal(opening):
                book(
                    session, key=f"opening:{cid}", customer_id=cid, kind="opening", amount=Decimal(opening),
                    currency="CNY", at=_EPOCH, reference="opening balance",
                )  # fmt: skip
        session.flush()
        if session.exec(select(StockLot.id)).first() is None:
            lots = _lots()
            session.add_all(lots)
            created["stock_lots"] = len(lots)
        passwords: dict[str, str] = {}
        for name, role in DEMO_USERS:
            if session.get(User, name) is None:
                tokens[name] = add_user(session, name, role, email=f"{name}@staff.orderflow.test")
                session.flush()
                if role == Role.WAREHOUSE:  # the demo's warehouse hand works in every warehouse
                    set_warehouses(session, name, [code for code, _, _ in WAREHOUSES])
                if console_passwords:
                    passwords[name] = new_password()
                    set_password(session, name, passwords[name])
        created["users"] = len(tokens)
    return SeedReport(created, tokens, passwords)
