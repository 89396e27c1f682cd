"""Loading data contracts (ODCS v3 YAML) into a small, typed model.

Only what Supplyline executes is modelled; every other ODCS field is kept as written and
ignored. Anything that would change how rows are checked but is not understood is refused
here or in :mod:`data_contracts.suite`, never skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONTRACTS_DIR = Path(__file__).resolve().parent
CONTRACT_SUFFIX = ".odcs.yaml"

LOGICAL_TYPES = ("string", "number", "integer", "boolean", "date")
TYPED_LOGICAL_TYPES = ("number", "integer", "boolean", "date")


class ContractError(ValueError):
    """A contract (or mapping) file is invalid or asks for something that cannot be executed."""


@dataclass(frozen=True)
class ContractColumn:
    """One property of the contract's schema object."""

    name: str
    logical_type: str
    required: bool = False
    unique: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    quality: tuple[dict[str, Any], ...] = ()
    default: str | None = None
    hint: str | None = None
    description: str | None = None

    @property
    def is_typed(self) -> bool:
        """True when values are converted from text (numbers, dates, booleans)."""
        return self.logical_type in TYPED_LOGICAL_TYPES


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    columns: tuple[ContractColumn, ...]
    table_quality: tuple[dict[str, Any], ...] = ()
    path: Path | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> ContractColumn:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def available_contracts(extra_dirs: list[Path] | None = None) -> dict[str, Path]:
    """Contract name -> file, for every ``*.odcs.yaml`` in the search folders."""
    found: dict[str, Path] = {}
    for folder in [CONTRACTS_DIR, *(extra_dirs or [])]:
        for path in sorted(folder.glob(f"*{CONTRACT_SUFFIX}")):
            found.setdefault(path.name.removesuffix(CONTRACT_SUFFIX), path)
    return found


def resolve_contract_path(name_or_path: str | Path, extra_dirs: list[Path] | None = None) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} and candidate.exists():
        return candidate
    contracts = available_contracts(extra_dirs)
    if str(name_or_path) in contracts:
        return contracts[str(name_or_path)]
    known = ", ".join(sorted(contracts)) or "none"
    raise ContractError(
        f"unknown contract {str(name_or_path)!r}: give a contract name ({known}) "
        f"or the path of an ODCS YAML file"
    )


def load_contract(name_or_path: str | Path, extra_dirs: list[Path] | None = None) -> Contract:
    """Load a contract by name (a ``<name>.odcs.yaml`` in data_contracts/) or by path."""
    path = resolve_contract_path(name_or_path, extra_dirs)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    return parse_contract(document, path=path)


def parse_contract(document: Any, *, path: Path | None = None) -> Contract:
    where = str(path) if path else "contract"
    if not isinstance(document, dict):
        raise ContractError(f"{where}: expected a YAML mapping at the top level")
    if document.get("kind") != "DataContract":
        raise ContractError(f"{where}: kind must be DataContract (ODCS v3)")
    if not str(document.get("apiVersion", "")).startswith("v3."):
        raise ContractError(f"{where}: apiVersion must be an ODCS v3 version such as v3.0.2")
    for key in ("name", "version"):
        if not document.get(key):
            raise ContractError(f"{where}: {key} is required")
    schema = document.get("schema")
    if not isinstance(schema, list) or len(schema) != 1:
        raise ContractError(f"{where}: schema must hold exactly one object (the row of a file)")
    table = schema[0]
    properties = table.get("properties")
    if not isinstance(properties, list) or not properties:
        raise ContractError(f"{where}: schema[0].properties must list the columns")
    columns = tuple(_parse_column(prop, where) for prop in properties)
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ContractError(f"{where}: columns defined twice: {', '.join(duplicates)}")
    return Contract(
        name=str(document["name"]),
        version=str(document["version"]),
        columns=columns,
        table_quality=tuple(table.get("quality") or ()),
        path=path,
    )


def _parse_column(prop: Any, where: str) -> ContractColumn:
    if not isinstance(prop, dict) or not prop.get("name"):
        raise ContractError(f"{where}: every property needs a name")
    name = str(prop["name"])
    logical_type = prop.get("logicalType", "string")
    if logical_type not in LOGICAL_TYPES:
        raise ContractError(
            f"{where}: column {name}: logicalType {logical_type!r} is not supported "
            f"(use one of {', '.join(LOGICAL_TYPES)})"
        )
    custom = {
        str(item.get("property")): item.get("value")
        for item in prop.get("customProperties") or ()
        if isinstance(item, dict)
    }
    default = custom.get("default")
    return ContractColumn(
        name=name,
        logical_type=logical_type,
        required=bool(prop.get("required", False)),
        unique=bool(prop.get("unique", False)),
        options=dict(prop.get("logicalTypeOptions") or {}),
        quality=tuple(prop.get("quality") or ()),
        default=None if default is None else str(default),
        hint=custom.get("hint"),
        description=prop.get("description"),
    )
