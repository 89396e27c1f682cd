"""Every rule of the catalog contract, with passing and failing values, through GX."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import pytest
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from stdnum import ean

from data_contracts.contract import Contract, load_contract, parse_contract
from data_contracts.suite import compile_contract, validation_view
from tasks.validate import ValidationResult, validate_rows

BASE = {
    "title": "Claw hammer",
    "brand": "ACME",
    "cost": "10.00",
    "quantity": "1",
    "status": "active",
}

# (overrides of a valid row, the message expected on that row or None when the row is valid)
CASES: list[tuple[dict[str, str | None], str | None]] = [
    ({}, None),
    ({"sku": None}, "sku: is required but empty"),
    ({"sku": "ACM 1!"}, "sku: 'ACM 1!' is not valid; expected letters, digits and - _ . / only"),
    ({"sku": "A" * 65}, "sku: is 65 characters long; at most 64 are allowed"),
    ({"sku": "A" * 64}, None),
    ({"sku": "a-b_c.d/e"}, None),
    ({"title": None}, "title: is required but empty"),
    ({"title": "T" * 256}, "title: is 256 characters long; at most 255 are allowed"),
    ({"title": "T" * 255}, None),
    ({"brand": None}, "brand: is required but empty"),
    ({"description": None, "category": None}, None),
    ({"gtin": "036000291453"}, "gtin: check digit should be 2, not 3"),
    ({"gtin": "036000291452"}, None),
    ({"gtin": "96385074"}, None),
    ({"gtin": "96385075"}, "gtin: check digit should be 4, not 5"),
    ({"gtin": "4006381333931"}, None),
    ({"gtin": "10036000291459"}, None),
    ({"gtin": "12345"}, "gtin: '12345' is not valid; expected 8, 12, 13 or 14 digits"),
    (
        {"gtin": "8.12345E+11"},
        "gtin: '8.12345E+11' is in scientific notation: a spreadsheet mangled it",
    ),
    ({"cost": None}, "cost: is required but empty"),
    ({"cost": "0"}, "cost: 0 must be greater than 0"),
    ({"cost": "-1.50"}, "cost: -1.50 must be greater than 0"),
    ({"cost": "0.01"}, None),
    ({"cost": "twelve"}, "cost: 'twelve' is not a number; write a number like 12.50"),
    ({"cost": "12,5"}, "cost: '12,5' uses a comma for decimals; write 12.5"),
    ({"cost": "$5.00"}, "cost: '$5.00' has a currency symbol"),
    ({"cost": "1,234.00"}, "cost: '1,234.00' has thousands separators; write 1234.00"),
    ({"map_price": "12.00", "cost": "24.00"}, "map_price: 12.00 is below cost 24.00"),
    ({"map_price": "24.00", "cost": "24.00"}, None),
    ({"msrp": "20", "cost": "24"}, "msrp: 20 is below cost 24"),
    ({"msrp": "30", "map_price": "31", "cost": "24"}, "msrp: 30 is below map_price 31"),
    ({"msrp": "31", "map_price": "31", "cost": "24"}, None),
    ({"msrp": "25", "map_price": None, "cost": "24"}, None),
    ({"quantity": None}, "quantity: is required but empty"),
    ({"quantity": "5.5"}, "quantity: '5.5' is not a whole number; write a whole number like 12"),
    ({"quantity": "five"}, "quantity: 'five' is not a number; write a whole number like 12"),
    ({"quantity": "-1"}, "quantity: -1 must be at least 0"),
    ({"quantity": "0"}, None),
    ({"quantity": "5.0"}, None),
    ({"weight_lb": "0"}, "weight_lb: 0 must be greater than 0"),
    ({"length_in": "-2"}, "length_in: -2 must be greater than 0"),
    ({"width_in": "abc"}, "width_in: 'abc' is not a number"),
    ({"height_in": "0.5", "weight_lb": "12.25"}, None),
    (
        {"image_urls": "ftp://img.example.com/a.jpg"},
        "image_urls: 'ftp://img.example.com/a.jpg' is not valid; expected http:// or https:// URLs",
    ),
    ({"image_urls": "https://a.example/1.jpg|http://a.example/2.jpg"}, None),
    ({"image_urls": "https://a.example/1.jpg | https://a.example/2.jpg"}, None),
    ({"image_urls": "www.example.com/a.jpg"}, "image_urls: 'www.example.com/a.jpg' is not valid"),
    ({"status": "X"}, "status: 'X' is not allowed; use one of: active, discontinued"),
    ({"status": "discontinued"}, None),
]


@pytest.fixture(scope="module")
def result() -> ValidationResult:
    compiled = compile_contract(load_contract("catalog_item"))
    rows = []
    for number, (overrides, _) in enumerate(CASES):
        row = {"sku": f"SKU-{number}", **BASE, **overrides}
        rows.append(row)
    # Two rows sharing a SKU: both are rejected.
    rows.append({**BASE, "sku": "DUP-1"})
    rows.append({**BASE, "sku": "DUP-1"})
    frame = pd.DataFrame(rows, dtype="str")
    frame.index = pd.RangeIndex(2, len(rows) + 2)  # spreadsheet row numbers
    return validate_rows(frame, compiled)


@pytest.mark.parametrize(("number", "case"), list(enumerate(CASES)))
def test_rule(result: ValidationResult, number: int, case: tuple[dict, str | None]) -> None:
    _, expected = case
    row = number + 2
    if expected is None:
        assert row not in result.errors.index, result.errors.get(row)
        assert row in result.valid_rows.index
    else:
        assert expected in result.errors[row]
        assert row not in result.valid_rows.index


def test_every_occurrence_of_a_repeated_sku_is_rejected(result: ValidationResult) -> None:
    last = len(CASES) + 2
    for row in (last, last + 1):
        assert (
            result.errors[row]
            == "sku: 'DUP-1' appears 2 times in this file; each sku must be unique"
        )


def test_one_message_per_problem_in_column_order(result: ValidationResult) -> None:
    compiled = compile_contract(load_contract("catalog_item"))
    frame = pd.DataFrame(
        [{"sku": "bad sku", "title": None, "brand": "B", "cost": "x", "quantity": "-1"}],
        dtype="str",
    )
    frame.index = pd.RangeIndex(2, 3)
    errors = validate_rows(frame, compiled).errors[2]
    assert errors == (
        "sku: 'bad sku' is not valid; expected letters, digits and - _ . / only; "
        "title: is required but empty; "
        "cost: 'x' is not a number; write a number like 12.50; "
        "quantity: -1 must be at least 0"
    )


def test_counts_and_typed_valid_rows(result: ValidationResult) -> None:
    invalid = sum(1 for _, expected in CASES if expected) + 2
    assert result.rows_total == len(CASES) + 2
    assert result.rows_invalid == invalid
    assert result.rows_valid == len(CASES) + 2 - invalid
    failures = {f.rule: f.failures for f in result.rule_failures}
    assert failures["sku.unique"] == 2
    assert failures["gtin_check_digit"] == 2
    assert failures["cost.type"] == 4
    first_valid = result.valid_rows.loc[2]
    assert first_valid["cost"] == 10.0
    assert first_valid["quantity"] == 1.0


def test_gs1_check_digit_matches_stdnum_on_many_numbers() -> None:
    """The vectorised check digit agrees with python-stdnum's, valid and invalid alike."""
    from data_contracts.expectations import gs1_check_digit_ok

    values = []
    for seed in range(400):
        body = str(7_919 * seed**3 + 104_729 * seed).zfill(13)[-(7, 11, 12, 13)[seed % 4] :]
        values.append(body + ean.calc_check_digit(body))
        values.append(body + str((int(ean.calc_check_digit(body)) + 1) % 10))
    expected = [ean.is_valid(v) for v in values]
    assert gs1_check_digit_ok(pd.Series(values, dtype="str")).tolist() == expected
    assert sum(expected) == 400


