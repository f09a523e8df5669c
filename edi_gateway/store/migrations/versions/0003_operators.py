"""Operator accounts, API tokens, the append-only audit log, and the replays that made new messages.

Revision ID: 0003
Revises: 0002
Create Date: 2024-12-09

Written by hand to match ``edi_gateway/store/tables.py``; the store tests check that they agree.
Only new tables: nothing existing is altered, so SQLite needs no table rebuild.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _row_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``operators``, ``api_tokens``, ``audit_log`` and ``replays``."""
    _create_operators()
    _create_api_tokens()
    _create_audit_log()
    _create_replays()


def _create_operators() -> None:
    op.create_table(
        "operators",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("username", name="pk_operators"),
    )


def _create_api_tokens() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_used_at", _utc(), nullable=True),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["username"], ["operators.username"], name="fk_api_tokens_username_operators"
        ),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_username", "api_tokens", ["username"])


def _create_audit_log() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("msg_id", sa.String(36), nullable=True),
        sa.Column("request_ref", sa.String(36), nullable=True),
        sa.Column("patient_ref", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_username_at", "audit_log", ["username", "at"])
    op.create_index("ix_audit_log_msg_id", "audit_log", ["msg_id"])
    op.create_index("ix_audit_log_patient_ref", "audit_log", ["patient_ref"])


def _create_replays() -> None:
    op.create_table(
        "replays",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("old_msg_id", sa.String(36), nullable=False),
        sa.Column("new_msg_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request_body", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_replays"),
        sa.ForeignKeyConstraint(["old_msg_id"], ["messages.msg_id"], name="fk_replays_old_msg_id_messages"),
        sa.ForeignKeyConstraint(["new_msg_id"], ["messages.msg_id"], name="fk_replays_new_msg_id_messages"),
    )
    op.create_index("ix_replays_old_msg_id", "replays", ["old_msg_id"])
    op.create_index("ix_replays_new_msg_id", "replays", ["new_msg_id"], unique=True)


def downgrade() -> None:
    """Drop the four tables (accounts, tokens, the audit log and the replay records are lost)."""
    op.drop_table("replays")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
    op.drop_table("operators")
