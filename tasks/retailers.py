"""Retailers (the operator's customers): registering them and reading them back."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.relationships import Retailer
from supplyline.errors import RelationshipError
from tasks.audit import record_event, snapshot
from tasks.suppliers import SUPPLIER_CODE


def normalise_retailer_code(code: str) -> str:
    normalised = code.strip().lower()
    if not SUPPLIER_CODE.match(normalised) or len(normalised) > 64:
        raise RelationshipError(
            f"retailer code {code!r} is not valid: use 1-64 letters, digits and single dashes "
            f"(for example shopco or shop-co)"
        )
    return normalised


def add_retailer(
    session: Session,
    code: str,
    name: str,
    *,
    registration_number: str | None = None,
    all_or_nothing: bool = False,
    actor: str,
) -> Retailer:
    code = normalise_retailer_code(code)
    if not name.strip():
        raise RelationshipError("a retailer needs a name: --name NAME")
    if get_retailer_or_none(session, code):
        raise RelationshipError(f"retailer {code!r} already exists")
    retailer = Retailer(
        code=code,
        name=name.strip(),
        registration_number=registration_number,
        all_or_nothing=all_or_nothing,
    )
    session.add(retailer)
    try:
        session.flush()
    except IntegrityError as exc:
        raise RelationshipError(f"retailer {code!r} already exists") from exc
    record_event(
        session,
        actor=actor,
        action="retailer.add",
        entity_type="retailer",
        entity_id=retailer.id,
        after=snapshot(retailer),
    )
    return retailer


def get_retailer_or_none(session: Session, code: str) -> Retailer | None:
    return session.exec(select(Retailer).where(Retailer.code == code.strip().lower())).first()


def get_retailer(session: Session, code: str) -> Retailer:
    retailer = get_retailer_or_none(session, code)
    if retailer is None:
        raise RelationshipError(
            f"no retailer {code!r}; add it with: supplyline retailer add {code} --name NAME"
        )
    return retailer


def list_retailers(session: Session) -> list[Retailer]:
    return list(session.exec(select(Retailer).order_by(Retailer.code)))


def set_all_or_nothing(session: Session, code: str, value: bool, *, actor: str) -> Retailer:
    """Whether the retailer's orders are rejected whole when a line cannot be routed (an
    order may still say otherwise)."""
    retailer = get_retailer(session, code)
    before = snapshot(retailer)
    retailer.all_or_nothing = value
    session.add(retailer)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="retailer.settings",
        entity_type="retailer",
        entity_id=retailer.id,
        before=before,
        after=snapshot(retailer),
    )
    return retailer