def test_gs1_check_digit_of_values_that_are_not_gtins() -> None:
    """Values of another shape pass (the pattern rule reports them), digits of other scripts
    included; the index is kept."""
    from data_contracts.expectations import gs1_check_digit_ok

    values = pd.Series(
        ["036000291452", "036000291453", None, "", "12345", "٣٣٣٣٣٣٣٣", "96385075", " 96385074"],
        index=range(10, 18),
        dtype="str",
    )
    ok = gs1_check_digit_ok(values)
    assert ok.index.tolist() == list(range(10, 18))
    assert ok.tolist() == [True, False, True, True, True, True, False, True]


class ColumnValuesFailToCompute(ColumnMapMetricProvider):
    condition_metric_name = "column_values.fail_to_compute"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: object) -> pd.Series:
        raise ValueError("the metric broke")


class ExpectColumnValuesToFailToCompute(ColumnMapExpectation):
    """A test expectation whose metric always raises."""

    map_metric = "column_values.fail_to_compute"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)


def contract_of(*properties: dict[str, object]) -> Contract:
    """A one-table contract ``t`` with these properties."""
    return parse_contract(
        {
            "apiVersion": "v3.0.2",
            "kind": "DataContract",
            "name": "t",
            "version": "1",
            "schema": [{"name": "t", "properties": list(properties)}],
        }
    )


def test_a_rule_gx_could_not_run_is_an_error_not_a_pass() -> None:
    """GX reports a metric that raised under the metric's id, with no failing rows."""
    quality = {
        "name": "x_computes",
        "type": "custom",
        "engine": "greatExpectations",
        "implementation": {
            "type": "expect_column_values_to_fail_to_compute",
            "kwargs": {"column": "x"},
        },
    }
    compiled = compile_contract(
        contract_of({"name": "x", "logicalType": "string", "quality": [quality]})
    )
    frame = pd.DataFrame({"x": ["a", "b"]}, dtype="str", index=pd.RangeIndex(2, 4))
    with pytest.raises(RuntimeError, match=r"rule x_computes could not run: .*the metric broke"):
        validate_rows(frame, compiled)


