"""staff notices by mail and sms, approve-from-the-mail links

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 07:21:53
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import models.sqltypes  # noqa: F401


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('approval_links',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('order_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('approver', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('voided_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('approval_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approval_links_order_no'), ['order_no'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_email', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('notify_sms', sa.Boolean(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('notify_sms')
        batch_op.drop_column('notify_email')

    with op.batch_alter_table('approval_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approval_links_order_no'))

    op.drop_table('approval_links')
