"""refunds through the payment provider: state, method, approval

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import models.sqltypes

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The refunds recorded so far were made by finance by hand: state made, method manual.
    with op.batch_alter_table('refunds') as batch_op:
        batch_op.add_column(sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False,
                                      server_default='made'))
        batch_op.add_column(sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                      server_default='manual'))
        batch_op.add_column(sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('requested_at', models.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('decided_at', models.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('why', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False,
                                      server_default=''))
        batch_op.alter_column('reference', existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
                              server_default='')
        batch_op.alter_column('made_by', existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        batch_op.alter_column('made_at', existing_type=models.sqltypes.UTCDateTime(), nullable=True)
        batch_op.create_index(batch_op.f('ix_refunds_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refunds') as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_state'))
        batch_op.alter_column('made_at', existing_type=models.sqltypes.UTCDateTime(), nullable=False)
        batch_op.alter_column('made_by', existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch_op.alter_column('reference', existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
                              server_default=None)
        for column in ('why', 'decided_at', 'decided_by', 'requested_at', 'reason', 'method', 'state'):
            batch_op.drop_column(column)
