"""automations

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 18:49:08.587176
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import models.sqltypes  # noqa: F401


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('automation_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('caused_by', sa.JSON(), nullable=False),
    sa.Column('at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', models.sqltypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('handled_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('automation_events', schema=None) as batch_op:
        batch_op.create_index('ix_automation_events_pending', ['handled_at', 'id'], unique=False)

    op.create_table('automation_rules',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('saved_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('saved_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.PrimaryKeyConstraint('name', 'version')
    )
    op.create_table('automation_runs',
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('event_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('event_data', sa.JSON(), nullable=False),
    sa.Column('caused_by', sa.JSON(), nullable=False),
    sa.Column('facts', sa.JSON(), nullable=False),
    sa.Column('branch', sa.Integer(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('automation_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_automation_runs_rule'), ['rule'], unique=False)
        batch_op.create_index(batch_op.f('ix_automation_runs_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_automation_runs_subject'), ['subject'], unique=False)

    op.create_table('automation_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'attempt', 'position')
    )
    with op.batch_alter_table('automation_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_automation_steps_run_id'), ['run_id'], unique=False)

    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('user', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('order_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('due_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('done_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_order_no'), ['order_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_role'), ['role'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_user'), ['user'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tags', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('priority', sqlmodel.sql.sqltypes.AutoString(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('assignee', sqlmodel.sql.sqltypes.AutoString(length=64), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('assignee')
        batch_op.drop_column('priority')
        batch_op.drop_column('tags')

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_user'))
        batch_op.drop_index(batch_op.f('ix_tasks_state'))
        batch_op.drop_index(batch_op.f('ix_tasks_role'))
        batch_op.drop_index(batch_op.f('ix_tasks_order_no'))

    op.drop_table('tasks')
    with op.batch_alter_table('automation_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_automation_steps_run_id'))

    op.drop_table('automation_steps')
    with op.batch_alter_table('automation_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_automation_runs_subject'))
        batch_op.drop_index(batch_op.f('ix_automation_runs_state'))
        batch_op.drop_index(batch_op.f('ix_automation_runs_rule'))

    op.drop_table('automation_runs')
    op.drop_table('automation_rules')
    with op.batch_alter_table('automation_events', schema=None) as batch_op:
        batch_op.drop_index('ix_automation_events_pending')

    op.drop_table('automation_events')
