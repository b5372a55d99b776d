"""credit note lines name the invoice line they credit

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 03:15:00

Credited units were matched back to invoice lines by SKU and unit price, which counts them against the wrong line
when an invoice has two lines of one SKU at one price. Each credit note line now names its invoice line; the ones
issued before get the line the old matching gave them (first line of that SKU and price with units left).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('invoice_lines') as batch_op:
        batch_op.add_column(sa.Column('corrects_line', sa.Integer(), nullable=True))
    bind = op.get_bind()
    lines = sa.table(
        'invoice_lines', sa.column('id'), sa.column('invoice_no'), sa.column('position'), sa.column('sku'),
        sa.column('unit_price'), sa.column('qty'), sa.column('corrects_line'),
    )
    invoices = sa.table('invoices', sa.column('invoice_no'), sa.column('kind'), sa.column('corrects'),
                        sa.column('seq'))
    notes = bind.execute(
        sa.select(invoices.c.invoice_no, invoices.c.corrects)
        .where(invoices.c.kind == 'credit_note')
        .order_by(invoices.c.seq)
    ).all()
    left: dict[str, dict[int, list[object]]] = {}
    for note_no, invoice_no in notes:
        if invoice_no not in left:
            left[invoice_no] = {
                row.position: [row.sku, row.unit_price, row.qty]
                for row in bind.execute(sa.select(lines).where(lines.c.invoice_no == invoice_no))
            }
        billed = left[invoice_no]
        for row in bind.execute(sa.select(lines).where(lines.c.invoice_no == note_no).order_by(lines.c.position)):
            units = -int(row.qty)
            for position in sorted(billed):
                sku, price, qty = billed[position]
                if sku == row.sku and price == row.unit_price and int(qty) >= units:  # type: ignore[call-overload]
                    billed[position][2] = int(qty) - units  # type: ignore[call-overload]
                    bind.execute(sa.update(lines).where(lines.c.id == row.id).values(corrects_line=position))
                    break


def downgrade() -> None:
    with op.batch_alter_table('invoice_lines') as batch_op:
        batch_op.drop_column('corrects_line')
