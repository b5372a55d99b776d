"""warehouse staff: the warehouses each user works in, and who picked a pick list when

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:52:23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import models.sqltypes  # noqa: F401


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('user_warehouses',
    sa.Column('user_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('warehouse', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.ForeignKeyConstraint(['warehouse'], ['warehouses.code'], ),
    sa.PrimaryKeyConstraint('user_name', 'warehouse')
    )
    with op.batch_alter_table('pick_lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('picked_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('picked_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('pick_lists', schema=None) as batch_op:
        batch_op.drop_column('picked_at')
        batch_op.drop_column('picked_by')

    op.drop_table('user_warehouses')
