"""audit hash chain and rate-limit buckets

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column(
            "event_id",
            sa.BigInteger(),
            sa.ForeignKey("audit_events.id", ondelete="RESTRICT"),
            primary_key=True,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("application_id", sa.Uuid(), nullable=True),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("app_prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_audit_chain_app_seq", "audit_chain", ["application_id", "seq"])
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_index("ix_audit_chain_app_seq", table_name="audit_chain")
    op.drop_table("audit_chain")
