"""Who may do what: operator accounts, API tokens, roles, the audit log, and audited reveals.

Three roles, ordered ``viewer < operator < admin``: a viewer finds and inspects (masked person
numbers only), an operator also reveals a patient's person number or a message's payload and replays
messages, an admin also manages accounts and searches the audit log. Every reveal and replay writes an
audit entry with the operator's reason.

The audit log holds no readable person number. An entry about a patient stores a *keyed hash* of
the person number (HMAC-SHA256 with a per-installation secret, the *patient key*): an admin who
enters the person number gets the same hash and so finds every entry about that patient, while the
log alone (a database dump, a backup, a report export) tells nobody who the patient was. A plain
hash would not do: there are only some tens of millions of possible person numbers, so hashing
each candidate and comparing is quick; without the key that search is impossible. The key lives
outside the database, in ``<EDI_GATEWAY_HOME>/patient-ref.key`` (32 random bytes, created on first
use, readable by the owner only). Every process of one installation (workers, web, CLI) must use
the same key, so with several machines copy the file to each; a lost key makes old entries
unsearchable by patient, never readable.

Web sessions can be ended by the server: each account has a *session epoch* that a session records
when it begins (``session_epoch``) and that must still match on every request (``session_operator``).
Logout, a new password, a new role and disabling the account bump it, ending all of the account's
sessions. API tokens expire (``TOKEN_DAYS`` by default) and can be revoked by their owner or an
admin (``revoke_token_as``). An admin's ``reset_login_failures`` stamps the account so that every web
process forgets the failed logins it counted for it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edi_gateway.errors import EdiGatewayError, PermanentError
from edi_gateway.private_files import secret
from edi_gateway.services import queries
from edi_gateway.settings import Settings
from edi_gateway.store import MessageNotFound, Store
from edi_gateway.store.operators import AuditRecord, NewAuditEntry, OperatorRecord, TokenRecord

PATIENT_KEY_FILE = "patient-ref.key"
PATIENT_KEY_BYTES = 32
TOKEN_PREFIX = "egw_"  # noqa: S105 - not a secret: lets scanners and people recognise a leaked token
TOKEN_BYTES = 32
TOKEN_DAYS = 90
"""How long a new API token works unless its creator says otherwise."""
MAX_TOKEN_DAYS = 730
MIN_PASSWORD_LENGTH = 12
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

_hasher = PasswordHasher()
_patient_keys: weakref.WeakKeyDictionary[Store, bytes] = weakref.WeakKeyDictionary()


class Role(StrEnum):
    """What an account may do; each role may do everything the ones before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= Role(needed).rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Operator:
    """A signed-in person (or an API client acting for one)."""

    username: str
    role: Role
    display_name: str

    @property
    def actor(self) -> str:
        """The name events and audit entries record: ``operator:<username>``."""
        return f"operator:{self.username}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit entry as shown to an admin.

    Attributes:
        patient_ref: the keyed hash of the person number concerned (never the number).
        request_ref: the internal ref of the request of ``msg_id``, when a message was named.
    """

    at: datetime
    username: str
    action: str
    msg_id: str | None
    patient_ref: str | None
    reason: str
    details: dict[str, Any] | None
    request_ref: str | None = None


class AccessDenied(PermanentError):
    """The operator is not signed in, or their role does not allow the action."""


class InvalidAccount(PermanentError):
    """An account cannot be created or used as asked (bad username, short password, unknown name)."""


class PatientKeyMissing(EdiGatewayError):
    """A store was used for audit entries about patients before the installation's key was bound."""


class ReasonRequired(PermanentError):
    """An audited action (a reveal, a replay) was asked for without a reason."""


class TokenNotFound(PermanentError):
    """No API token has this id (404 on the API)."""

    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        super().__init__(f"no API token with id {token_id}")


# -- accounts and sign-in ------------------------------------------------------------------------


