"""Retailers' connectors: how their orders reach Supplyline.

An API connector (``native_api``: Supplyline's own JSON dialect; ``siteflow_api``: an HP
SiteFlow-style API) gets an API key and secret (a credential) and endpoint URLs for placing
and cancelling orders, served by the order intake API at ``SUPPLYLINE_API_BASE_URL``. An
``sftp`` connector names the folders for order files and status files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from models.catalog import utcnow
from models.relationships import (
    API_CONNECTOR_TYPES,
    CONNECTOR_TYPES,
    Credential,
    Retailer,
    RetailerConnector,
)
from supplyline.errors import RelationshipError
from supplyline.settings import get_settings
from tasks.audit import record_event, snapshot
from tasks.credentials import IssuedCredential, create_credential, revoke_connector_credentials
from tasks.retailers import get_retailer, normalise_retailer_code

# Path of each endpoint under the intake API's base URL, by connector type: (method, path).
ENDPOINTS: dict[str, dict[str, tuple[str, str]]] = {
    "native_api": {
        "place_order": ("POST", "/v1/native/{connector}/orders"),
        "cancel_order": ("POST", "/v1/native/{connector}/orders/{order_id}/cancel"),
        "order_status": ("GET", "/v1/native/{connector}/orders/{order_id}"),
    },
    "siteflow_api": {
        "place_order": ("POST", "/v1/siteflow/{connector}/orders"),
        "cancel_order": ("PUT", "/v1/siteflow/{connector}/orders/{source_order_id}/cancel"),
        "order_status": ("GET", "/v1/siteflow/{connector}/orders/{source_order_id}"),
    },
}
SHORT_TYPE_NAMES = {"native_api": "native", "siteflow_api": "siteflow", "sftp": "sftp"}


def retailer_block_name(connector: str) -> str:
    """The SftpServer block of an sftp connector's folders."""
    return f"retailer-{connector}"


def webhook_block_name(connector: str) -> str:
    """The RetailerWebhook block (URL and signing secret) of a connector's webhook."""
    return f"webhook-{connector}"


@dataclass(frozen=True)
class AddedConnector:
    connector: RetailerConnector
    credential: IssuedCredential | None


def add_connector(
    session: Session,
    retailer_code: str,
    connector_type: str,
    *,
    code: str | None = None,
    orders_folder: str | None = None,
    status_folder: str | None = None,
    actor: str,
) -> AddedConnector:
    """A new connector; an API connector comes with its API key and secret (shown once)."""
    if connector_type not in CONNECTOR_TYPES:
        raise RelationshipError(
            f"connector type {connector_type!r} is not one of: {', '.join(CONNECTOR_TYPES)}"
        )
    retailer = get_retailer(session, retailer_code)
    code = _new_code(session, retailer, connector_type) if code is None else _checked_code(code)
    if session.exec(select(RetailerConnector).where(RetailerConnector.code == code)).first():
        raise RelationshipError(f"connector {code!r} already exists: choose another --name")
    settings: dict[str, Any] = {}
    if connector_type == "sftp":
        base = f"/retailers/{retailer.code}/{code}"
        settings = {
            "orders_folder": orders_folder or f"{base}/orders",
            "status_folder": status_folder or f"{base}/status",
        }
    elif orders_folder or status_folder:
        raise RelationshipError("folders are for sftp connectors; API connectors have endpoints")
    connector = RetailerConnector(
        code=code, retailer_id=retailer.id, connector_type=connector_type, settings=settings
    )
    session.add(connector)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="connector.add",
        entity_type="connector",
        entity_id=connector.id,
        after=snapshot(connector),
    )
    issued = None
    if connector_type in API_CONNECTOR_TYPES:
        issued = create_credential(
            session, connector=connector, label=f"connector {code}", actor=actor
        )
    return AddedConnector(connector, issued)


def remove_connector(session: Session, code: str, *, actor: str) -> RetailerConnector:
    """Stop a connector: its API keys are revoked at once; its record stays for the history."""
    connector = get_connector(session, code)
    before = snapshot(connector)
    connector.removed_at = utcnow()
    session.add(connector)
    session.flush()
    revoke_connector_credentials(session, connector, actor=actor)
    record_event(
        session,
        actor=actor,
        action="connector.remove",
        entity_type="connector",
        entity_id=connector.id,
        before=before,
        after=snapshot(connector),
    )
    return connector


def get_connector(session: Session, code: str, *, removed_too: bool = False) -> RetailerConnector:
    connector = session.exec(
        select(RetailerConnector).where(RetailerConnector.code == code.strip().lower())
    ).first()
    if connector is None or (connector.removed_at is not None and not removed_too):
        raise RelationshipError(f"no connector {code!r}; see: supplyline connector list")
    return connector


def list_connectors(
    session: Session, *, retailer_code: str | None = None, removed_too: bool = False
) -> list[RetailerConnector]:
    query = select(RetailerConnector).order_by(RetailerConnector.code)
    if retailer_code:
        retailer = get_retailer(session, retailer_code)
        query = query.where(RetailerConnector.retailer_id == retailer.id)
    if not removed_too:
        query = query.where(RetailerConnector.removed_at.is_(None))  # type: ignore[union-attr]
    return list(session.exec(query))


def endpoints(connector: RetailerConnector) -> dict[str, dict[str, str]]:
    """The intake API's URLs for this connector (empty for sftp)."""
    base = get_settings().api_base_url.rstrip("/")
    return {
        name: {"method": method, "url": base + path.replace("{connector}", connector.code)}
        for name, (method, path) in ENDPOINTS.get(connector.connector_type, {}).items()
    }


def describe_connector(session: Session, connector: RetailerConnector) -> dict[str, Any]:
    """A connector as shown by the CLI: never a secret, only the API key (client ID)."""
    retailer = session.get(Retailer, connector.retailer_id)
    api_keys = session.exec(
        select(Credential.client_id).where(
            Credential.connector_id == connector.id,
            Credential.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    ).all()
    return {
        "code": connector.code,
        "retailer": retailer.code if retailer else None,
        "type": connector.connector_type,
        "status": "removed" if connector.removed_at else "active",
        "api_keys": list(api_keys),
        "endpoints": endpoints(connector),
        **connector.settings,
    } | snapshot(connector, include={"created_at", "removed_at"})


def _new_code(session: Session, retailer: Retailer, connector_type: str) -> str:
    stem = f"{retailer.code}-{SHORT_TYPE_NAMES[connector_type]}"
    taken = set(
        session.exec(
            select(RetailerConnector.code).where(RetailerConnector.code.startswith(stem))  # type: ignore[attr-defined]
        )
    )
    code, number = stem, 1
    while code in taken:
        number += 1
        code = f"{stem}-{number}"
    return code


def _checked_code(code: str) -> str:
    try:
        return normalise_retailer_code(code)
    except RelationshipError as exc:
        raise RelationshipError(
            f"connector name {code!r} is not valid: use 1-64 letters, digits and single dashes"
        ) from exc
