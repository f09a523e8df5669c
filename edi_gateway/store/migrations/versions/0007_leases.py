"""Leases: one worker at a time runs the jobs every worker could run (the overdue sweep, the status poll).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Adds the ``leases`` table: a job's name, the process holding it, and until when. Written by hand to
match ``edi_gateway/store/tables.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop it (every worker then runs the jobs itself again)."""
    op.drop_table("leases")
