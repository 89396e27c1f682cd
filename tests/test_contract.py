"""Contracts are data: loading, compiling into GX, and failing loudly."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from data_contracts import contract as contract_module
from data_contracts.contract import (
    ContractError,
    available_contracts,
    load_contract,
    parse_contract,
)
from data_contracts.suite import PYTHON_WHITESPACE_CLASS, compile_contract, spell_out_whitespace
from tasks.validate import validate_rows

CATALOG = Path(contract_module.__file__).with_name("catalog_item.odcs.yaml")


def rules_written_in(document: dict) -> set[tuple[str, str]]:
    """(column, kind) of every rule the YAML states, read straight from the document."""
    written: set[tuple[str, str]] = set()
    for prop in document["schema"][0]["properties"]:
        name, options = prop["name"], prop.get("logicalTypeOptions", {})
        if prop.get("required"):
            written.add((name, "required"))
        if prop.get("logicalType", "string") != "string":
            written.add((name, "type"))
        if prop.get("unique"):
            written.add((name, "unique"))
        if "pattern" in options:
            written.add((name, "pattern"))
        if {"minLength", "maxLength"} & set(options):
            written.add((name, "length"))
        if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(options):
            written.add((name, "range"))
        for quality in prop.get("quality", []):
            written.add((name, quality["name"]))
    return written


def test_catalog_contract_header() -> None:
    contract = load_contract("catalog_item")
    assert (contract.name, contract.version) == ("catalog_item", "1.0.0")
    assert contract.required_columns == ["sku", "title", "brand", "cost", "quantity"]
    assert contract.column("status").default == "active"


def test_every_rule_of_the_file_became_an_expectation() -> None:
    import great_expectations as gx

    written = rules_written_in(yaml.safe_load(CATALOG.read_text()))
    quality_names = {kind for _, kind in written}
    compiled = compile_contract(load_contract(CATALOG))
    compiled_keys = {
        (rule.column, rule.id if rule.id in quality_names else rule.kind) for rule in compiled.rules
    }
    assert compiled_keys == written
    assert len(compiled.rules) == len(written) == 30
    suite = compiled.build_suite(gx.get_context(mode="ephemeral"))
    assert sorted(e.meta["rule"] for e in suite.expectations) == sorted(
        r.id for r in compiled.rules
    )


def test_every_rule_runs_in_gx() -> None:
    """A table that breaks every column rule once: each rule must report a failure."""
    compiled = compile_contract(load_contract("catalog_item"))
    long = "x" * 300
    rows = [
        {"sku": None, "title": None, "brand": None, "cost": None, "quantity": None},
        {
            "sku": "bad sku",
            "title": long,
            "brand": "B",
            "cost": "0",
            "quantity": "-1",
            "gtin": "12",
            "map_price": "1",
            "msrp": "0.5",
            "weight_lb": "0",
            "length_in": "0",
            "width_in": "0",
            "height_in": "0",
            "image_urls": "nope",
            "status": "gone",
        },
        {
            "sku": "D",
            "title": "t",
            "brand": "B",
            "cost": "x",
            "quantity": "x",
            "gtin": "036000291453",
            "map_price": "x",
            "msrp": "x",
            "weight_lb": "x",
            "length_in": "x",
            "width_in": "x",
            "height_in": "x",
        },
        {
            "sku": "D",
            "title": "t",
            "brand": "B",
            "cost": "5",
            "quantity": "1",
            "map_price": "4",
            "msrp": "3",
        },
        {"sku": "A" * 65, "title": "", "brand": "B", "cost": "5", "quantity": "1"},
    ]
    frame = pd.DataFrame(rows, dtype="str").replace({"": None})
    frame.index = pd.RangeIndex(2, 2 + len(rows))
    result = validate_rows(frame, compiled)
    silent = [f.rule for f in result.rule_failures if f.failures == 0]
    assert silent == []
    assert {f.rule for f in result.rule_failures} == {r.id for r in compiled.rules}


def test_a_second_contract_needs_no_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    for path in contract_module.CONTRACTS_DIR.glob("*.odcs.yaml"):
        shutil.copy(path, folder)
    (folder / "price_update.odcs.yaml").write_text(
        """
apiVersion: v3.0.2
kind: DataContract
id: urn:test:price_update
name: price_update
version: 0.1.0
status: draft
schema:
  - name: price_update
    properties:
      - name: sku
        logicalType: string
        required: true
        unique: true
      - name: cost
        logicalType: number
        required: true
        logicalTypeOptions: {minimum: 1, maximum: 100}
      - name: currency
        logicalType: string
        quality:
          - {type: library, metric: invalidValues, arguments: {validValues: [USD, EUR]}, mustBe: 0}
