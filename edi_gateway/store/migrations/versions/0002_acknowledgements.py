"""AppRec tracking: first send and resends of a message, stored AppRecs, parked documents, receiver health.

Revision ID: 0002
Revises: 0001
Create Date: 2024-12-02

Written by hand to match ``edi_gateway/store/tables.py``; the store tests check that they agree.
Types are spelled out, as in 0001. Every step works on SQLite without rebuilding a table: a rebuild
of ``messages`` would trip the foreign keys of ``events`` while they are enforced.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _row_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Add the message columns (backfilling ``first_sent_at``) and create the three new tables."""
    _extend_messages()
    _create_apprecs()
    _create_parked()
    _create_receiver_health()


def _extend_messages() -> None:
    op.add_column("messages", sa.Column("first_sent_at", _utc(), nullable=True))
    op.add_column("messages", sa.Column("resends", sa.Integer(), nullable=False, server_default=sa.text("0")))
    # Until now only the latest send was kept; it is the best value there is for the first one.
    op.execute("UPDATE messages SET first_sent_at = sent_at WHERE sent_at IS NOT NULL")
    op.create_index("ix_messages_state_first_sent_at", "messages", ["state", "first_sent_at"])


def _create_apprecs() -> None:
    op.create_table(
        "apprecs",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("apprec_id", sa.String(255), nullable=False),
        sa.Column("msg_id", sa.String(36), nullable=False),
        sa.Column("version", sa.String(8), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("errors", _json(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("sender_her_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(16), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_apprecs"),
        sa.ForeignKeyConstraint(["msg_id"], ["messages.msg_id"], name="fk_apprecs_msg_id_messages"),
    )
    op.create_index("ix_apprecs_apprec_id", "apprecs", ["apprec_id"], unique=True)
    op.create_index("ix_apprecs_msg_id", "apprecs", ["msg_id"])


def _create_parked() -> None:
    op.create_table(
        "parked",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("amqp_message_id", sa.String(255), nullable=True),
        sa.Column("apprec_id", sa.Text(), nullable=True),
        sa.Column("msg_id", sa.Text(), nullable=True),
        sa.Column("details", _json(), nullable=True),
        sa.Column("resolved_at", _utc(), nullable=True),
        sa.Column("resolved_by", sa.String(255), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_parked"),
    )
    op.create_index("ix_parked_received_at", "parked", ["received_at"])
    op.create_index("ix_parked_resolved_at", "parked", ["resolved_at"])


def _create_receiver_health() -> None:
    op.create_table(
        "receiver_health",
        sa.Column("her_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("consecutive_overdue", sa.Integer(), nullable=False),
        sa.Column("quiet", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("her_id", name="pk_receiver_health"),
    )


def downgrade() -> None:
    """Drop the three tables and the message columns (stored AppRecs and parked documents are lost)."""
    op.drop_table("receiver_health")
    op.drop_table("parked")
    op.drop_table("apprecs")
    op.drop_index("ix_messages_state_first_sent_at", table_name="messages")
    # SQLite (3.35+) drops an unindexed column in place, so no table rebuild is needed here either.
    op.drop_column("messages", "resends")
    op.drop_column("messages", "first_sent_at")
