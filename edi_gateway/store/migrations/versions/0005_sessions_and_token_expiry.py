"""Web sessions that the server can end, failed-login resets, and API tokens that expire.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Adds ``operators.session_epoch`` and ``operators.logins_reset_at``, and ``api_tokens.expires_at``.
Tokens made before this revision expire ``EXISTING_TOKEN_DAYS`` after the upgrade, so scripts using
them keep working while new tokens are issued. Only nullable or defaulted columns are added: SQLite
needs no table rebuild. Written by hand to match ``edi_gateway/store/tables.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

EXISTING_TOKEN_DAYS = 90


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the three columns and give every existing token an expiry."""
    op.add_column(
        "operators", sa.Column("session_epoch", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.add_column("operators", sa.Column("logins_reset_at", _utc(), nullable=True))
    op.add_column("api_tokens", sa.Column("expires_at", _utc(), nullable=True))
    expires = datetime.now(UTC) + timedelta(days=EXISTING_TOKEN_DAYS)
    if op.get_bind().dialect.name == "sqlite":
        expires = expires.replace(tzinfo=None)  # the store keeps naive UTC on SQLite
    tokens = sa.table("api_tokens", sa.column("expires_at", sa.DateTime()))
    op.execute(tokens.update().where(tokens.c.expires_at.is_(None)).values(expires_at=expires))


def downgrade() -> None:
    """Drop the columns (sessions and token expiry dates are lost; tokens then never expire)."""
    # SQLite (3.35+) drops an unindexed column in place: no table rebuild, as in 0002.
    op.drop_column("api_tokens", "expires_at")
    op.drop_column("operators", "logins_reset_at")
    op.drop_column("operators", "session_epoch")
