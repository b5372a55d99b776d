"""intake keys: the Idempotency-Key of each POST /orders, per API user

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 16:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import models.sqltypes


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'intake_keys',
        sa.Column('user_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('order_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('user_name', 'key'),
    )


def downgrade() -> None:
    op.drop_table('intake_keys')
