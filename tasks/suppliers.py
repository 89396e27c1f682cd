"""Suppliers: registering them and reading them back, with their catalog's counts."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from data_contracts.contract import ContractError, load_contract
from data_contracts.mapping import load_mapping
from models.catalog import FEED_MODES, PRODUCT_DATA_COLUMNS, Product, Supplier

SUPPLIER_CODE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
KEY_COLUMN = "sku"


class SupplierError(ValueError):
    """A supplier that does not exist, or settings that cannot be used."""


def normalise_code(code: str) -> str:
    """Codes are lower case: they name Prefect artifact keys and tags (``catalog-<code>``)."""
    normalised = code.strip().lower()
    if not SUPPLIER_CODE.match(normalised) or len(normalised) > 64:
        raise SupplierError(
            f"supplier code {code!r} is not valid: use 1-64 letters, digits and single dashes "
            f"(for example acme or acme-tools)"
        )
    return normalised


def check_supplier_settings(contract: str, mapping: str | None, feed_mode: str) -> None:
    """Refuse settings the ingest could not run with, before any file arrives."""
    if feed_mode not in FEED_MODES:
        raise SupplierError(f"feed mode {feed_mode!r} is not one of: {', '.join(FEED_MODES)}")
    loaded = load_contract(contract)
    key = next((c for c in loaded.columns if c.name == KEY_COLUMN), None)
    if key is None or not (key.required and key.unique):
        raise ContractError(
            f"contract {contract!r} cannot feed the catalog: products are keyed by a required, "
            f"unique {KEY_COLUMN!r} column"
        )
    needed = [
        c.name
        for c in Product.__table__.columns  # type: ignore[attr-defined]
        if c.name in PRODUCT_DATA_COLUMNS and not c.nullable and c.default is None
    ]
    optional = [name for name in needed if name not in loaded.required_columns]
    if optional:
        raise ContractError(
            f"contract {contract!r} cannot feed the catalog: the product table needs "
            f"{', '.join(optional)} in every row; make them required in the contract"
        )
    if mapping:
        load_mapping(mapping).check_against(loaded)


def add_supplier(
    session: Session,
    code: str,
    name: str,
    *,
    contract: str = "catalog_item",
    mapping: str | None = None,
    feed_mode: str = "full",
    retire_guard_share: float | None = None,
) -> Supplier:
    code = normalise_code(code)
    check_supplier_settings(contract, mapping, feed_mode)
    if retire_guard_share is not None and not 0 <= retire_guard_share <= 1:
        raise SupplierError("the retire guard is a share between 0 and 1 (0.5 = 50%)")
    if session.exec(select(Supplier).where(Supplier.code == code)).first():
        raise SupplierError(f"supplier {code!r} already exists")
    supplier = Supplier(
        code=code,
        name=name,
        contract=contract,
        mapping=mapping,
        feed_mode=feed_mode,
        retire_guard_share=retire_guard_share,
    )
    session.add(supplier)
    session.flush()
    return supplier


def get_supplier_or_none(session: Session, code: str) -> Supplier | None:
    return session.exec(select(Supplier).where(Supplier.code == code.strip().lower())).first()


def get_supplier(session: Session, code: str) -> Supplier:
    supplier = get_supplier_or_none(session, code)
    if supplier is None:
        raise SupplierError(
            f"no supplier {code!r}; add it with: supplyline supplier add {code} --name NAME"
        )
    return supplier


def list_suppliers(session: Session) -> list[Supplier]:
    return list(session.exec(select(Supplier).order_by(Supplier.code)))


@dataclass(frozen=True)
class SupplierSummary:
    supplier: Supplier
    products_by_status: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return self.supplier.model_dump(mode="json") | {"products": self.products_by_status}


def summarise_supplier(session: Session, supplier: Supplier) -> SupplierSummary:
    counts = session.exec(
        select(Product.status, sa.func.count())
        .where(Product.supplier_id == supplier.id)
        .group_by(Product.status)
    ).all()
    return SupplierSummary(supplier, {status: count for status, count in counts})


def products_of(
    session: Session, supplier: Supplier, *, status: str | None = None, limit: int | None = None
) -> list[Product]:
    query = select(Product).where(Product.supplier_id == supplier.id).order_by(Product.sku)
    if status:
        query = query.where(Product.status == status)
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))