"""
    )
    monkeypatch.setattr(contract_module, "CONTRACTS_DIR", folder)
    shipped = {
        p.name.removesuffix(".odcs.yaml") for p in contract_module.CONTRACTS_DIR.glob("*.odcs.yaml")
    }
    assert {"catalog_item", "order"} <= shipped
    assert set(available_contracts()) == shipped | {"price_update"}
    compiled = compile_contract(load_contract("price_update"))
    frame = pd.DataFrame(
        {"sku": ["A", "B", "C"], "cost": ["50", "100.5", "1"], "currency": ["USD", "GBP", None]},
        dtype="str",
    )
    frame.index = pd.RangeIndex(2, 5)
    result = validate_rows(frame, compiled)
    assert result.errors.to_dict() == {
        3: "cost: 100.5 must be at most 100; currency: 'GBP' is not allowed; use one of: USD, EUR"
    }


def _contract_with(prop_extra: dict, *, quality: list | None = None) -> dict:
    prop = {"name": "x", "logicalType": "string", **prop_extra}
    if quality is not None:
        prop["quality"] = quality
    return {
        "apiVersion": "v3.0.2",
        "kind": "DataContract",
        "name": "t",
        "version": "1",
        "schema": [{"name": "t", "properties": [prop]}],
    }


@pytest.mark.parametrize(
    ("extra", "quality", "message"),
    [
        ({"logicalType": "geometry"}, None, "logicalType 'geometry' is not supported"),
        (
            {"logicalTypeOptions": {"format": "email"}},
            None,
            "logicalTypeOptions format cannot be checked",
        ),
        (
            {"logicalTypeOptions": {"minimum": 1}},
            None,
            "logicalTypeOptions minimum cannot be checked",
        ),
        ({}, [{"type": "sql", "query": "select 1"}], "type 'sql' cannot be checked on files"),
        ({}, [{"type": "text", "description": "be nice"}], "type 'text' cannot be checked"),
        ({}, [{"type": "library", "metric": "rowCount", "mustBe": 0}], "library metric 'rowCount'"),
        ({}, [{"type": "library", "metric": "nullValues", "mustBe": 3}], "only mustBe: 0"),
        (
            {},
            [
                {
                    "type": "custom",
                    "engine": "greatExpectations",
                    "implementation": "type: expect_column_values_to_be_shiny\nkwargs: {column: x}",
                }
            ],
            "unknown Great Expectations type 'expect_column_values_to_be_shiny'",
        ),
        (
            {},
            [
                {
                    "type": "custom",
                    "engine": "greatExpectations",
                    "implementation": {
                        "type": "expect_column_values_to_not_be_null",
                        "kwargs": {"column": "y"},
                    },
                }
            ],
            "refers to column 'y'",
        ),
        ({}, [{"type": "custom", "engine": "soda", "implementation": "x"}], "engine 'soda'"),
    ],
)
def test_rules_that_cannot_be_compiled_fail_loudly(
    extra: dict, quality: list | None, message: str
) -> None:
    with pytest.raises(ContractError, match=message):
        compile_contract(parse_contract(_contract_with(extra, quality=quality)))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"kind": "DataContract", "apiVersion": "v2.2.2", "name": "t", "version": "1"}, "ODCS v3"),
        ({"kind": "Other"}, "kind must be DataContract"),
        ("just text", "YAML mapping"),
    ],
)
def test_invalid_contract_documents(document: object, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        parse_contract(document)


def test_unknown_contract_name_lists_the_known_ones() -> None:
    with pytest.raises(ContractError, match=r"unknown contract 'nope'.*catalog_item"):
        load_contract("nope")


def test_spelled_out_whitespace_is_what_python_means_by_backslash_s() -> None:
    every_space = {chr(c) for c in range(0x110000) if re.fullmatch(r"\s", chr(c))}
    spelled = re.compile(f"[{PYTHON_WHITESPACE_CLASS}]")
    assert {chr(c) for c in range(0x110000) if spelled.fullmatch(chr(c))} == every_space


SPACE_PATTERNS = [
    r"^https?://[^\s|]+(?:\s*\|\s*https?://[^\s|]+)*$",
    r"^\S+$",
    r"a\sb",
    r"^[\s]*x[^\s]*$",
    r"^[]\s]+$",
    r"^[^]\s]+$",
    r"^\\s+$",
    r"^[a-z\s\]]+$",
]
SPACE_VALUES = [
    "https://a.example/1.jpg",
    "https://a.example/1.jpg | https://a.example/2.jpg",
    "https://a.example/1.jpg\u00a0| https://a.example/2.jpg",
    "https://a.example/1\u2003.jpg",
    "https://a.example/1.jpg\x0b|https://b.example",
    "https://a.example/1.jpg\x1c",
    "a b",
    "a\u3000b",
    "a\u200bb",
    "x",
    " \t\x85x",
    "] ]",
    "]\u2029]",
    r"\s\s",
    "ab]",
    "",
]


@pytest.mark.parametrize("pattern", SPACE_PATTERNS)
def test_spelled_out_whitespace_matches_the_same_values_in_python_and_in_arrow(
    pattern: str,
) -> None:
    """Whatever engine pandas picks for the spelled-out pattern, it matches what the pattern
    as written matches in Python."""
    spelled = spell_out_whitespace(pattern)
    assert "\\s" not in spelled.replace("\\\\", "") and "\\S" not in spelled.replace("\\\\", "")
    expected = [re.search(pattern, value) is not None for value in SPACE_VALUES]
    assert [re.search(spelled, value) is not None for value in SPACE_VALUES] == expected
    arrow = pd.Series(SPACE_VALUES, dtype="str").array
    assert not arrow._needs_python_regex(spelled)  # pandas keeps it in RE2
    assert pd.Series(arrow).str.contains(spelled).tolist() == expected


@pytest.mark.parametrize("pattern", [r"^[\S]+$", r"(?a)^\s+$", r"^(?a:\s)$"])
def test_patterns_that_cannot_be_spelled_out_are_left_as_written(pattern: str) -> None:
    assert spell_out_whitespace(pattern) == pattern
