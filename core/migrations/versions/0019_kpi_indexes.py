"""indexes for the cockpit's queries on a million orders (bench/cockpit.py, docs/benchmarks.md)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 20:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_reservations_created_at", "reservations", ["created_at"])
    op.create_index("ix_reservations_state_updated_at", "reservations", ["state", "updated_at"])
    op.create_index("ix_stock_receipts_at", "stock_receipts", ["at"])
    op.create_index("ix_order_stage_times_left_seconds", "order_stage_times", ["left_at", "seconds"])
    op.create_index(op.f("ix_order_facts_approval_ended_at"), "order_facts", ["approval_ended_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_order_facts_approval_ended_at"), table_name="order_facts")
    op.drop_index("ix_order_stage_times_left_seconds", table_name="order_stage_times")
    op.drop_index("ix_stock_receipts_at", table_name="stock_receipts")
    op.drop_index("ix_reservations_state_updated_at", table_name="reservations")
    op.drop_index("ix_reservations_created_at", table_name="reservations")