def test_typed_columns_hold_the_number_the_text_means() -> None:
    """Only text matching the type's pattern is converted, as float() reads it."""
    compiled = compile_contract(load_contract("catalog_item"))
    texts = ["+5", "5.", ".5", "-0", "007", "1e5", "٣", "12,5", "$5", None, "1" + "0" * 400]
    frame = pd.DataFrame({"cost": texts, "quantity": texts}, dtype="str")
    view = validation_view(frame, compiled.contract)
    numbers = [5.0, 5.0, 0.5, -0.0, 7.0, None, None, None, None, None, float("inf")]
    whole = [5.0, 5.0, None, -0.0, 7.0, None, None, None, None, None, float("inf")]
    assert view["cost"].dtype == view["quantity"].dtype == "float64"
    assert [None if v != v else v for v in view["cost"]] == numbers
    assert [None if v != v else v for v in view["quantity"]] == whole


def test_a_typed_value_that_cannot_be_converted_breaks_its_type_rule() -> None:
    """The type rule fails wherever the text is there and its converted value is not: digits of
    other scripts (Python's ``\\d`` takes them, the conversion does not) and dates that match
    the pattern but do not exist are reported, not loaded as empty values."""
    compiled = compile_contract(
        contract_of(
            {"name": "amount", "logicalType": "number"},
            {"name": "count", "logicalType": "integer"},
            {"name": "due", "logicalType": "date"},
            {"name": "flag", "logicalType": "boolean"},
        )
    )
    frame = pd.DataFrame(
        {
            "amount": ["12.50", "\u0663", "\uff11\uff12", None, "twelve"],
            "count": ["7", "\u0667", "7.0", None, "7.5"],
            "due": ["2026-01-31", "2026-02-30", "2026-13-01", None, "31/01/2026"],
            "flag": ["yes", "No", "1", None, "maybe"],
        },
        dtype="str",
        index=pd.RangeIndex(2, 7),
    )
    result = validate_rows(frame, compiled)
    assert [(f.rule, f.kind, f.failures) for f in result.rule_failures] == [
        ("amount.type", "type", 3),
        ("count.type", "type", 2),
        ("due.type", "type", 3),
        ("flag.type", "type", 1),
    ]
    assert result.errors.to_dict() == {
        3: "amount: '\u0663' is not a number; write a number like 12.50; "
        "count: '\u0667' is not a number; write a whole number like 12; "
        "due: '2026-02-30' is not valid; write a date like 2026-01-31",
        4: "amount: '\uff11\uff12' is not a number; write a number like 12.50; "
        "due: '2026-13-01' is not valid; write a date like 2026-01-31",
        6: "amount: 'twelve' is not a number; write a number like 12.50; "
        "count: '7.5' is not a whole number; write a whole number like 12; "
        "due: '31/01/2026' is not valid; write a date like 2026-01-31; "
        "flag: 'maybe' is not valid; write true or false",
    }
    assert list(result.valid_rows.index) == [2, 5]


def test_validating_never_writes_to_a_stored_suite_of_the_same_name() -> None:
    """GX writes every expectation added to a suite whose name its store knows through to the
    store: validations must not add to it (it grew with every file, and each file got slower)."""
    import pandas as pd

    from data_contracts.contract import load_contract
    from data_contracts.suite import compile_contract
    from tasks import validate

    compiled = compile_contract(load_contract("catalog_item"))
    context = validate._gx_context()
    stored = compiled.build_suite(context)
    frame = pd.DataFrame(
        {"sku": ["A"], "title": ["t"], "brand": ["b"], "cost": ["1"], "quantity": ["1"]},
        dtype="str",
    )
    frame.index = pd.RangeIndex(2, 3)
    for _ in range(3):
        assert validate.validate_rows(frame, compiled).rows_invalid == 0
    assert len(context.suites.get(stored.name).expectations) == len(compiled.rules)


def test_only_rules_that_leave_out_empty_values_run_without_them() -> None:
    """Rules GX runs on non-empty values only get a batch without the empty rows; required
    rules, type rules and rules over two columns see every row."""
    from great_expectations.execution_engine import PandasExecutionEngine

    from tasks.validate import _leaves_out_empty_values

    compiled = compile_contract(load_contract("catalog_item"))
    engine = PandasExecutionEngine()
    without_empty = {rule.id for rule in compiled.rules if _leaves_out_empty_values(rule, engine)}
    every_row = {
        rule.id
        for rule in compiled.rules
        if rule.kind in ("required", "type") or "column_A" in rule.expectation.configuration.kwargs
    }
    assert without_empty == {rule.id for rule in compiled.rules} - every_row
    assert {"sku.unique", "gtin.pattern", "gtin_check_digit", "cost.range", "status_values"} <= (
        without_empty
    )
    assert {"sku.required", "cost.type", "msrp_not_below_cost"} <= every_row
