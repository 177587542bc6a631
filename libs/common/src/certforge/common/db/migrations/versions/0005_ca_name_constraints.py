"""ca name constraints

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "certificate_authorities",
        sa.Column("name_constraints", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "certificate_authorities",
        sa.Column(
            "chain_name_constraints",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("certificate_authorities", "chain_name_constraints")
    op.drop_column("certificate_authorities", "name_constraints")
