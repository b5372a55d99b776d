"""substitutes and decisions on behalf

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 13:16:19.780158
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import models.sqltypes  # noqa: F401


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('substitutions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('principal', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('substitute', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('starts_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', models.sqltypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', models.sqltypes.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['principal'], ['users.name'], ),
    sa.ForeignKeyConstraint(['substitute'], ['users.name'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('substitutions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_substitutions_principal'), ['principal'], unique=False)
        batch_op.create_index(batch_op.f('ix_substitutions_substitute'), ['substitute'], unique=False)

    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_column('on_behalf_of')

    with op.batch_alter_table('substitutions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_substitutions_substitute'))
        batch_op.drop_index(batch_op.f('ix_substitutions_principal'))

    op.drop_table('substitutions')
