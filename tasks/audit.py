"""The audit trail: who changed a connection, credential, connector or lookup, and how."""

from __future__ import annotations

import getpass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, SQLModel, select

from models.db import as_utc
from models.relationships import AuditEvent
from supplyline.settings import get_settings

# Keys that could carry a secret or its hash: never written to the audit trail.
SECRET_KEY_PARTS = ("secret", "hash", "salt", "password")


def default_actor() -> str:
    """``SUPPLYLINE_ACTOR``, else the OS user."""
    configured = get_settings().actor
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def without_secrets(value: Any) -> Any:
    """``value`` with every key that could hold a secret or a hash dropped, at any depth."""
    if isinstance(value, dict):
        return {
            key: without_secrets(item)
            for key, item in value.items()
            if not any(part in str(key).lower() for part in SECRET_KEY_PARTS)
        }
    if isinstance(value, list | tuple):
        return [without_secrets(item) for item in value]
    return value


def snapshot(
    row: SQLModel, *, include: set[str] | None = None, exclude: set[str] | None = None
) -> dict[str, Any]:
    """A row as JSON-ready values (times in UTC with their zone, money as exact text), for
    the ``before`` and ``after`` of an event and for ``--json`` output; never a secret."""
    return without_secrets(
        {
            name: _json_ready(value)
            for name, value in row.model_dump(include=include, exclude=exclude).items()
        }
    )


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()  # type: ignore[union-attr]
    if isinstance(value, Decimal):
        return str(value)
    return value


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the session: it commits or rolls back with the change it describes."""
    event = AuditEvent(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before=without_secrets(before) if before is not None else None,
        after=without_secrets(after) if after is not None else None,
    )
    session.add(event)
    return event


def audit_trail(
    session: Session,
    *,
    limit: int = 50,
    entity_type: str | None = None,
    entity_id: int | None = None,
) -> list[AuditEvent]:
    """The newest events first."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)  # type: ignore[union-attr]
    if entity_type:
        query = query.where(AuditEvent.entity_type == entity_type)
    if entity_id is not None:
        query = query.where(AuditEvent.entity_id == entity_id)
    return list(session.exec(query))
