"""The receiving side and the kommune's pathway worklist.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Adds ``received_messages`` (business documents received on our inbox, each with the one AppRec that
answers it), ``pathways`` (one per patient, the aggregate as a document), ``pathway_points`` (its
points, for worklists and reports), ``pathway_events`` (append-only history), ``pathway_alerts``
(each due-soon and overdue alert raised once) and ``pathway_notes`` (fastlege notes asked for). Written by hand to match ``edi_gateway/store/tables.py``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _row_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the six tables and their indexes."""
    op.create_table(
        "received_messages",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("msg_id", sa.String(36), nullable=False),
        sa.Column("sender_her_id", sa.BigInteger(), nullable=False),
        sa.Column("receiver_her_id", sa.BigInteger(), nullable=False),
        sa.Column("addressed_her_id", sa.BigInteger(), nullable=True),
        sa.Column("msg_type", sa.String(64), nullable=False),
        sa.Column("conversation_ref", sa.String(36), nullable=True),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("patient_ref", sa.String(64), nullable=True),
        sa.Column("patient_masked", sa.String(16), nullable=True),
        sa.Column("apprec_id", sa.String(36), nullable=False),
        sa.Column("apprec_status", sa.SmallInteger(), nullable=False),
        sa.Column("apprec_errors", _json(), nullable=False),
        sa.Column("apprec_body", sa.LargeBinary(), nullable=False),
        sa.Column("apprec_sent_at", _utc(), nullable=True),
        sa.Column("announced_at", _utc(), nullable=True),
        sa.Column("pathway_state", sa.String(16), nullable=True),
        sa.Column("thread_msg_id", sa.String(36), nullable=True),
        sa.Column("transport_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_received_messages"),
        sa.UniqueConstraint("sender_her_id", "msg_id", name="uq_received_messages_sender_her_id_msg_id"),
    )
    op.create_index("ix_received_messages_received_at", "received_messages", ["received_at"])
    op.create_index("ix_received_messages_thread_msg_id", "received_messages", ["thread_msg_id"])
    op.create_index("ix_received_messages_pathway_state", "received_messages", ["pathway_state"])
    op.create_index("ix_received_messages_patient_ref", "received_messages", ["patient_ref"])

    op.create_table(
        "pathways",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("patient_ref", sa.String(64), nullable=False),
        sa.Column("patient_masked", sa.String(16), nullable=False),
        sa.Column("receiver_her_id", sa.BigInteger(), nullable=False),
        sa.Column("kommunenummer", sa.String(4), nullable=True),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("source_msg_id", sa.String(36), nullable=False),
        sa.Column("assigned_to", sa.String(255), nullable=True),
        sa.Column("opened_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pathways"),
        sa.UniqueConstraint("patient_ref", name="uq_pathways_patient_ref"),
    )

    op.create_table(
        "pathway_points",
        sa.Column("pathway_id", _row_id(), nullable=False),
        sa.Column("course", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("number", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("performer", sa.String(32), nullable=False),
        sa.Column("due_from", sa.Date(), nullable=False),
        sa.Column("due_to", sa.Date(), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("changed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("pathway_id", "course", "number", name="pk_pathway_points"),
        sa.ForeignKeyConstraint(
            ["pathway_id"], ["pathways.id"], name="fk_pathway_points_pathway_id_pathways"
        ),
    )
    op.create_index("ix_pathway_points_state_due_from", "pathway_points", ["state", "due_from"])

    op.create_table(
        "pathway_events",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("pathway_id", _row_id(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("course", sa.SmallInteger(), nullable=True),
        sa.Column("number", sa.SmallInteger(), nullable=True),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pathway_events"),
        sa.ForeignKeyConstraint(
            ["pathway_id"], ["pathways.id"], name="fk_pathway_events_pathway_id_pathways"
        ),
    )
    op.create_index("ix_pathway_events_pathway_id_id", "pathway_events", ["pathway_id", "id"])

    op.create_table(
        "pathway_alerts",
        sa.Column("pathway_id", _row_id(), nullable=False),
        sa.Column("course", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("number", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("raised_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("pathway_id", "course", "number", "kind", name="pk_pathway_alerts"),
        sa.ForeignKeyConstraint(
            ["pathway_id"], ["pathways.id"], name="fk_pathway_alerts_pathway_id_pathways"
        ),
    )

    op.create_table(
        "pathway_notes",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("pathway_id", _row_id(), nullable=False),
        sa.Column("course", sa.SmallInteger(), nullable=False),
        sa.Column("number", sa.SmallInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("asked_at", _utc(), nullable=False),
        sa.Column("asked_by", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_at", _utc(), nullable=True),
        sa.Column("request_ref", sa.String(36), nullable=True),
        sa.Column("msg_id", sa.String(36), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pathway_notes"),
        sa.ForeignKeyConstraint(["pathway_id"], ["pathways.id"], name="fk_pathway_notes_pathway_id_pathways"),
    )
    op.create_index("ix_pathway_notes_state_id", "pathway_notes", ["state", "id"])
    op.create_index("ix_pathway_notes_pathway_id", "pathway_notes", ["pathway_id"])


def downgrade() -> None:
    """Drop the six tables (received documents and every pathway with its history are lost)."""
    for table in (
        "pathway_notes",
        "pathway_alerts",
        "pathway_events",
        "pathway_points",
        "pathways",
        "received_messages",
    ):
        op.drop_table(table)
