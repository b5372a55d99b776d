"""a customer's own invoice policy

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: the channel's policy or the business's default (ORDERFLOW_INVOICE_POLICY).
    with op.batch_alter_table('customers') as batch_op:
        batch_op.add_column(sa.Column('invoice_policy', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('customers') as batch_op:
        batch_op.drop_column('invoice_policy')
