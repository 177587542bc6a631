"""sync_states.created_at: the stable order the sync states list pages in

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows get the migration's time: they page after every state created later, in
    # lineage order among themselves, which is all a cursor needs.
    op.add_column(
        "sync_states",
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
    )
    op.create_index("ix_sync_states_page", "sync_states", ["sync_id", "created_at", "lineage_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_states_page", table_name="sync_states")
    op.drop_column("sync_states", "created_at")
