"""API credentials: a client ID and a secret for retailers, suppliers and retailers' connectors.

The secret is shown once, when it is issued; only a salted HMAC-SHA256 of it is stored. A slow
password hash would add nothing: secrets are 256 random bits, not something a person chose, so
there is nothing to guess, and the intake API can check one per request cheaply. Checks compare
in constant time. Rotating issues a new secret and lets the old one work for a grace period.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.catalog import Supplier, utcnow
from models.db import as_utc, get_engine, session_scope
from models.relationships import (
    Credential,
    CredentialSecret,
    Retailer,
    RetailerConnector,
)
from supplyline.errors import RelationshipError
from tasks.audit import record_event, snapshot
from tasks.connections import supplier_by_code
from tasks.retailers import get_retailer

SECRET_PREFIX = "sls_"
CLIENT_ID_PREFIX = "slc_"
HASH_SCHEME = "hmac-sha256"
MAX_GRACE = timedelta(days=30)
LAST_USED_RESOLUTION = timedelta(minutes=1)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# Compared against when a client ID is unknown, so that the answer takes as long either way.
_DECOY = (secrets.token_bytes(16), hashlib.sha256(b"decoy").hexdigest())


class InvalidCredentials(Exception):
    """The client ID and secret do not match a valid credential. Deliberately vague."""

    def __init__(self) -> None:
        super().__init__(
            "invalid credentials: the client ID or secret is wrong, revoked or expired"
        )


@dataclass(frozen=True)
class IssuedCredential:
    """A credential with its new secret: the only time the secret exists outside its owner."""

    credential: Credential
    secret: str

    def __repr__(self) -> str:  # never let a secret reach a log through a repr
        return f"IssuedCredential(client_id={self.credential.client_id!r}, secret='***')"


@dataclass(frozen=True)
class Principal:
    """Who a verified request comes from."""

    kind: str
    client_id: str
    retailer: str | None = None
    supplier: str | None = None
    connector: str | None = None


def parse_duration(text: str) -> timedelta:
    """``24h``, ``30m``, ``7d``, ``0s``: a grace period."""
    match = _DURATION.match(text)
    if not match:
        raise RelationshipError(
            f"{text!r} is not a duration: use a number and s, m, h or d (for example 24h)"
        )
    duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if duration > MAX_GRACE:
        raise RelationshipError(f"a grace period is at most {MAX_GRACE.days} days, not {text}")
    return duration


def create_credential(
    session: Session,
    *,
    retailer_code: str | None = None,
    supplier_code: str | None = None,
    connector: RetailerConnector | None = None,
    label: str | None = None,
    actor: str,
) -> IssuedCredential:
    """A new client ID and secret for exactly one owner."""
    if sum(owner is not None for owner in (retailer_code, supplier_code, connector)) != 1:
        raise RelationshipError(
            "a credential belongs to one owner: --retailer CODE or --supplier CODE"
        )
    if connector is not None:
        owner = {
            "owner_kind": "connector",
            "connector_id": connector.id,
            "retailer_id": connector.retailer_id,
        }
    elif retailer_code is not None:
        owner = {"owner_kind": "retailer", "retailer_id": get_retailer(session, retailer_code).id}
    else:
        supplier = supplier_by_code(session, str(supplier_code))
        owner = {"owner_kind": "supplier", "supplier_id": supplier.id}
    credential = Credential(
        client_id=CLIENT_ID_PREFIX + secrets.token_hex(12), label=label, **owner
    )
    session.add(credential)
    session.flush()
    secret = _add_secret(session, credential)
    record_event(
        session,
        actor=actor,
        action="credential.create",
        entity_type="credential",
        entity_id=credential.id,
        after=snapshot(credential),
    )
    return IssuedCredential(credential, secret)


def rotate_credential(
    session: Session, client_id: str, *, grace: timedelta, actor: str
) -> IssuedCredential:
    """A new secret for the same client ID; the current ones stop working after ``grace``."""
    credential = _live_credential(session, client_id)
    now = utcnow()
    expires_at = now + grace
    session.execute(
        sa.update(CredentialSecret)
        .where(
            CredentialSecret.credential_id == credential.id,  # type: ignore[arg-type]
            sa.or_(
                CredentialSecret.expires_at.is_(None),  # type: ignore[union-attr]
                CredentialSecret.expires_at > expires_at,  # type: ignore[operator]
            ),
        )
        .values(expires_at=expires_at)
    )
    secret = _add_secret(session, credential)
    record_event(
        session,
        actor=actor,
        action="credential.rotate",
        entity_type="credential",
        entity_id=credential.id,
        after={"client_id": client_id, "previous_valid_until": expires_at.isoformat()},
    )
    return IssuedCredential(credential, secret)


def revoke_credential(session: Session, client_id: str, *, actor: str) -> Credential:
    """Every secret of the credential stops working at once."""
    credential = _live_credential(session, client_id)
    before = snapshot(credential)
    credential.revoked_at = utcnow()
    session.add(credential)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="credential.revoke",
        entity_type="credential",
        entity_id=credential.id,
        before=before,
        after=snapshot(credential),
    )
    return credential


def revoke_connector_credentials(
    session: Session, connector: RetailerConnector, *, actor: str
) -> None:
    for credential in session.exec(
        select(Credential).where(
            Credential.connector_id == connector.id,
            Credential.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    ):
        revoke_credential(session, credential.client_id, actor=actor)


def verify_credentials(client_id: str, secret: str) -> Principal:
    """The owner of ``client_id`` if ``secret`` is one of its valid secrets, else
    InvalidCredentials (the same answer whether the ID, the secret or the state is wrong)."""
    with session_scope() as session:
        credential = session.exec(
            select(Credential).where(Credential.client_id == client_id)
        ).first()
        if credential is None or credential.revoked_at is not None:
            _matches(_DECOY[0].hex(), _DECOY[1], secret)
            raise InvalidCredentials()
        now = utcnow()
        matched = None
        for stored in _secrets_of(session, credential):
            expires_at = as_utc(stored.expires_at)
            live = expires_at is None or expires_at > now
            if _matches(stored.salt, stored.secret_hash, secret) and live:
                matched = stored
        if matched is None:
            raise InvalidCredentials()
        principal = _principal(session, credential)
        last_used = as_utc(matched.last_used_at)
    if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
        _record_use(credential.id, matched.id, now)  # type: ignore[arg-type]
    return principal


def _record_use(credential_id: int, secret_id: int, now: datetime) -> None:
    """When a key was last used, to the minute: an API serving many requests a second must
    not write a row for each (nor wait for SQLite's write lock on every request)."""
    with session_scope(immediate=True) as session:
        for table, row_id in ((Credential, credential_id), (CredentialSecret, secret_id)):
            session.execute(
                sa.update(table)
                .where(table.id == row_id)  # type: ignore[attr-defined]
                .values(last_used_at=now)
                .execution_options(synchronize_session=False)
            )


@dataclass(frozen=True)
class ConnectorKey:
    """A verified API key of a retailer's connector: who calls the intake API."""

    client_id: str
    connector_id: int
    connector: str
    connector_type: str
    retailer_id: int
    removed: bool
    retailer: str
    all_or_nothing: bool


# Built once: the intake API runs it for every request.
_CONNECTOR_KEY_QUERY = (
    sa.select(
        Credential.id,
        CredentialSecret.id,
        CredentialSecret.salt,
        CredentialSecret.secret_hash,
        CredentialSecret.expires_at,
        CredentialSecret.last_used_at,
        RetailerConnector.id,
        RetailerConnector.code,
        RetailerConnector.connector_type,
        RetailerConnector.retailer_id,
        RetailerConnector.removed_at,
        Retailer.code,
        Retailer.all_or_nothing,
    )
    .join(CredentialSecret, CredentialSecret.credential_id == Credential.id)  # type: ignore[arg-type]
    .join(RetailerConnector, RetailerConnector.id == Credential.connector_id)  # type: ignore[arg-type]
    .join(Retailer, Retailer.id == RetailerConnector.retailer_id)  # type: ignore[arg-type]
    .where(Credential.client_id == sa.bindparam("client_id"), Credential.revoked_at.is_(None))  # type: ignore[union-attr]
)


def verify_connector_key(client_id: str, secret: str) -> ConnectorKey:
    """:func:`verify_credentials` for the intake API, in one query: the key must belong to a
    connector (else InvalidCredentials, as for a wrong secret)."""
    with get_engine().connect() as connection:
        rows = connection.execute(_CONNECTOR_KEY_QUERY, {"client_id": client_id}).all()
    if not rows:
        _matches(_DECOY[0].hex(), _DECOY[1], secret)
        raise InvalidCredentials()
    now = utcnow()
    for row in rows:
        expires_at = as_utc(row[4])
        if (expires_at is None or expires_at > now) and _matches(row[2], row[3], secret):
            last_used = as_utc(row[5])
            if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
                _record_use(row[0], row[1], now)
            return ConnectorKey(
                client_id, row[6], row[7], row[8], row[9], row[10] is not None, row[11], row[12]
            )
    raise InvalidCredentials()


LISTED_FIELDS = {"client_id", "label", "owner_kind", "created_at", "revoked_at", "last_used_at"}


@dataclass(frozen=True)
class CredentialView:
    credential: Credential
    owner: str
    secrets_valid: int
    next_expiry: str | None

    def as_dict(self) -> dict[str, Any]:
        data = snapshot(self.credential, include=LISTED_FIELDS)
        return data | {
            "owner": self.owner,
            "status": "revoked" if self.credential.revoked_at else "active",
            "valid_secrets": self.secrets_valid,
            "previous_valid_until": self.next_expiry,
        }


def list_credentials(
    session: Session, *, retailer_code: str | None = None, supplier_code: str | None = None
) -> list[CredentialView]:
    """Credentials and their state: never a secret, never a hash."""
    query = select(Credential).order_by(Credential.id)  # type: ignore[arg-type]
    if retailer_code:
        query = query.where(Credential.retailer_id == get_retailer(session, retailer_code).id)
    if supplier_code:
        query = query.where(Credential.supplier_id == supplier_by_code(session, supplier_code).id)
    now = utcnow()
    views = []
    for credential in session.exec(query):
        live = [
            s
            for s in _secrets_of(session, credential)
            if s.expires_at is None or as_utc(s.expires_at) > now  # type: ignore[operator]
        ]
        expiring = [as_utc(s.expires_at) for s in live if s.expires_at is not None]
        views.append(
            CredentialView(
                credential,
                _owner_name(session, credential),
                0 if credential.revoked_at else len(live),
                min(expiring).isoformat() if expiring and not credential.revoked_at else None,  # type: ignore[type-var,union-attr]
            )
        )
    return views


# --- helpers ---------------------------------------------------------------------------------


def _add_secret(session: Session, credential: Credential) -> str:
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    session.add(
        CredentialSecret(
            credential_id=credential.id,
            hash_scheme=HASH_SCHEME,
            salt=salt,
            secret_hash=_hash(salt, secret),
        )
    )
    session.flush()
    return secret


def _hash(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def _matches(salt: str, expected_hash: str, secret: str) -> bool:
    return hmac.compare_digest(_hash(salt, secret), expected_hash)


def _secrets_of(session: Session, credential: Credential) -> list[CredentialSecret]:
    return list(
        session.exec(
            select(CredentialSecret).where(CredentialSecret.credential_id == credential.id)
        )
    )


def _live_credential(session: Session, client_id: str) -> Credential:
    credential = session.exec(select(Credential).where(Credential.client_id == client_id)).first()
    if credential is None:
        raise RelationshipError(f"no credential {client_id!r}; see: supplyline credentials list")
    if credential.revoked_at is not None:
        raise RelationshipError(
            f"credential {client_id!r} is revoked; create a new one: supplyline credentials create"
        )
    return credential


def _principal(session: Session, credential: Credential) -> Principal:
    retailer = session.get(Retailer, credential.retailer_id) if credential.retailer_id else None
    supplier = session.get(Supplier, credential.supplier_id) if credential.supplier_id else None
    connector = (
        session.get(RetailerConnector, credential.connector_id) if credential.connector_id else None
    )
    return Principal(
        kind=credential.owner_kind,
        client_id=credential.client_id,
        retailer=retailer.code if retailer else None,
        supplier=supplier.code if supplier else None,
        connector=connector.code if connector else None,
    )


def _owner_name(session: Session, credential: Credential) -> str:
    principal = _principal(session, credential)
    if principal.connector:
        return f"connector {principal.connector} (retailer {principal.retailer})"
    if principal.retailer:
        return f"retailer {principal.retailer}"
    return f"supplier {principal.supplier}"
