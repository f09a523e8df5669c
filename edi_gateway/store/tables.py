"""The schema: SQLAlchemy Core tables, portable between SQLite and PostgreSQL.

This metadata is the reference the Alembic migrations are checked against (``tests/store``); a
change here needs a new revision in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

# Explicit constraint names, so a migration can address every constraint by name on both databases.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UUID_LEN = 36
STATE_LEN = 32
APPREC_ID_MAX_LEN = 255
"""The longest AppRec ``Id`` the ``apprecs`` table keeps (the XSD does not bound it; ours are UUIDs)."""


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    SQLite keeps datetimes as text without an offset, so values are stored as naive UTC there and
    get their UTC zone back on read; PostgreSQL keeps ``timestamptz`` and returns aware values.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes (their zone is a guess) and store the UTC instant."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store keeps timezone-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the database handed back."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL (indexable, compact)."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def event_id_type() -> sa.types.TypeEngine[int]:
    """BIGINT identity on PostgreSQL; SQLite only autoincrements an ``INTEGER PRIMARY KEY``."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("ref", sa.String(UUID_LEN), primary_key=True),
    sa.Column("request_id", sa.String(UUID_LEN), nullable=True, unique=True),
    sa.Column("state", sa.String(STATE_LEN), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("samhandlingspunkt", sa.SmallInteger(), nullable=True),
    sa.Column("consent", sa.Boolean(), nullable=True),
    sa.Column("send_to_fastlege", sa.Boolean(), nullable=True),
    sa.Column("kommunenummer", sa.String(4), nullable=True),
    sa.Column("sender_unit_her_id", sa.BigInteger(), nullable=True),
    sa.Column("problems", json_type(), nullable=False),
    sa.Column("amqp_message_id", sa.String(255), nullable=True),
    sa.Column("amqp_correlation_id", sa.String(255), nullable=True),
    sa.Index(None, "state", "received_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("msg_id", sa.String(UUID_LEN), primary_key=True),
    sa.Column("request_ref", sa.String(UUID_LEN), sa.ForeignKey("requests.ref"), nullable=False),
    sa.Column("receiver_kind", sa.String(16), nullable=False),
    sa.Column("receiver_org_her_id", sa.BigInteger(), nullable=False),
    sa.Column("receiver_her_id", sa.BigInteger(), nullable=False),
    # "<receiver_her_id>/<conversation_ref or ->": NULL never equals NULL in a UNIQUE constraint,
    # so a nullable conversation_ref in the key would let one request get two first messages.
    sa.Column("receiver_key", sa.String(100), nullable=False),
    sa.Column("receiver_name", sa.String(500), nullable=False),
    sa.Column("queue", sa.String(255), nullable=False),
    sa.Column("kommunenummer", sa.String(4), nullable=True),
    sa.Column("state", sa.String(STATE_LEN), nullable=False),
    sa.Column("signed_xml", sa.LargeBinary(), nullable=False),
    sa.Column("msg_type", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("sent_at", UtcDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("conversation_ref", sa.String(UUID_LEN), nullable=True),
    sa.Column("deadline_at", UtcDateTime(), nullable=True),
    # Set once, by the first transition to sent; the AppRec deadline counts from it (revision 0002).
    sa.Column("first_sent_at", UtcDateTime(), nullable=True),
    sa.Column("resends", sa.Integer(), nullable=False, server_default=sa.text("0")),
    # The transport that accepted it, its id there (NHN's message id) and NHN's delivery state (0006).
    sa.Column("transport", sa.String(16), nullable=True),
    sa.Column("transport_id", sa.String(64), nullable=True),
    sa.Column("transport_state", sa.String(32), nullable=True),
    sa.Index("ix_messages_transport_id", "transport_id"),
    # Its index (request_ref first) also serves messages_for_request; no separate index needed.
    sa.UniqueConstraint("request_ref", "receiver_key"),
    sa.Index(None, "state", "updated_at"),
    sa.Index(None, "state", "first_sent_at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("request_ref", sa.String(UUID_LEN), sa.ForeignKey("requests.ref"), nullable=False),
    sa.Column("msg_id", sa.String(UUID_LEN), sa.ForeignKey("messages.msg_id"), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("from_state", sa.String(STATE_LEN), nullable=True),
    sa.Column("to_state", sa.String(STATE_LEN), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("details", json_type(), nullable=True),
    sa.Index(None, "request_ref", "at"),
    sa.Index(None, "msg_id", "at"),
)


# AppRecs that answer one of our messages (only those: the rest is parked, so the FK holds).
apprecs = sa.Table(
    "apprecs",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    # Unique: decide() treats the AppRec id as the key of a redelivery, so a second row under one id
    # can only come from two workers racing on copies of one AppRec; the loser retries and sees it.
    sa.Column("apprec_id", sa.String(APPREC_ID_MAX_LEN), nullable=False),
    sa.Column("msg_id", sa.String(UUID_LEN), sa.ForeignKey("messages.msg_id"), nullable=False),
    sa.Column("version", sa.String(8), nullable=False),
    sa.Column("status", sa.SmallInteger(), nullable=False),
    sa.Column("errors", json_type(), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("sender_her_id", sa.BigInteger(), nullable=True),
    sa.Column("outcome", sa.String(STATE_LEN), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("signature", sa.String(16), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("raw", sa.LargeBinary(), nullable=False),
    sa.Index(None, "apprec_id", unique=True),
    sa.Index(None, "msg_id"),
)

# Inbound documents set aside for an operator. Ids are free text: a parked document may name a
# MsgId we never sent, or ids of any length, and parking it must not fail on that.
parked = sa.Table(
    "parked",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("raw", sa.LargeBinary(), nullable=False),
    sa.Column("amqp_message_id", sa.String(255), nullable=True),  # an AMQP shortstr: 255 at most
    sa.Column("apprec_id", sa.Text(), nullable=True),
    sa.Column("msg_id", sa.Text(), nullable=True),
    sa.Column("details", json_type(), nullable=True),
    sa.Column("resolved_at", UtcDateTime(), nullable=True),
    sa.Column("resolved_by", sa.String(255), nullable=True),
    sa.Column("resolution", sa.Text(), nullable=True),
    sa.Index(None, "received_at"),
    sa.Index(None, "resolved_at"),
)

receiver_health = sa.Table(
    "receiver_health",
    metadata,
    sa.Column("her_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("consecutive_overdue", sa.Integer(), nullable=False),
    sa.Column("quiet", sa.Boolean(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)


# Singleton jobs shared by every worker (the overdue sweep, the delivery-status poll): the one
# process whose lease has not expired runs the job (revision 0007).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
)


def receiver_key(receiver_her_id: int, conversation_ref: str | None) -> str:
    """Return the key that makes (request, receiver, conversation) unique without NULL in it."""
    return f"{receiver_her_id}/{conversation_ref or '-'}"


# -- operators (revision 0003) -------------------------------------------------------------------

USERNAME_LEN = 64

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("username", sa.String(USERNAME_LEN), primary_key=True),
    sa.Column("display_name", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # An argon2 encoded hash (algorithm, parameters and salt included), never the password.
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    # Revision 0005. A web session carries the epoch it began in and is good only while the account
    # still has that epoch: logout, a new password, a new role or disabling bump it, ending every
    # session of the account at once, also a stolen cookie replayed later.
    sa.Column("session_epoch", sa.Integer(), nullable=False, server_default=sa.text("0")),
    # When an admin last cleared the account's failed logins: every web process drops the failures
    # it counted for the username when it sees this change (the counts live in process memory).
    sa.Column("logins_reset_at", UtcDateTime(), nullable=True),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(USERNAME_LEN), sa.ForeignKey("operators.username"), nullable=False),
    sa.Column("label", sa.String(255), nullable=False),
    # sha256 of the token: tokens are 32 random bytes, so a fast unsalted hash cannot be reversed,
    # and the exact-match lookup stays one indexed query.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    # Revision 0005: a token works until then only; a row without it (none are written so) works never.
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Index(None, "username"),
)

# Append-only: the store inserts and searches, never updates or deletes. No foreign keys, so an
# entry outlives the account or message it names and may name actors that are not accounts.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("username", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("msg_id", sa.String(UUID_LEN), nullable=True),
    sa.Column("request_ref", sa.String(UUID_LEN), nullable=True),
    # A keyed hash (HMAC-SHA256, hex) of the person number, never the number itself.
    sa.Column("patient_ref", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("details", json_type(), nullable=True),
    sa.Index(None, "at"),
    sa.Index(None, "username", "at"),
    sa.Index(None, "msg_id"),
    sa.Index(None, "patient_ref"),
)

# One row per operator replay that made a new message (rebuild, edit). An edit's request body is
# kept here, not in events or the audit log: it holds patient data, and a later rebuild of the new
# message must start from the edited request, not from the original one.
replays = sa.Table(
    "replays",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("username", sa.String(USERNAME_LEN), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("old_msg_id", sa.String(UUID_LEN), sa.ForeignKey("messages.msg_id"), nullable=False),
    sa.Column("new_msg_id", sa.String(UUID_LEN), sa.ForeignKey("messages.msg_id"), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("request_body", sa.LargeBinary(), nullable=True),
    sa.Index(None, "old_msg_id"),
    sa.Index(None, "new_msg_id", unique=True),
)

# Revision 0008. What an operator asked for in the web UI or API (a replay) and a worker carries out:
# the web process never publishes. The operator's identity is the one the web verified, recorded once
# here; the worker acts on it. An edit's request body holds patient data and is cleared when the
# action is finished. ``state``: pending → running → done | refused | failed.
operator_actions = sa.Table(
    "operator_actions",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("requested_at", UtcDateTime(), nullable=False),
    sa.Column("username", sa.String(USERNAME_LEN), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("display_name", sa.String(255), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("msg_id", sa.String(UUID_LEN), sa.ForeignKey("messages.msg_id"), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("request_body", sa.LargeBinary(), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("claimed_by", sa.String(200), nullable=True),
    sa.Column("claimed_at", UtcDateTime(), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", json_type(), nullable=True),
    sa.Index(None, "state", "id"),
    sa.Index(None, "msg_id"),
)


# -- the receiving side and the pathway worklist (revision 0009) ---------------------------------

PATIENT_REF_LEN = 64
MASKED_PATIENT_LEN = 16

# Business documents received on our inbox (a kommune's services, or replies to the hospital):
# stored before their AppRec is sent, with that AppRec, so a redelivery sends the same AppRec again
# (or none, once it went out) and never a second one. Only documents whose signature verified against
# the claimed sender's certificate are kept here: the rest are parked. Key: the sender and its MsgId.
received_messages = sa.Table(
    "received_messages",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("msg_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("sender_her_id", sa.BigInteger(), nullable=False),
    sa.Column("receiver_her_id", sa.BigInteger(), nullable=False),
    # The nested Organisation (service) or HealthcareProfessional the message is addressed to.
    sa.Column("addressed_her_id", sa.BigInteger(), nullable=True),
    sa.Column("msg_type", sa.String(64), nullable=False),
    sa.Column("conversation_ref", sa.String(UUID_LEN), nullable=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    # The document exactly as received (signed); patient data lives here and in nothing below.
    sa.Column("body", sa.LargeBinary(), nullable=False),
    # A keyed hash of the person number, and the number masked for lists (``010180*****``).
    sa.Column("patient_ref", sa.String(PATIENT_REF_LEN), nullable=True),
    sa.Column("patient_masked", sa.String(MASKED_PATIENT_LEN), nullable=True),
    sa.Column("apprec_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("apprec_status", sa.SmallInteger(), nullable=False),
    sa.Column("apprec_errors", json_type(), nullable=False),
    sa.Column("apprec_body", sa.LargeBinary(), nullable=False),
    sa.Column("apprec_sent_at", UtcDateTime(), nullable=True),
    # When the edi.inbound event went out (confirmed by the broker).
    sa.Column("announced_at", UtcDateTime(), nullable=True),
    # pending → applied | conflict | ignored for a behovskartlegging; NULL for anything else.
    sa.Column("pathway_state", sa.String(16), nullable=True),
    # Hospital side: the message of ours this one answers (ConversationRef/RefToParent), if we sent it.
    sa.Column("thread_msg_id", sa.String(UUID_LEN), nullable=True),
    # The transport's id of the delivery (NHN's message id): its AppRec operation answers by it.
    sa.Column("transport_id", sa.String(64), nullable=True),
    sa.UniqueConstraint("sender_her_id", "msg_id"),
    sa.Index(None, "received_at"),
    sa.Index(None, "thread_msg_id"),
    sa.Index(None, "pathway_state"),
    sa.Index(None, "patient_ref"),
)

# One pathway per patient in this kommune's worklist. ``document`` is the whole aggregate
# (domain.pathway.Pathway: courses, points, assignment; its history is in pathway_events), written
# with ``version`` + 1 under a guarded UPDATE so two workers or operators never overwrite each other.
pathways = sa.Table(
    "pathways",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("patient_ref", sa.String(PATIENT_REF_LEN), nullable=False, unique=True),
    sa.Column("patient_masked", sa.String(MASKED_PATIENT_LEN), nullable=False),
    sa.Column("receiver_her_id", sa.BigInteger(), nullable=False),
    sa.Column("kommunenummer", sa.String(4), nullable=True),
    sa.Column("model_name", sa.String(64), nullable=False),
    sa.Column("source_msg_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("assigned_to", sa.String(255), nullable=True),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("document", json_type(), nullable=False),
)

# The points of every pathway's courses, kept in step with ``pathways.document`` (same transaction),
# so worklists and reports are plain queries.
pathway_points = sa.Table(
    "pathway_points",
    metadata,
    sa.Column("pathway_id", event_id_type(), sa.ForeignKey("pathways.id"), primary_key=True),
    sa.Column("course", sa.SmallInteger(), primary_key=True, autoincrement=False),
    sa.Column("number", sa.SmallInteger(), primary_key=True, autoincrement=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("performer", sa.String(32), nullable=False),
    sa.Column("due_from", sa.Date(), nullable=False),
    sa.Column("due_to", sa.Date(), nullable=True),
    sa.Column("state", sa.String(STATE_LEN), nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
    sa.Index(None, "state", "due_from"),
)

# Append-only history of every pathway: each point move, assignment, restart, with time, actor and
# reason. The store inserts, never updates or deletes.
pathway_events = sa.Table(
    "pathway_events",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("pathway_id", event_id_type(), sa.ForeignKey("pathways.id"), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("course", sa.SmallInteger(), nullable=True),
    sa.Column("number", sa.SmallInteger(), nullable=True),
    sa.Column("from_state", sa.String(STATE_LEN), nullable=True),
    sa.Column("to_state", sa.String(STATE_LEN), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("details", json_type(), nullable=True),
    sa.Index(None, "pathway_id", "id"),
)

# Alerts raised for a point (due soon, overdue): each one once, so the sweep does not repeat it.
pathway_alerts = sa.Table(
    "pathway_alerts",
    metadata,
    sa.Column("pathway_id", event_id_type(), sa.ForeignKey("pathways.id"), primary_key=True),
    sa.Column("course", sa.SmallInteger(), primary_key=True, autoincrement=False),
    sa.Column("number", sa.SmallInteger(), primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("raised_at", UtcDateTime(), nullable=False),
)

# A note to the patient's fastlege asked for on a completed point (revision 0009), written in the same
# transaction as the point's move; a worker turns it into a message (request + message rows, built,
# signed, delivered and tracked like the hospital's). ``state``: pending → sent | failed.
pathway_notes = sa.Table(
    "pathway_notes",
    metadata,
    sa.Column("id", event_id_type(), primary_key=True, autoincrement=True),
    sa.Column("pathway_id", event_id_type(), sa.ForeignKey("pathways.id"), nullable=False),
    sa.Column("course", sa.SmallInteger(), nullable=False),
    sa.Column("number", sa.SmallInteger(), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("asked_at", UtcDateTime(), nullable=False),
    sa.Column("asked_by", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("claimed_by", sa.String(200), nullable=True),
    sa.Column("claimed_at", UtcDateTime(), nullable=True),
    sa.Column("request_ref", sa.String(UUID_LEN), nullable=True),
    sa.Column("msg_id", sa.String(UUID_LEN), nullable=True),
    sa.Column("outcome", sa.Text(), nullable=True),
    sa.Index(None, "state", "id"),
    sa.Index(None, "pathway_id"),
)
