"""pre-signed OCSP responses, served from memory by the api

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ocsp_responses",
        sa.Column("ca_id", sa.Uuid(), nullable=False),
        sa.Column("serial_number", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["certificate_authorities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("ca_id", "serial_number"),
    )


def downgrade() -> None:
    op.drop_table("ocsp_responses")
