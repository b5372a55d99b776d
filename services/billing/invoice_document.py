"""An invoice or credit note as a PDF: what it prints (`InvoiceDocument`, read by `load_document`) and how
(`render_pdf`, fpdf2, A4). The amounts are the issued rows' (domain/billing.py computed them once), printed as exact
Decimal strings with two decimals; dates are the business's days (settings.business_zone).

Chinese (product names, customers, addresses) needs a font with its glyphs: settings.pdf_font, or else the first of
FONT_CANDIDATES found on the machine. Fonts with TrueType outlines (WenQuanYi) come first: fpdf2 embeds them under
Identity-H, which pypdf, poppler and browsers all read. Noto Sans CJK (CFF outlines) renders as well, but fpdf2 2.8
embeds a CFF font with an encoding CMap of its own that pypdf cannot read yet (poppler and browsers can). Only the
glyphs a document uses are embedded. Each render parses the font file afresh (fpdf2 subsets it in place): that is
about half of a render's time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace
from sqlmodel import Session, col, select

from core.config import Settings
from domain.billing import CENTS, ZERO
from models.tables import Customer, Invoice, InvoiceLine, SalesOrder

# Where Debian (and a few other systems) put fonts with Chinese glyphs, as (file, face of a collection); the last
# (DejaVu) has none: Chinese text is then missing from the page (fpdf2 logs which glyphs), everything else prints.
FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),  # Debian fonts-wqy-microhei
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),  # Debian fonts-wqy-zenhei
    ("/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc", 0),  # Arch
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # Debian fonts-noto-cjk; face 2 is SC
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),  # Arch
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),  # Debian fonts-dejavu-core: no Chinese
)
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
_FAMILY = "invoice"

# Labels in English and Chinese.
TITLES = {"invoice": "INVOICE 发票", "credit_note": "CREDIT NOTE 贷项通知单"}
COLUMNS = (
    "SKU",
    "Description 品名",
    "Qty 数量",
    "Unit price 单价",
    "Rate 税率",
    "Net 不含税",
    "Tax 税额",
    "Gross 含税",
)
COLUMN_WIDTHS = (26, 50, 13, 20, 13, 20, 18, 20)  # mm, the 180 between A4's 15 mm margins
COLUMN_ALIGN = ("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")


class PdfFontError(LookupError):
    """No font to print with: ORDERFLOW_PDF_FONT names no font file, or none of the known system fonts is there."""


@dataclass(frozen=True)
class FontFile:
    path: Path
    face: int = 0  # of a collection (.ttc/.otc)


@dataclass(frozen=True)
class Party:
    code: str  # the legal entity's code, the customer's id ("" for a ship-to)
    name: str
    address: tuple[str, ...] = ()  # lines
    tax_id: str = ""


@dataclass(frozen=True)
class DocumentLine:
    position: int
    sku: str
    description: str
    qty: int  # negative on a credit note
    unit_price: Decimal  # tax included
    tax_rate_bp: int  # 1300 = 13 %
    net: Decimal
    tax: Decimal
    gross: Decimal


@dataclass(frozen=True)
class TaxBand:
    """The lines at one tax rate, summed."""

    tax_rate_bp: int
    net: Decimal
    tax: Decimal
    gross: Decimal


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything an invoice or credit note prints."""

    invoice_no: str
    kind: str  # invoice | credit_note
    corrects: str | None  # a credit note's invoice
    order_no: str
    tracking_no: str | None  # the parcel it bills; None: the whole order
    seller: Party
    buyer: Party
    ship_to: Party
    issued_at: datetime  # when it was issued (UTC): the PDF's creation date, so a render is reproducible
    issued_on: date  # in the business's time zone
    due_on: date
    currency: str
    lines: tuple[DocumentLine, ...]
    net: Decimal
    tax: Decimal
    total: Decimal
    tax_summary: tuple[TaxBand, ...]
    reason: str = ""  # why a credit note was issued

    @property
    def title(self) -> str:
        return TITLES.get(self.kind, self.kind.upper())


