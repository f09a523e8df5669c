"""Accounts, passwords, API tokens, roles, the audit log and audited reveals, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from edi_gateway.services.access import (
    MAX_TOKEN_DAYS,
    PATIENT_KEY_FILE,
    AccessDenied,
    InvalidAccount,
    Operator,
    ReasonRequired,
    Role,
    TokenNotFound,
    audit,
    authenticate,
    authenticate_token,
    bind_patient_key,
    create_operator,
    create_token,
    end_sessions,
    load_patient_key,
    require,
    reset_login_failures,
    reveal_patient_id,
    reveal_payload,
    revoke_token_as,
    search_audit,
    session_epoch,
    session_operator,
    set_password,
    set_role,
    tokens_visible_to,
)
from edi_gateway.services.context import Gateway
from edi_gateway.settings import Settings
from edi_gateway.store import Store
from edi_gateway.store.operators import OperatorExists, OperatorRecord
from edi_gateway.store.tables import api_tokens, audit_log
from tests.services.conftest import store_routed_request

PASSWORD = "correct horse battery"
PATIENT = "07926217857"  # the synthetic patient of the kommune-only example
OTHER_PATIENT = "18897219545"  # another synthetic patient of the registers


@pytest.fixture
def store(gateway: Gateway) -> Store:
    """The gateway's store."""
    return gateway.store


def _stored_message(gateway: Gateway) -> str:
    """Store a routed kommune-only request with its signed message (no broker); return the MsgId."""
    (message,) = store_routed_request(gateway, PATIENT)
    return message.msg_id


def _operator(store: Store, username: str = "kari", role: Role = Role.OPERATOR) -> Operator:
    return create_operator(store, username, PASSWORD, role, "Kari Vakt")


# -- passwords -----------------------------------------------------------------------------------


def test_the_right_password_signs_in_and_wrong_ones_do_not(store: Store) -> None:
    """authenticate returns the operator for the right password and None for a wrong one or unknown name."""
    created = _operator(store)
    assert authenticate(store, "kari", PASSWORD) == created == Operator("kari", Role.OPERATOR, "Kari Vakt")
    assert authenticate(store, "kari", PASSWORD + "!") is None
    assert authenticate(store, "nobody", PASSWORD) is None


def test_only_an_argon2_hash_of_the_password_is_stored(store: Store) -> None:
    """The stored hash is argon2id and does not contain the password."""
    _operator(store)
    record = store.get_operator("kari")
    assert record is not None
    assert record.password_hash.startswith("$argon2id$") and PASSWORD not in record.password_hash


def test_a_disabled_account_cannot_sign_in(store: Store) -> None:
    """A disabled account is refused even with the right password, and works again once enabled."""
    _operator(store)
    store.set_operator_disabled("kari", True)
    assert authenticate(store, "kari", PASSWORD) is None
    store.set_operator_disabled("kari", False)
    assert authenticate(store, "kari", PASSWORD) is not None


def test_a_new_password_replaces_the_old(store: Store) -> None:
    """After set_password the new password signs in and the old one no longer does."""
    _operator(store)
    set_password(store, "kari", "another long passphrase")
    assert authenticate(store, "kari", "another long passphrase") is not None
    assert authenticate(store, "kari", PASSWORD) is None


@pytest.mark.parametrize(
    ("username", "password"),
    [("Kari", PASSWORD), ("", PASSWORD), ("kari vakt", PASSWORD), ("k" * 65, PASSWORD), ("kari", "short")],
)
def test_bad_usernames_and_short_passwords_are_refused(store: Store, username: str, password: str) -> None:
    """Usernames outside a-z0-9._- (or too long) and passwords under 12 characters are refused."""
    with pytest.raises(InvalidAccount):
        create_operator(store, username, password, Role.VIEWER)
    assert store.list_operators() == []


def test_a_username_cannot_be_taken_twice(store: Store) -> None:
    """Creating an account with a taken username raises OperatorExists."""
    _operator(store)
    with pytest.raises(OperatorExists):
        _operator(store, role=Role.ADMIN)


# -- tokens --------------------------------------------------------------------------------------


def test_a_token_authenticates_its_account_and_is_stored_only_hashed(store: Store) -> None:
    """create_token returns a token that authenticates the account; the database holds only its hash."""
    created = _operator(store)
    token = create_token(store, "kari", label="monitoring")
    assert authenticate_token(store, token) == created
    with store._read() as conn:
        stored = conn.execute(sa.select(api_tokens.c.token_hash)).scalars().all()
    assert len(stored) == 1 and token not in stored[0]
    assert authenticate_token(store, token + "x") is None
    assert authenticate_token(store, "not-a-token") is None


