"""console accounts (passwords, contacts, sessions, failed sign-ins) and the approvers' to-do on orders

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:49:04
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import models.sqltypes  # noqa: F401


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failures_user_name'), ['user_name'], unique=False)

    op.create_table('web_sessions',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('csrf_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user_name'), ['user_name'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('awaiting_role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('awaiting_level', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('awaiting_since', models.sqltypes.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('awaiting_until', models.sqltypes.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('awaiting_why', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_awaiting_role'), ['awaiting_role'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('disabled', sa.Boolean(), server_default='0', nullable=False))

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('read_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True))

    # Orders already waiting for a level: their to-do from the transition that opened it ("level N: role").
    orders = sa.table(
        'orders', sa.column('order_no'), sa.column('status'), sa.column('awaiting_role'), sa.column('awaiting_level'),
        sa.column('awaiting_since', models.sqltypes.UTCDateTime(timezone=True)),
    )
    events = sa.table(
        'order_events', sa.column('order_no'), sa.column('seq'), sa.column('status'), sa.column('detail'),
        sa.column('at', models.sqltypes.UTCDateTime(timezone=True)),
    )
    bind = op.get_bind()
    waiting = bind.execute(
        sa.select(orders.c.order_no, orders.c.status).where(orders.c.status.in_(['AWAITING_APPROVAL', 'CREDIT_HOLD']))
    ).all()
    for order_no, status in waiting:
        opened = bind.execute(
            sa.select(events.c.detail, events.c.at)
            .where(events.c.order_no == order_no, events.c.status == status, events.c.detail.like('level %'))
            .order_by(events.c.seq.desc())
            .limit(1)
        ).first()
        found = re.fullmatch(r'level (\d+): (\w+)', opened.detail) if opened else None
        if opened is not None and found is not None:
            bind.execute(
                orders.update()
                .where(orders.c.order_no == order_no)
                .values(awaiting_role=found[2], awaiting_level=int(found[1]), awaiting_since=opened.at)
            )



def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('read_at')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('disabled')
        batch_op.drop_column('phone')
        batch_op.drop_column('email')
        batch_op.drop_column('password_hash')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_awaiting_role'))
        batch_op.drop_column('awaiting_why')
        batch_op.drop_column('awaiting_until')
        batch_op.drop_column('awaiting_since')
        batch_op.drop_column('awaiting_level')
        batch_op.drop_column('awaiting_role')

    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_user_name'))

    op.drop_table('web_sessions')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_user_name'))

    op.drop_table('login_failures')