def load_document(session: Session, invoice_no: str, settings: Settings) -> InvoiceDocument | None:
    """The invoice or credit note `invoice_no` as it prints (None: there is none). Reads only."""
    invoice = session.get(Invoice, invoice_no)
    if invoice is None:
        return None
    rows = session.exec(
        select(InvoiceLine).where(InvoiceLine.invoice_no == invoice_no).order_by(col(InvoiceLine.position))
    ).all()
    customer = session.get(Customer, invoice.customer_id)
    order = session.get(SalesOrder, invoice.order_no)
    zone = settings.business_zone
    lines = tuple(
        DocumentLine(
            position=row.position, sku=row.sku, description=row.description, qty=row.qty,
            unit_price=row.unit_price, tax_rate_bp=row.tax_rate_bp, net=row.net, tax=row.tax, gross=row.gross,
        )
        for row in rows
    )  # fmt: skip
    # The seller's name and address are the settings' for their entity; an invoice of another entity (issued
    # before legal_entity changed) prints its code alone rather than the wrong company.
    ours = invoice.entity == settings.legal_entity
    seller = Party(
        code=invoice.entity,
        name=settings.legal_entity_name if ours else invoice.entity,
        address=tuple(settings.legal_entity_address.splitlines()) if ours else (),
        tax_id=settings.legal_entity_tax_id if ours else "",
    )
    ship_to: Mapping[str, Any] = (order.payload.get("ship_to") or {}) if order is not None else {}
    return InvoiceDocument(
        invoice_no=invoice.invoice_no,
        kind=invoice.kind,
        corrects=invoice.corrects,
        order_no=invoice.order_no,
        tracking_no=invoice.tracking_no,
        seller=seller,
        buyer=Party(code=invoice.customer_id, name=customer.name if customer is not None else ""),
        ship_to=Party(code="", name=str(ship_to.get("name", "")), address=_address_lines(ship_to)),
        issued_at=invoice.issued_at,
        issued_on=invoice.issued_at.astimezone(zone).date(),
        due_on=invoice.due_at.astimezone(zone).date(),
        currency=invoice.currency,
        lines=lines,
        net=invoice.net,
        tax=invoice.tax,
        total=invoice.total,
        tax_summary=tax_summary(lines),
        reason=invoice.reason,
    )


def tax_summary(lines: Iterable[DocumentLine]) -> tuple[TaxBand, ...]:
    """Net, tax and gross per tax rate, highest rate first."""
    bands: dict[int, tuple[Decimal, Decimal, Decimal]] = {}
    for line in lines:
        net, tax, gross = bands.get(line.tax_rate_bp, (ZERO, ZERO, ZERO))
        bands[line.tax_rate_bp] = (net + line.net, tax + line.tax, gross + line.gross)
    return tuple(TaxBand(rate, *sums) for rate, sums in sorted(bands.items(), reverse=True))


def money(amount: Decimal) -> str:
    """An amount as printed: exact, two decimals, no sign on zero."""
    cents = amount.quantize(CENTS)
    return str(cents.copy_abs() if cents.is_zero() else cents)


def rate(tax_rate_bp: int) -> str:
    """A tax rate in basis points as printed: 1300 → 13%, 950 → 9.5%."""
    return f"{Decimal(tax_rate_bp) / 100}%"


def find_font(setting: str = "") -> FontFile:
    """The font the PDFs print with: `setting` (settings.pdf_font: a file, a collection's face N as `file#N`), or
    the first of FONT_CANDIDATES on this machine."""
    if setting:
        name, _, face = setting.rpartition("#") if "#" in setting else (setting, "", "0")
        path = Path(name)
        if not face.isdigit() or path.suffix.lower() not in FONT_SUFFIXES or not path.is_file():
            raise PdfFontError(
                f"ORDERFLOW_PDF_FONT={setting!r}: not a font file (a .ttf, .otf or .ttc/.otc, a collection's face N "
                f"as FILE#N)"
            )
        return FontFile(path, int(face))
    for candidate, index in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return FontFile(Path(candidate), index)
    raise PdfFontError(
        "no font for the invoice PDFs: set ORDERFLOW_PDF_FONT to a TTF/OTF/TTC font file with Chinese glyphs, or "
        "install one of the known ones (Debian: apt-get install fonts-wqy-microhei); looked for "
        + ", ".join(candidate for candidate, _ in FONT_CANDIDATES)
    )