def create_operator(
    store: Store, username: str, password: str, role: Role, display_name: str = ""
) -> Operator:
    """Create an enabled account with an argon2-hashed password.

    Args:
        store: the store.
        username: 1-64 characters of ``a-z 0-9 . _ -``, starting with a letter or digit.
        password: at least ``MIN_PASSWORD_LENGTH`` characters; only its hash is stored.
        role: the account's role.
        display_name: the name shown in the UI (default: the username).

    Raises:
        InvalidAccount: the username or password is not acceptable.
        OperatorExists: the username is taken.
    """
    if _USERNAME.fullmatch(username) is None:
        raise InvalidAccount(
            "a username has 1-64 characters a-z, 0-9, '.', '_' or '-', starting with a-z or 0-9"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidAccount(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    record = store.add_operator(
        username,
        display_name=display_name or username,
        role=Role(role).value,
        password_hash=_hasher.hash(password),
    )
    return _operator(record)


def authenticate(store: Store, username: str, password: str) -> Operator | None:
    """Return the operator when the password is right and the account enabled; otherwise None.

    An unknown or disabled account costs the same argon2 verification as a known one, so the answer
    time does not tell which usernames exist.
    """
    record = store.get_operator(username)
    if record is None:
        _verify(_dummy_hash(), password)
        return None
    if not _verify(record.password_hash, password) or record.disabled:
        return None
    if _hasher.check_needs_rehash(record.password_hash):  # the installation raised the argon2 cost
        store.set_password_hash(username, _hasher.hash(password), end_sessions=False)
    return _operator(record)


def set_password(store: Store, username: str, password: str) -> None:
    """Give an account a new password; every web session of the account ends.

    Raises:
        InvalidAccount: the password is too short, or no account has this username.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidAccount(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if not store.set_password_hash(username, _hasher.hash(password)):
        raise InvalidAccount(f"no operator named {username!r}")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(_hasher.hash(secrets.token_hex(16)))
    return _dummy[0]


def set_role(store: Store, username: str, role: Role) -> None:
    """Give an account another role; every web session of the account ends (it signs in again).

    Raises:
        InvalidAccount: no account has this username.
    """
    if not store.set_operator_role(username, Role(role).value):
        raise InvalidAccount(f"no operator named {username!r}")


def end_sessions(store: Store, username: str) -> None:
    """End every web session of an account (logout ends them all: a copied cookie is useless after)."""
    store.end_sessions(username)


def session_epoch(store: Store, username: str) -> int | None:
    """The account's current session epoch, which a new web session records; None for no account."""
    record = store.get_operator(username)
    return record.session_epoch if record is not None else None


def session_operator(store: Store, username: str, epoch: object) -> Operator | None:
    """The operator of a web session that began in ``epoch``, while it is still good; otherwise None.

    Read on every request: logout, a new password, a new role or disabling the account ends it at once.
    """
    record = store.get_operator(username)
    if record is None or record.disabled or record.session_epoch != epoch:
        return None
    return _operator(record)


def logins_reset_at(store: Store, username: str) -> datetime | None:
    """When an admin last cleared the account's failed logins (None: never, or no such account)."""
    record = store.get_operator(username)
    return record.logins_reset_at if record is not None else None


def reset_login_failures(store: Store, admin: Operator | None, username: str) -> None:
    """Clear an account's failed logins in every web process (ADMIN), and audit it.

    Raises:
        AccessDenied: the operator is not an admin.
        InvalidAccount: no account has this username.
    """
    who = require(admin, Role.ADMIN)
    if not store.reset_login_failures(username):
        raise InvalidAccount(f"no operator named {username!r}")
    audit(store, who, action="reset_login_failures", reason="unlock", details={"username": username})


def create_token(store: Store, username: str, *, label: str, expires_days: int = TOKEN_DAYS) -> str:
    """Create an API token for an account and return it; it is shown this once and stored only hashed.

    Args:
        store: the store.
        username: the account the token acts for.
        label: what the token is for.
        expires_days: the token stops working this many days from now (1 to ``MAX_TOKEN_DAYS``).

    Raises:
        InvalidAccount: no account has this username, or the expiry is out of range.
    """
    if not 1 <= expires_days <= MAX_TOKEN_DAYS:
        raise InvalidAccount(f"a token expires after 1 to {MAX_TOKEN_DAYS} days")
    if store.get_operator(username) is None:
        raise InvalidAccount(f"no operator named {username!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    store.add_api_token(
        username, label=label, token_hash=_token_hash(token), valid_for=timedelta(days=expires_days)
    )
    return token


def tokens_visible_to(store: Store, operator: Operator) -> list[TokenRecord]:
    """The API tokens an operator may see and revoke: their own, or every account's for an admin."""
    return store.list_api_tokens(None if operator.role is Role.ADMIN else operator.username)


def revoke_token_as(store: Store, operator: Operator | None, token_id: int) -> TokenRecord:
    """Revoke a token for good: one's own, or any for an admin; audited. Return it as it now is.

    Revoking a token that is revoked already changes nothing and is not an error.

    Raises:
        AccessDenied: nobody is signed in, or the token is another account's and the operator no admin.
        TokenNotFound: no token has this id.
    """
    who = require(operator, Role.VIEWER)
    token = store.get_api_token(token_id)
    if token is None:
        raise TokenNotFound(token_id)
    if token.username != who.username:
        require(who, Role.ADMIN)
    if store.revoke_api_token(token_id):
        details = {"token_id": token_id, "username": token.username}
        audit(store, who, action="revoke_token", reason="revoke", details=details)
    revoked = store.get_api_token(token_id)
    return revoked if revoked is not None else token  # tokens are revoked, never deleted


def authenticate_token(store: Store, token: str) -> Operator | None:
    """Return the operator of a live (not revoked, not expired) token of an enabled account; else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    record = store.use_api_token(_token_hash(token))
    if record is None or record.disabled:
        return None
    return _operator(record)


def _token_hash(token: str) -> str:
    # A token carries 256 random bits: a fast hash is enough (nothing to guess), and an exact-match
    # index finds it; argon2 would need the token's id to find the row first.
    return hashlib.sha256(token.encode()).hexdigest()


def require(operator: Operator | None, role: Role) -> Operator:
    """Return ``operator`` when it may act as ``role``.

    Raises:
        AccessDenied: nobody is signed in, or the role is too low.
    """
    if operator is None:
        raise AccessDenied("sign in first")
    if not operator.role.allows(role):
        raise AccessDenied(
            f"{operator.username} is {operator.role.value}; this needs the {Role(role).value} role"
        )
    return operator


def enabled_operator(store: Store, username: str) -> Operator | None:
    """The operator an enabled account names, or None (no such account, or disabled).

    Read on every use: a disabled account or a changed role takes effect at once.
    """
    record = store.get_operator(username)
    if record is None or record.disabled:
        return None
    return _operator(record)


def _operator(record: OperatorRecord) -> Operator:
    return Operator(username=record.username, role=Role(record.role), display_name=record.display_name)


# -- the patient key -----------------------------------------------------------------------------


def load_patient_key(settings: Settings) -> bytes:
    """Return the installation's patient key from ``<HOME>/patient-ref.key``, creating it on first use."""
    path = settings.home / PATIENT_KEY_FILE
    # Created once, owner-only and atomically: two processes starting at once read the same key.
    return _checked_key(
        path, secret(path, lambda: secrets.token_bytes(PATIENT_KEY_BYTES), min_bytes=PATIENT_KEY_BYTES)
    )


def _checked_key(path: Path, key: bytes) -> bytes:
    if len(key) != PATIENT_KEY_BYTES:
        raise InvalidAccount(f"the patient key file {path.name} under EDI_GATEWAY_HOME is damaged")
    return key


def bind_patient_key(store: Store, key: bytes) -> None:
    """Use ``key`` for the patient refs of audit entries written and searched through ``store``."""
    _patient_keys[store] = key


def patient_ref_for(store: Store, person_id: str) -> str:
    """Return the keyed hash an audit entry stores for a person number (hex).

    Raises:
        PatientKeyMissing: no key is bound to ``store`` (``open_gateway`` binds the installation's).
    """
    key = _patient_keys.get(store)
    if key is None:
        raise PatientKeyMissing("no patient key is bound to this store; open it through open_gateway")
    return hmac.new(key, person_id.strip().encode(), hashlib.sha256).hexdigest()


# -- the audit log -------------------------------------------------------------------------------


def audit(
    store: Store,
    operator: Operator,
    *,
    action: str,
    reason: str,
    msg_id: str | None = None,
    patient_ref: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append an entry to the audit log (it is never changed or deleted).

    Args:
        store: the store.
        operator: who acted.
        action: a stable word for what was done (``reveal_patient``, ``replay`` ...).
        reason: the operator's reason, in their words.
        msg_id: the message concerned, if any.
        patient_ref: the person number of the patient concerned, if any; only its keyed hash is stored.
        details: ids, codes and outcomes; never personal data.
    """
    ref = patient_ref_for(store, patient_ref) if patient_ref else None
    store.append_audit(
        NewAuditEntry(
            username=operator.username,
            action=action,
            reason=reason,
            msg_id=msg_id,
            patient_ref=ref,
            details=details,
        )
    )


def search_audit(
    store: Store,
    *,
    patient: str | None = None,
    operator: str | None = None,
    msg_id: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Return the audit entries matching every condition given, newest first.

    Args:
        store: the store.
        patient: a person number: entries about that patient (matched by its keyed hash).
        operator: a username: entries of that operator.
        msg_id: entries about that message.
        limit: at most this many.
    """
    ref = patient_ref_for(store, patient) if patient else None
    found = store.search_audit(username=operator, msg_id=msg_id, patient_ref=ref, limit=limit)
    return [_entry(r) for r in found]


def search_audit_as(
    store: Store,
    admin: Operator | None,
    *,
    reason: str,
    patient: str | None = None,
    by_operator: str | None = None,
    msg_id: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Search the audit log for an admin (``search_audit``), and audit the search itself.

    The entries found come first; the search's own entry (``search_audit``, naming the patient searched
    for, keyed) is written after, so it is in the next search, not this one.

    Raises:
        AccessDenied: the operator is not an admin.
    """
    who = require(admin, Role.ADMIN)
    found = search_audit(store, patient=patient, operator=by_operator, msg_id=msg_id, limit=limit)
    asked = {"operator": by_operator, "msg_id": msg_id, "by_patient": patient is not None}
    audit(store, who, action="search_audit", reason=reason, patient_ref=patient, details=asked)
    return found


def _entry(record: AuditRecord) -> AuditEntry:
    return AuditEntry(
        at=record.at,
        username=record.username,
        action=record.action,
        msg_id=record.msg_id,
        patient_ref=record.patient_ref,
        reason=record.reason,
        details=record.details,
        request_ref=record.request_ref,
    )


# -- audited reveals -----------------------------------------------------------------------------


def reveal_patient_id(store: Store, operator: Operator | None, msg_id: str, *, reason: str) -> str:
    """Return the full person number of a message's patient, and audit who asked and why.

    Raises:
        AccessDenied: the operator lacks the operator role.
        ReasonRequired: no reason was given.
        MessageNotFound: no message has this msg_id.
    """
    who, reason = check_reason(operator, reason)
    person_id = _person_id(store, msg_id)
    audit(store, who, action="reveal_patient", reason=reason, msg_id=msg_id, patient_ref=person_id)
    return person_id


def reveal_payload(store: Store, operator: Operator | None, msg_id: str, *, reason: str) -> bytes:
    """Return a message's stored signed XML, and audit who asked and why.

    Raises:
        AccessDenied: the operator lacks the operator role.
        ReasonRequired: no reason was given.
        MessageNotFound: no message has this msg_id.
    """
    who, reason = check_reason(operator, reason)
    payload = queries.signed_xml(store, msg_id)
    if payload is None:
        raise MessageNotFound(msg_id)
    person_id = queries.patient_id_of(store, msg_id)
    audit(store, who, action="reveal_payload", reason=reason, msg_id=msg_id, patient_ref=person_id)
    return payload


def reveal_request(store: Store, operator: Operator | None, msg_id: str, *, reason: str) -> bytes:
    """Return the request a message was built from (for an edit replay, the edited one), and audit it.

    Raises:
        AccessDenied: the operator lacks the operator role.
        ReasonRequired: no reason was given.
        MessageNotFound: no message has this msg_id.
    """
    who, reason = check_reason(operator, reason)
    body = queries.request_body_of(store, msg_id)
    if body is None:
        raise MessageNotFound(msg_id)
    person_id = queries.patient_id_of(store, msg_id)
    audit(store, who, action="reveal_request", reason=reason, msg_id=msg_id, patient_ref=person_id)
    return body


def check_reason(operator: Operator | None, reason: str, role: Role = Role.OPERATOR) -> tuple[Operator, str]:
    """Return the operator (when ``role`` allows) and the stripped reason.

    Raises:
        AccessDenied: the operator lacks ``role``.
        ReasonRequired: the reason is empty.
    """
    who = require(operator, role)
    if not reason.strip():
        raise ReasonRequired("give a reason: it is written to the audit log")
    return who, reason.strip()


def _person_id(store: Store, msg_id: str) -> str:
    person_id = queries.patient_id_of(store, msg_id)
    if person_id is None:
        raise MessageNotFound(msg_id)
    return person_id