def test_revoked_tokens_and_disabled_accounts_do_not_authenticate(store: Store) -> None:
    """A revoked token, or a token of a disabled account, authenticates nobody."""
    _operator(store)
    revoked, live = create_token(store, "kari", label="old"), create_token(store, "kari", label="new")
    store.revoke_api_token(store.list_api_tokens("kari")[0].id)
    assert authenticate_token(store, revoked) is None
    assert authenticate_token(store, live) is not None
    store.set_operator_disabled("kari", True)
    assert authenticate_token(store, live) is None


def test_a_token_for_an_unknown_account_is_refused(store: Store) -> None:
    """create_token refuses a username that has no account."""
    with pytest.raises(InvalidAccount):
        create_token(store, "nobody", label="x")


def test_a_token_expires_after_the_days_asked_for_and_the_range_is_bounded(store: Store) -> None:
    """create_token stamps an expiry expires_days after creation (default 90); 0 or too many days are refused."""
    _operator(store)
    create_token(store, "kari", label="default")
    create_token(store, "kari", label="short", expires_days=7)
    default, short = store.list_api_tokens("kari")
    assert default.expires_at is not None and short.expires_at is not None
    assert (default.expires_at - default.created_at).days == 90
    assert (short.expires_at - short.created_at).days == 7
    for days in (0, MAX_TOKEN_DAYS + 1):
        with pytest.raises(InvalidAccount):
            create_token(store, "kari", label="bad", expires_days=days)
    assert len(store.list_api_tokens("kari")) == 2


def test_an_operator_revokes_their_own_token_and_an_admin_anyone_s(store: Store) -> None:
    """revoke_token_as: own tokens for anyone, others' for admins only (403), unknown ids TokenNotFound."""
    kari, ola = _operator(store), _operator(store, "ola", Role.VIEWER)
    admin = _operator(store, "root", Role.ADMIN)
    kari_token, ola_token = create_token(store, "kari", label="k"), create_token(store, "ola", label="o")
    kari_id, ola_id = (t.id for t in store.list_api_tokens(None))
    assert [t.id for t in tokens_visible_to(store, ola)] == [ola_id]
    assert {t.id for t in tokens_visible_to(store, admin)} == {kari_id, ola_id}
    with pytest.raises(AccessDenied):
        revoke_token_as(store, ola, kari_id)
    assert authenticate_token(store, kari_token) is not None
    assert revoke_token_as(store, ola, ola_id).revoked_at is not None
    assert revoke_token_as(store, admin, kari_id).revoked_at is not None
    assert authenticate_token(store, kari_token) is None and authenticate_token(store, ola_token) is None
    with pytest.raises(TokenNotFound):
        revoke_token_as(store, kari, 10_000)
    revocations = [e for e in search_audit(store) if e.action == "revoke_token"]
    assert sorted((e.username, (e.details or {})["token_id"]) for e in revocations) == [
        ("ola", ola_id),
        ("root", kari_id),
    ]


# -- sessions and failed logins ------------------------------------------------------------------


def test_a_session_lasts_until_logout_new_password_new_role_or_disabling(store: Store) -> None:
    """session_operator accepts the epoch a session began in until one of the four events ends it."""
    _operator(store)
    ends = (
        lambda: end_sessions(store, "kari"),
        lambda: set_password(store, "kari", "another long passphrase"),
        lambda: set_role(store, "kari", Role.VIEWER),
        lambda: store.set_operator_disabled("kari", True),
    )
    for end in ends:
        epoch = session_epoch(store, "kari")
        assert session_operator(store, "kari", epoch) is not None
        end()
        assert session_operator(store, "kari", epoch) is None
    assert session_operator(store, "kari", session_epoch(store, "kari")) is None  # disabled
    store.set_operator_disabled("kari", False)
    assert session_operator(store, "kari", session_epoch(store, "kari")) == Operator(
        "kari", Role.VIEWER, "Kari Vakt"
    )
    assert session_operator(store, "nobody", 0) is None and session_epoch(store, "nobody") is None


def test_a_rehash_at_sign_in_keeps_the_session_epoch(store: Store) -> None:
    """When sign-in rehashes a password made with older argon2 parameters, sessions are not ended."""
    from argon2 import PasswordHasher

    _operator(store)
    store.set_password_hash("kari", PasswordHasher(time_cost=1).hash(PASSWORD))
    epoch = session_epoch(store, "kari")
    old_hash = _record(store).password_hash
    assert authenticate(store, "kari", PASSWORD) is not None
    assert _record(store).password_hash != old_hash
    assert session_epoch(store, "kari") == epoch


def _record(store: Store, username: str = "kari") -> OperatorRecord:
    found = store.get_operator(username)
    assert found is not None
    return found


def test_only_an_admin_clears_failed_logins_and_it_is_audited(store: Store) -> None:
    """reset_login_failures stamps the account for an admin and audits it; an operator gets AccessDenied."""
    kari, admin = _operator(store), _operator(store, "root", Role.ADMIN)
    with pytest.raises(AccessDenied):
        reset_login_failures(store, kari, "kari")
    assert _record(store).logins_reset_at is None
    reset_login_failures(store, admin, "kari")
    assert _record(store).logins_reset_at is not None
    (entry,) = [e for e in search_audit(store) if e.action == "reset_login_failures"]
    assert entry.username == "root" and entry.details == {"username": "kari"}
    with pytest.raises(InvalidAccount):
        reset_login_failures(store, admin, "nobody")


