"""Initial schema: requests, messages, events.

Revision ID: 0001
Revises:
Create Date: 2024-11-23

Written by hand to match ``edi_gateway/store/tables.py``; the store tests check that they agree.
The types are spelled out here rather than imported, so that this revision keeps meaning what it
meant when later revisions change ``tables.py``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the three tables with their keys and indexes."""
    _create_requests()
    _create_messages()
    _create_events()


def _create_requests() -> None:
    op.create_table(
        "requests",
        sa.Column("ref", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("samhandlingspunkt", sa.SmallInteger(), nullable=True),
        sa.Column("consent", sa.Boolean(), nullable=True),
        sa.Column("send_to_fastlege", sa.Boolean(), nullable=True),
        sa.Column("kommunenummer", sa.String(4), nullable=True),
        sa.Column("sender_unit_her_id", sa.BigInteger(), nullable=True),
        sa.Column("problems", _json(), nullable=False),
        sa.Column("amqp_message_id", sa.String(255), nullable=True),
        sa.Column("amqp_correlation_id", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("ref", name="pk_requests"),
        sa.UniqueConstraint("request_id", name="uq_requests_request_id"),
    )
    op.create_index("ix_requests_state_received_at", "requests", ["state", "received_at"])


def _create_messages() -> None:
    op.create_table(
        "messages",
        sa.Column("msg_id", sa.String(36), nullable=False),
        sa.Column("request_ref", sa.String(36), nullable=False),
        sa.Column("receiver_kind", sa.String(16), nullable=False),
        sa.Column("receiver_org_her_id", sa.BigInteger(), nullable=False),
        sa.Column("receiver_her_id", sa.BigInteger(), nullable=False),
        sa.Column("receiver_key", sa.String(100), nullable=False),
        sa.Column("receiver_name", sa.String(500), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("kommunenummer", sa.String(4), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("signed_xml", sa.LargeBinary(), nullable=False),
        sa.Column("msg_type", sa.String(64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("conversation_ref", sa.String(36), nullable=True),
        sa.Column("deadline_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("msg_id", name="pk_messages"),
        sa.ForeignKeyConstraint(["request_ref"], ["requests.ref"], name="fk_messages_request_ref_requests"),
        sa.UniqueConstraint("request_ref", "receiver_key", name="uq_messages_request_ref_receiver_key"),
    )
    op.create_index("ix_messages_state_updated_at", "messages", ["state", "updated_at"])


def _create_events() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("request_ref", sa.String(36), nullable=False),
        sa.Column("msg_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["request_ref"], ["requests.ref"], name="fk_events_request_ref_requests"),
        sa.ForeignKeyConstraint(["msg_id"], ["messages.msg_id"], name="fk_events_msg_id_messages"),
    )
    op.create_index("ix_events_request_ref_at", "events", ["request_ref", "at"])
    op.create_index("ix_events_msg_id_at", "events", ["msg_id", "at"])


def downgrade() -> None:
    """Drop the three tables (and with them every stored request)."""
    op.drop_table("events")
    op.drop_table("messages")
    op.drop_table("requests")