def render_pdf(doc: InvoiceDocument, *, font: FontFile | None = None) -> bytes:
    """The document as an A4 PDF, in `font` (None: find_font()'s system font; pass find_font(settings.pdf_font)
    to honour the setting, as invoice_pdf does)."""
    pdf = _DocumentPdf(doc, font or find_font())
    pdf.add_page()
    _header(pdf, doc)
    _parties(pdf, doc)
    _lines(pdf, doc)
    _totals(pdf, doc)
    _tax_summary(pdf, doc)
    _closing(pdf, doc)
    return bytes(pdf.output())


def invoice_pdf(session: Session, invoice_no: str, settings: Settings) -> bytes | None:
    """load_document and render_pdf in the settings' font (None: no such invoice)."""
    doc = load_document(session, invoice_no, settings)
    return None if doc is None else render_pdf(doc, font=find_font(settings.pdf_font))


class _DocumentPdf(FPDF):
    """A4 in mm, one font, the document's number and "page N/M" at the foot of every page."""

    def __init__(self, doc: InvoiceDocument, font: FontFile) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.doc = doc
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=18)
        self.add_font(_FAMILY, "", str(font.path), collection_font_number=font.face)
        self.set_font(_FAMILY, size=9)
        self.set_title(f"{doc.title} {doc.invoice_no}")
        self.set_author(doc.seller.name)
        self.set_creator("orderflow")
        self.set_creation_date(doc.issued_at)

    def header(self) -> None:
        if self.page_no() > 1:
            self.set_font(_FAMILY, size=8)
            self.cell(0, 5, f"{self.doc.title} {self.doc.invoice_no}", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(2)
            self.set_font(_FAMILY, size=9)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(_FAMILY, size=8)
        self.cell(0, 5, f"{self.doc.invoice_no} · page {self.page_no()}/{{nb}}", align="C")


def _header(pdf: FPDF, doc: InvoiceDocument) -> None:
    top = pdf.get_y()
    seller = doc.seller
    pdf.set_font(_FAMILY, size=13)
    pdf.multi_cell(100, 6, seller.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FAMILY, size=9)
    details = [*seller.address, *([f"Tax ID 税号: {seller.tax_id}"] if seller.tax_id else []), f"Entity {seller.code}"]
    pdf.multi_cell(100, 4.5, "\n".join(details), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    left_bottom = pdf.get_y()

    pdf.set_xy(115, top)
    pdf.set_font(_FAMILY, size=16)
    pdf.cell(80, 8, doc.title, align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(_FAMILY, size=9)
    facts = [
        ("No. 编号", doc.invoice_no),
        ("Issued 开票日期", doc.issued_on.isoformat()),
        *([("Corrects 更正发票", doc.corrects)] if doc.corrects else []),
        *([("Due 到期日", doc.due_on.isoformat())] if doc.kind == "invoice" else []),
        ("Order 订单", doc.order_no),
        *([("Parcel 运单", doc.tracking_no)] if doc.tracking_no else []),
    ]
    for label, value in facts:
        pdf.set_x(115)
        pdf.cell(80, 4.5, f"{label}: {value}", align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_xy(pdf.l_margin, max(left_bottom, pdf.get_y()) + 4)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(3)


def _parties(pdf: FPDF, doc: InvoiceDocument) -> None:
    top = pdf.get_y()
    buyer = doc.buyer
    _block(pdf, 15, top, "Bill to 购买方", [buyer.name, f"Customer 客户 {buyer.code}"])
    left_bottom = pdf.get_y()
    _block(pdf, 110, top, "Ship to 收货方", [doc.ship_to.name, *doc.ship_to.address])
    pdf.set_xy(pdf.l_margin, max(left_bottom, pdf.get_y()) + 3)
    if doc.kind == "credit_note":
        note = f"This credit note corrects invoice {doc.corrects} 本单更正发票 {doc.corrects}."
        if doc.reason:
            note += f"\nReason 原因: {doc.reason}"
        pdf.multi_cell(0, 4.5, note, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)


def _block(pdf: FPDF, x: float, y: float, title: str, lines: Sequence[str]) -> None:
    pdf.set_xy(x, y)
    pdf.set_font(_FAMILY, size=8)
    pdf.set_text_color(90)
    pdf.cell(85, 4.5, title, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.set_font(_FAMILY, size=9)
    pdf.multi_cell(85, 4.5, "\n".join(line for line in lines if line), new_x=XPos.LEFT, new_y=YPos.NEXT)


def _lines(pdf: FPDF, doc: InvoiceDocument) -> None:
    pdf.set_font(_FAMILY, size=8)
    with pdf.table(
        col_widths=COLUMN_WIDTHS,
        width=sum(COLUMN_WIDTHS),
        text_align=COLUMN_ALIGN,
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=FontFace(emphasis="", fill_color=(230, 230, 230)),
        line_height=4.5,
        padding=1,
    ) as table:
        table.row(COLUMNS)
        for line in doc.lines:
            table.row(
                (
                    line.sku,
                    line.description,
                    str(line.qty),
                    money(line.unit_price),
                    rate(line.tax_rate_bp),
                    money(line.net),
                    money(line.tax),
                    money(line.gross),
                )
            )
    pdf.ln(3)


def _totals(pdf: FPDF, doc: InvoiceDocument) -> None:
    pdf.set_font(_FAMILY, size=9)
    rows = [
        ("Net 不含税金额", money(doc.net)),
        ("Tax 税额", money(doc.tax)),
    ]
    for label, value in rows:
        _total_row(pdf, label, f"{doc.currency} {value}", size=9)
    _total_row(pdf, "Total 价税合计", f"{doc.currency} {money(doc.total)}", size=11)
    pdf.ln(3)


def _total_row(pdf: FPDF, label: str, value: str, *, size: float) -> None:
    pdf.set_font(_FAMILY, size=size)
    pdf.set_x(pdf.w - pdf.r_margin - 90)
    pdf.cell(50, size * 0.55, label, align="R")
    pdf.cell(40, size * 0.55, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _tax_summary(pdf: FPDF, doc: InvoiceDocument) -> None:
    pdf.set_font(_FAMILY, size=8)
    pdf.cell(0, 5, "Tax summary 税率汇总", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    with pdf.table(
        col_widths=(20, 30, 30, 30),
        width=110,
        align="LEFT",
        text_align=("RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=FontFace(emphasis="", fill_color=(230, 230, 230)),
        line_height=4.5,
        padding=1,
    ) as table:
        table.row(("Rate 税率", "Net 不含税", "Tax 税额", "Gross 含税"))
        for band in doc.tax_summary:
            table.row((rate(band.tax_rate_bp), money(band.net), money(band.tax), money(band.gross)))
    pdf.ln(4)


def _closing(pdf: FPDF, doc: InvoiceDocument) -> None:
    pdf.set_font(_FAMILY, size=9)
    if doc.kind == "invoice":
        text = (
            f"Please pay {doc.currency} {money(doc.total)} by {doc.due_on.isoformat()}, quoting {doc.invoice_no}. "
            f"请于 {doc.due_on.isoformat()} 前付款，并注明发票号 {doc.invoice_no}。"
        )
    else:
        text = (
            f"{doc.currency} {money(-doc.total)} is credited to your account against invoice {doc.corrects}. "
            f"已冲减发票 {doc.corrects} 的应收款。"
        )
    pdf.multi_cell(0, 4.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _address_lines(ship_to: Mapping[str, Any]) -> tuple[str, ...]:
    """A ship-to as Chinese addresses are written: province, city (once, for the municipalities), address;
    then the postcode."""
    province, city = str(ship_to.get("province", "")), str(ship_to.get("city", ""))
    place = [province] if province == city else [province, city]
    first = " ".join(part for part in (*place, str(ship_to.get("address", ""))) if part)
    return tuple(line for line in (first, str(ship_to.get("postcode", ""))) if line)