# -- roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.OPERATOR, Role.OPERATOR, True),
        (Role.OPERATOR, Role.ADMIN, False),
        (Role.ADMIN, Role.OPERATOR, True),
        (Role.ADMIN, Role.VIEWER, True),
    ],
)
def test_roles_are_ordered_viewer_operator_admin(role: Role, needed: Role, allowed: bool) -> None:
    """require lets a role do what it or any lower role may, and refuses the rest."""
    operator = Operator("kari", role, "Kari")
    if allowed:
        assert require(operator, needed) is operator
    else:
        with pytest.raises(AccessDenied):
            require(operator, needed)


def test_nobody_signed_in_is_refused() -> None:
    """require refuses when no operator is signed in."""
    with pytest.raises(AccessDenied):
        require(None, Role.VIEWER)


# -- the audit log -------------------------------------------------------------------------------


def test_audit_entries_are_found_per_patient_by_entering_the_person_number(store: Store) -> None:
    """An entry about a patient is found by the person number, though the log holds only a keyed hash."""
    kari = _operator(store)
    audit(store, kari, action="reveal_patient", reason="the nurse called", patient_ref=PATIENT)
    audit(store, kari, action="reveal_patient", reason="another patient", patient_ref=OTHER_PATIENT)
    audit(store, kari, action="search_audit", reason="no patient")

    (found,) = search_audit(store, patient=PATIENT)
    assert (found.username, found.action, found.reason) == ("kari", "reveal_patient", "the nurse called")
    assert found.patient_ref is not None and PATIENT not in found.patient_ref
    with store._read() as conn:
        stored = [json.dumps([str(v) for v in r]) for r in conn.execute(sa.select(audit_log))]
    assert not any(PATIENT in row or OTHER_PATIENT in row for row in stored)
    assert [e.reason for e in search_audit(store, operator="kari")] == [
        "no patient",
        "another patient",
        "the nurse called",
    ]


def test_another_installation_key_finds_nothing(store: Store, tmp_path: Path) -> None:
    """The patient ref depends on the installation's key: with another key the same number finds nothing."""
    kari = _operator(store)
    audit(store, kari, action="reveal_patient", reason="r", patient_ref=PATIENT)
    bind_patient_key(store, load_patient_key(Settings(home=tmp_path / "elsewhere")))
    assert search_audit(store, patient=PATIENT) == []


def test_the_patient_key_is_created_once_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    """load_patient_key creates a 32-byte key file with mode 0600 and returns the same key afterwards."""
    settings = Settings(home=tmp_path / "home")
    key = load_patient_key(settings)
    path = settings.home / PATIENT_KEY_FILE
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_patient_key(settings) == key


# -- reveals -------------------------------------------------------------------------------------


def test_an_operator_reveals_the_person_number_and_it_is_audited(gateway: Gateway) -> None:
    """reveal_patient_id returns the full person number and writes a reveal_patient entry with the reason."""
    store = gateway.store
    msg_id = _stored_message(gateway)
    kari = _operator(store)
    assert reveal_patient_id(store, kari, msg_id, reason="  kommune asked on the phone ") == PATIENT
    (entry,) = search_audit(store, patient=PATIENT)
    assert (entry.action, entry.msg_id, entry.reason) == (
        "reveal_patient",
        msg_id,
        "kommune asked on the phone",
    )
    assert entry.request_ref is not None


def test_an_operator_reveals_the_payload_and_it_is_audited(gateway: Gateway) -> None:
    """reveal_payload returns the stored signed XML and writes a reveal_payload entry for the patient."""
    store = gateway.store
    msg_id = _stored_message(gateway)
    payload = reveal_payload(store, _operator(store), msg_id, reason="check the text")
    message = store.get_message(msg_id)
    assert message is not None and payload == message.signed_xml
    assert [e.action for e in search_audit(store, patient=PATIENT)] == ["reveal_payload"]


def test_a_viewer_cannot_reveal_and_a_reason_is_required(gateway: Gateway) -> None:
    """A viewer is denied, an operator without a reason is refused, and neither leaves an audit entry."""
    store = gateway.store
    msg_id = _stored_message(gateway)
    viewer = _operator(store, "vera", Role.VIEWER)
    with pytest.raises(AccessDenied):
        reveal_patient_id(store, viewer, msg_id, reason="curious")
    with pytest.raises(AccessDenied):
        reveal_payload(store, None, msg_id, reason="curious")
    with pytest.raises(ReasonRequired):
        reveal_patient_id(store, _operator(store), msg_id, reason="  ")
    assert search_audit(store) == []
