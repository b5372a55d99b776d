"""orders keep the invoice policy they were registered under

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL for the orders registered before: their policy is read as for a new order.
    with op.batch_alter_table('orders') as batch_op:
        batch_op.add_column(sa.Column('invoice_policy', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch_op:
        batch_op.drop_column('invoice_policy')
