"""certificate inventory index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The renewer's inventory gauges group certificates by application, profile and status and
    # take the earliest not_after: with these columns included the aggregate is an index-only
    # scan, never a pass over the rows and their PEMs.
    op.create_index(
        "ix_certificates_inventory",
        "certificates",
        ["application_id", "profile_id", "status"],
        postgresql_include=["not_after", "renewing_request_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_certificates_inventory", table_name="certificates")
