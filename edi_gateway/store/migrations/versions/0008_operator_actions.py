"""Operator actions: the web records what an operator asked for, a worker carries it out.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Adds the ``operator_actions`` table (one row per replay asked for in the web UI or API: who, what,
why, and its outcome once a worker has done it). Written by hand to match
``edi_gateway/store/tables.py``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _row_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the table and its two indexes."""
    op.create_table(
        "operator_actions",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("requested_at", _utc(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("msg_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request_body", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("outcome", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_operator_actions"),
        sa.ForeignKeyConstraint(["msg_id"], ["messages.msg_id"], name="fk_operator_actions_msg_id_messages"),
    )
    op.create_index("ix_operator_actions_state_id", "operator_actions", ["state", "id"])
    op.create_index("ix_operator_actions_msg_id", "operator_actions", ["msg_id"])


def downgrade() -> None:
    """Drop the table (the record of past operator actions is lost; the audit log keeps its entries)."""
    op.drop_table("operator_actions")
