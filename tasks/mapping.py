"""Lining a supplier's table up with a contract: headers, value lookups and defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.contract import Contract
from data_contracts.mapping import Mapping
from supplyline.errors import FileRejected

_LOOKS_LIKE_DATA = re.compile(r"^[+-]?[\d.,]+$|^https?://")


@dataclass
class MappedTable:
    """Canonical text columns (None where empty), indexed by spreadsheet row number."""

    frame: pd.DataFrame
    source_columns: dict[str, str]  # canonical column -> the file's header
    ignored_headers: list[str] = field(default_factory=list)


def normalise_header(header: str) -> str:
    return header.strip().casefold()


def apply_mapping(frame: pd.DataFrame, contract: Contract, mapping: Mapping | None) -> MappedTable:
    """Rename, translate and default the supplier's columns into the contract's.

    ``frame`` is a RawTable frame (text, "" when empty). Raises FileRejected when a header the
    mapping names, or a column the contract requires, is missing.
    """
    source_columns = match_headers(list(frame.columns), contract, mapping)
    canonical: dict[str, pd.Series] = {}
    for column, header in source_columns.items():
        text = trimmed_or_none(frame[header])
        if mapping and column in mapping.values:
            text = translate_values(text, mapping.values[column])
        canonical[column] = text
    for column in contract.columns:
        default = (mapping.defaults.get(column.name) if mapping else None) or column.default
        if default is None:
            continue
        if column.name in canonical:
            canonical[column.name] = canonical[column.name].fillna(default)
        else:
            canonical[column.name] = pd.Series(default, index=frame.index, dtype="str")
    ignored = [h for h in frame.columns if h not in set(source_columns.values())]
    return MappedTable(
        frame=pd.DataFrame(canonical, index=frame.index),
        source_columns=source_columns,
        ignored_headers=ignored,
    )


def match_headers(
    headers: list[str], contract: Contract, mapping: Mapping | None
) -> dict[str, str]:
    """Canonical column -> the file's header, matching case- and space-insensitively."""
    by_key = {normalise_header(h): h for h in headers}
    wanted = {c: c for c in contract.column_names}
    if mapping:
        wanted.update(mapping.columns)
    matched: dict[str, str] = {}
    missing_mapped: list[str] = []
    for column, header in wanted.items():
        found = by_key.get(normalise_header(header))
        if found is None and mapping and column in mapping.columns:
            missing_mapped.append(header)
        elif found is not None:
            matched[column] = found
    shown = ", ".join(repr(h) for h in headers)
    if not matched and headers and _looks_like_data(headers):
        raise FileRejected(
            f"the file has no header row: its first row ({shown}) looks like data. "
            f"Add a first row with the column names ({', '.join(contract.required_columns)}, ...)",
            row=1,
        )
    if missing_mapped:
        raise FileRejected(
            f"the mapping expects column(s) {', '.join(repr(h) for h in missing_mapped)}, "
            f"which the file lacks; its headers are {shown}. Rename the column in the file, "
            f"or ask for the mapping to be updated",
            row=1,
        )
    missing = [c for c in contract.required_columns if c not in matched]
    if missing:
        expected = [
            f"{c!r}"
            + (f" (mapped from {mapping.columns[c]!r})" if mapping and c in mapping.columns else "")
            for c in missing
        ]
        raise FileRejected(
            f"required column(s) missing: {', '.join(expected)}; the file's headers are {shown}. "
            f"Add the column(s) with a header of that name",
            row=1,
        )
    return matched


def trimmed_or_none(values: pd.Series) -> pd.Series:
    """``values`` as text without surrounding whitespace, missing where that leaves nothing.

    The same as ``.str.strip()`` then ``.where(text != "")``, in two Arrow kernels: pandas'
    ``where`` on text rebuilds the column through a slow masked replace.
    """
    text = pa.array(values.astype("str"), type=pa.large_string(), from_pandas=True)
    trimmed = pc.utf8_trim_whitespace(text)
    kept = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.large_string()), trimmed)
    return pd.Series(kept, index=values.index, dtype="str")


def translate_values(text: pd.Series, table: dict[str, str]) -> pd.Series:
    """Replace supplier values by canonical ones; keys match ignoring case and spaces."""
    lookup = {key.strip().casefold(): value for key, value in table.items()}
    keys = text.str.casefold()
    translated = keys.map(lookup)
    return translated.where(translated.notna(), text).astype("str").where(text.notna())


def _looks_like_data(headers: list[str]) -> bool:
    return any(_LOOKS_LIKE_DATA.match(h.strip()) for h in headers)
