"""The transport's own id of a message and its last known delivery state.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Adds ``messages.transport`` (``amqp`` or ``nhn``: the transport that first accepted it),
``messages.transport_id`` (NHN's message id beside our MsgId; NULL on AMQP) and
``messages.transport_state`` (NHN's delivery state as last polled: ``Unconfirmed``, ``Acknowledged``,
``Rejected``). Nullable columns only: SQLite needs no table rebuild. Written by hand to match
``edi_gateway/store/tables.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the three columns and the index the delivery-status poll reads by."""
    op.add_column("messages", sa.Column("transport", sa.String(16), nullable=True))
    op.add_column("messages", sa.Column("transport_id", sa.String(64), nullable=True))
    op.add_column("messages", sa.Column("transport_state", sa.String(32), nullable=True))
    op.create_index("ix_messages_transport_id", "messages", ["transport_id"])


def downgrade() -> None:
    """Drop the columns (NHN's ids and delivery states are lost)."""
    op.drop_index("ix_messages_transport_id", table_name="messages")
    op.drop_column("messages", "transport_state")
    op.drop_column("messages", "transport_id")
    op.drop_column("messages", "transport")
