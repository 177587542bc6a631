"""ca rollover (predecessor, take-over times) and cross-certificates

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "certificate_authorities",
        sa.Column(
            "predecessor_id",
            sa.Uuid(),
            sa.ForeignKey("certificate_authorities.id", ondelete="RESTRICT"),
            nullable=True,
        ),
    )
    op.add_column(
        "certificate_authorities",
        sa.Column("takes_over_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "certificate_authorities",
        sa.Column("took_over_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "ca_cross_certificates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ca_id", sa.Uuid(), nullable=False),
        sa.Column("signer_ca_id", sa.Uuid(), nullable=False),
        sa.Column("serial_number", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certificate_pem", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("chain_pem", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["certificate_authorities.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["signer_ca_id"], ["certificate_authorities.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_ca_cross_certificates_ca_id"), "ca_cross_certificates", ["ca_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ca_cross_certificates_ca_id"), table_name="ca_cross_certificates")
    op.drop_table("ca_cross_certificates")
    op.drop_column("certificate_authorities", "took_over_at")
    op.drop_column("certificate_authorities", "takes_over_at")
    op.drop_column("certificate_authorities", "predecessor_id")
