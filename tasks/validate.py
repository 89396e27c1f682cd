"""Holding rows against a compiled contract with Great Expectations, and saying what is wrong.

GX decides which rows break which rule; this module turns each failure into a sentence a
supplier can act on (``map_price: 12.00 is below cost 24.00``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import great_expectations as gx
import numpy as np
import pandas as pd
from great_expectations.core.expectation_validation_result import ExpectationValidationResult
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.exceptions import MetricProviderError
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.registry import get_metric_provider
from great_expectations.validator.validator import Validator

from data_contracts.expectations import expected_gs1_check_digit
from data_contracts.mapping import Mapping
from data_contracts.suite import (
    TEXT_SUFFIX,
    CompiledContract,
    Rule,
    columns_read_by,
    validation_view,
)
from supplyline.errors import FileRejected
from supplyline.settings import ReadLimits
from tasks.mapping import MappedTable, apply_mapping
from tasks.parse import RawTable, read_table

logger = logging.getLogger(__name__)

# GX's ephemeral contexts share process-wide state; one validation at a time.
_GX_LOCK = threading.Lock()

Labels = dict[str, str]

_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_CURRENCY = re.compile(r"^[+-]?[$€£¥]\s?[\d.,]+$|^[\d.,]+\s?[$€£¥]$")

# Every failing row's index, for the messages; no partial lists and no index query (a string
# listing every failing index, which nothing here reads).
_RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "partial_unexpected_count": 0,
    "return_unexpected_index_query": False,
}


@dataclass(frozen=True)
class RuleFailure:
    rule: str
    column: str | None
    kind: str
    failures: int


@dataclass
class ValidationResult:
    """Outcome of holding a table against a contract.

    ``errors`` maps each invalid row's number to its messages, ``; ``-joined, in column order.
    ``view`` is the validation view the rules ran on, indexed by row number.
    """

    rows_total: int
    errors: pd.Series
    rule_failures: list[RuleFailure]
    view: pd.DataFrame = field(repr=False)
    table_errors: list[str] = field(default_factory=list)

    @cached_property
    def valid_rows(self) -> pd.DataFrame:
        """The view's rows that passed every rule, typed columns converted, no text copies.

        Built on first use: loading needs it, a check alone does not (it copies every row).
        """
        valid = self.view.drop(index=self.errors.index)
        return valid[[c for c in valid.columns if not c.endswith(TEXT_SUFFIX)]]

    @property
    def rows_invalid(self) -> int:
        return len(self.errors)

    @property
    def rows_valid(self) -> int:
        return self.rows_total - self.rows_invalid


def validate_rows(
    frame: pd.DataFrame, compiled: CompiledContract, labels: Labels | None = None
) -> ValidationResult:
    """Validate canonical text columns (None = empty, index = row number) against a contract.

    ``labels`` names columns in messages as the supplier's file does (canonical -> header).
    """
    view = validation_view(frame, compiled.contract)
    row_numbers = view.index.to_numpy()
    # GX's uniqueness metric mis-handles a non-default index: validate on positions.
    positional = view.reset_index(drop=True)
    results = _run_suite(positional, compiled)

    messages: dict[int, list[str]] = {}
    failures: list[RuleFailure] = []
    table_errors: list[str] = []
    for rule in compiled.rules:
        result = results[rule.id]
        error = _exception_message(result)
        if error is not None:
            raise RuntimeError(f"rule {rule.id} could not run: {error}")
        positions = np.asarray(result.result.get("unexpected_index_list") or [], dtype=np.int64)
        if rule.column is None or rule.expectation.expectation_type.startswith("expect_table"):
            if not result.success:
                table_errors.append(f"{rule.description or rule.id}: not met")
                failures.append(RuleFailure(rule.id, rule.column, rule.kind, 1))
            continue
        failures.append(RuleFailure(rule.id, rule.column, rule.kind, len(positions)))
        if len(positions):
            texts = render_messages(rule, positional, positions, labels)
            for position, text in zip(positions.tolist(), texts, strict=True):
                messages.setdefault(position, []).append(text)

    failing = np.array(sorted(messages), dtype=np.int64)
    errors = pd.Series(
        ["; ".join(messages[position]) for position in failing.tolist()],
        index=pd.Index(row_numbers[failing]),
        dtype=object,
        name="_errors",
    )
    return ValidationResult(
        rows_total=len(view),
        errors=errors,
        rule_failures=failures,
        view=view,
        table_errors=table_errors,
    )


def _run_suite(
    view: pd.DataFrame, compiled: CompiledContract
) -> dict[str, ExpectationValidationResult]:
    """Run every rule in one GX validation; rules reading the same columns share a batch of
    just those columns.

    GX copies a rule's whole batch each time it filters rows (empty values, failures), and it
    filters for nearly every metric: on a batch of the one or two columns the rule reads, that
    copy is cheap. Rules that leave out the rows where their column is empty (all column map
    rules but the required ones) share a batch from which those rows are taken out once: GX
    then finds nothing to leave out, and copies nothing. All the batches are loaded into one
    execution engine and the whole suite is resolved as one metric graph, so GX's fixed costs
    (a validator, a batch fingerprint, stored results) are paid once, not once per group of
    rules.
    """
    with _GX_LOCK:
        context = _gx_context()
        engine = PandasExecutionEngine()
        groups: dict[tuple[tuple[str, ...] | None, bool], list[Rule]] = {}
        for rule in compiled.rules:
            key = (columns_read_by(rule), _leaves_out_empty_values(rule, engine))
            groups.setdefault(key, []).append(rule)
        batches: dict[str, pd.DataFrame] = {}
        batch_ids: dict[str, str] = {}
        for index, ((columns, without_empty), rules) in enumerate(groups.items()):
            batch_id = f"columns-{index}"
            batch = view if columns is None else view[list(columns)]
            if columns is not None and without_empty:
                batch = batch[batch[columns[0]].notna()]
            batches[batch_id] = batch
            batch_ids.update(dict.fromkeys((rule.id for rule in rules), batch_id))
        # A name no store holds: GX writes every expectation added to a suite whose name a
        # store knows (say from add_to) through to that store, which then grows with each file.
        suite = compiled.suite(name=f"run-{uuid.uuid4().hex}", batch_ids=batch_ids)
        for batch_id, frame in batches.items():
            engine.load_batch_data(batch_id, frame)
        validator = Validator(execution_engine=engine, data_context=context)
        configurations = validator.process_expectations_for_validation(
            suite.expectation_configurations
        )
        results = validator.graph_validate(
            configurations, runtime_configuration={"result_format": dict(_RESULT_FORMAT)}
        )
    by_rule = {r.expectation_config.meta["rule"]: r for r in results}
    missing = [rule.id for rule in compiled.rules if rule.id not in by_rule]
    if missing:
        raise RuntimeError(f"GX returned no result for rules: {', '.join(missing)}")
    return by_rule


def _leaves_out_empty_values(rule: Rule, engine: PandasExecutionEngine) -> bool:
    """Whether GX leaves the rows where the rule's column is empty out of the rule, as the
    metric of every column map expectation does unless it is about empty values (its
    ``filter_column_isnull``)."""
    expectation = rule.expectation
    if not isinstance(expectation, ColumnMapExpectation):
        return False
    try:
        provider, _ = get_metric_provider(f"{expectation.map_metric}.condition", engine)
    except MetricProviderError:
        return False  # GX reports the missing metric when it runs the rule
    return bool(getattr(provider, "filter_column_isnull", False))


def _exception_message(result: ExpectationValidationResult) -> str | None:
    """Why GX could not run an expectation, or None when it ran.

    An error in the expectation itself is reported at the top of ``exception_info``; an error
    in one of its metrics under that metric's id, and then the result holds no failing rows.
    """
    info = result.exception_info or {}
    reports = [info, *(value for value in info.values() if isinstance(value, dict))]
    for report in reports:
        if report.get("raised_exception"):
            return str(report.get("exception_message"))
    return None


@lru_cache(maxsize=1)
def _gx_context() -> AbstractDataContext:
    """One ephemeral GX context per process (each new one makes a temporary folder)."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


# --- messages -------------------------------------------------------------------------------


def render_messages(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels | None = None
) -> list[str]:
    """One ``column: message`` per failing row of ``rule``, columns named as in ``labels``."""
    labels = labels or {}
    renderer = _RENDERERS.get(rule.kind, _render_custom)
    if rule.kind == "custom":
        renderer = _CUSTOM_RENDERERS.get(rule.expectation.expectation_type, _render_custom)
    label = labels.get(rule.column or "", rule.column)
    return [f"{label}: {text}" for text in renderer(rule, view, positions, labels)]


def _text(view: pd.DataFrame, column: str, positions: np.ndarray) -> list[str]:
    name = column + TEXT_SUFFIX if column + TEXT_SUFFIX in view.columns else column
    values = view[name].take(positions).to_numpy(dtype=object)
    return ["" if v is None or v != v else str(v) for v in values]


def _render_required(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    return ["is required but empty"] * len(positions)


def _render_type(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    logical_type = rule.expectation.meta["logical_type"]
    expected = rule.expectation.meta["hint"]
    return [
        _type_message(value, logical_type, expected)
        for value in _text(view, rule.column or "", positions)
    ]


def _type_message(value: str, logical_type: str, expected: str) -> str:
    if logical_type not in ("number", "integer"):
        return f"{value!r} is not valid; write {expected}"
    integer = logical_type == "integer"
    if _SCIENTIFIC.match(value):
        return (
            f"{value!r} is in scientific notation: a spreadsheet mangled it; format the column "
            f"as a number with all its digits and export again"
        )
    if integer and re.fullmatch(r"[+-]?\d+\.\d+", value):
        return f"{value!r} is not a whole number; write {expected}"
    if _CURRENCY.match(value):
        return f"{value!r} has a currency symbol; write {expected}, without the symbol"
    if _DECIMAL_COMMA.match(value):
        return f"{value!r} uses a comma for decimals; write {value.replace(',', '.')}"
    if _THOUSANDS.match(value):
        return f"{value!r} has thousands separators; write {value.replace(',', '')}"
    return f"{value!r} is not a number; write {expected}"


def _render_unique(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    values = _text(view, rule.column or "", positions)
    counts = pd.Series(values).value_counts()
    label = labels.get(rule.column or "", rule.column)
    return [
        f"{value!r} appears {counts[value]} times in this file; each {label} must be unique"
        for value in values
    ]


def _render_pattern(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    meta = rule.expectation.meta
    pattern = meta.get("pattern") or rule.expectation.configuration.kwargs["regex"]
    hint = meta.get("hint") or f"the pattern {pattern}"
    messages = []
    for value in _text(view, rule.column or "", positions):
        if _SCIENTIFIC.match(value):
            messages.append(
                f"{value!r} is in scientific notation: a spreadsheet mangled it; format the "
                f"column as Text, restore the full value ({hint}) and export again"
            )
        else:
            messages.append(f"{value!r} is not valid; expected {hint}")
    return messages


def _render_length(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    kwargs = rule.expectation.configuration.kwargs
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    messages = []
    for value in _text(view, rule.column or "", positions):
        size = len(value)
        if high is not None and size > high:
            messages.append(f"is {size} characters long; at most {high} are allowed")
        else:
            messages.append(f"is {size} characters long; at least {low} are needed")
    return messages


def _render_range(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    kwargs = rule.expectation.configuration.kwargs
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    strict_low, strict_high = kwargs.get("strict_min"), kwargs.get("strict_max")
    numbers = view[rule.column or ""].take(positions).to_numpy()
    messages = []
    for text, number in zip(_text(view, rule.column or "", positions), numbers, strict=True):
        if low is not None and (number < low or (strict_low and number == low)):
            bound = f"greater than {_number(low)}" if strict_low else f"at least {_number(low)}"
        else:
            bound = f"less than {_number(high)}" if strict_high else f"at most {_number(high)}"
        messages.append(f"{text} must be {bound}")
    return messages


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _render_values(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    allowed = ", ".join(rule.expectation.configuration.kwargs["value_set"])
    return [
        f"{value!r} is not allowed; use one of: {allowed}"
        for value in _text(view, rule.column or "", positions)
    ]


def _render_pair(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    kwargs = rule.expectation.configuration.kwargs
    column_a, column_b = kwargs["column_A"], kwargs["column_B"]
    relation = "below" if kwargs.get("or_equal") else "not above"
    return [
        f"{a} is {relation} {labels.get(column_b, column_b)} {b}"
        for a, b in zip(
            _text(view, column_a, positions), _text(view, column_b, positions), strict=True
        )
    ]


def _render_gs1(rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels) -> list[str]:
    return [
        f"check digit should be {expected_gs1_check_digit(value)}, not {value[-1]}"
        for value in _text(view, rule.column or "", positions)
    ]


def _render_custom(
    rule: Rule, view: pd.DataFrame, positions: np.ndarray, labels: Labels
) -> list[str]:
    what = rule.description or rule.expectation.expectation_type.replace("_", " ")
    return [
        f"{value!r} breaks rule {rule.id}: {what}"
        for value in _text(view, rule.column or "", positions)
    ]


Renderer = Callable[[Rule, pd.DataFrame, np.ndarray, Labels], list[str]]

_RENDERERS: dict[str, Renderer] = {
    "required": _render_required,
    "type": _render_type,
    "unique": _render_unique,
    "pattern": _render_pattern,
    "length": _render_length,
    "range": _render_range,
    "values": _render_values,
}
_CUSTOM_RENDERERS: dict[str, Renderer] = {
    "expect_column_pair_values_a_to_be_greater_than_b": _render_pair,
    "expect_column_values_to_have_valid_gs1_check_digit": _render_gs1,
    "expect_column_values_to_match_regex": _render_pattern,
    "expect_column_values_to_be_in_set": _render_values,
    "expect_column_values_to_be_between": _render_range,
    "expect_column_values_to_not_be_null": _render_required,
    "expect_column_values_to_be_unique": _render_unique,
}


# --- a whole file ---------------------------------------------------------------------------


@dataclass
class FileValidation:
    """A file read, mapped and validated, or rejected as a whole (``rejection``)."""

    file_name: str
    sha256: str
    size_bytes: int
    contract_name: str
    contract_version: str
    mapping_name: str | None
    raw: RawTable | None = None
    mapped: MappedTable | None = None
    result: ValidationResult | None = None
    rejection: FileRejected | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.rejection is not None or self.result is None:
            return "rejected"
        if self.result.table_errors:
            return "rejected"
        if self.result.rows_invalid == 0:
            return "accepted"
        return "partially_accepted" if self.result.rows_valid else "rejected"

    @property
    def file_errors(self) -> list[str]:
        if self.rejection is not None:
            return [self.rejection.message]
        return list(self.result.table_errors) if self.result else []

    def summary(self) -> dict[str, object]:
        """The JSON summary: totals, counts per column and rule, contract, sha256."""
        result = self.result
        failing = [f for f in (result.rule_failures if result else []) if f.failures]
        columns: dict[str, int] = {}
        for failure in failing:
            if failure.column:
                columns[failure.column] = columns.get(failure.column, 0) + failure.failures
        return {
            "file": self.file_name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "status": self.status,
            "contract": {"name": self.contract_name, "version": self.contract_version},
            "mapping": self.mapping_name,
            "format": self.raw.format if self.raw else None,
            "encoding": self.raw.encoding if self.raw else None,
            "delimiter": self.raw.delimiter if self.raw else None,
            "rows_total": result.rows_total if result else 0,
            "rows_valid": result.rows_valid if result and not result.table_errors else 0,
            "rows_invalid": result.rows_invalid if result else 0,
            "file_errors": self.file_errors,
            "rules": [
                {"rule": f.rule, "column": f.column, "kind": f.kind, "failures": f.failures}
                for f in sorted(failing, key=lambda f: -f.failures)
            ],
            "columns": dict(sorted(columns.items(), key=lambda item: -item[1])),
            "ignored_columns": self.mapped.ignored_headers if self.mapped else [],
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def validate_file(
    path: Path,
    compiled: CompiledContract,
    mapping: Mapping | None = None,
    *,
    file_name: str | None = None,
    limits: ReadLimits | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> FileValidation:
    """Read, map and validate one file. A file-level problem is recorded, never raised.

    The file's sha256 is computed on a thread of its own while the file is read and checked
    (hashlib lets go of the GIL while it hashes).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
        digest = pool.submit(file_sha256, path)
        validation = _validate_file(path, compiled, mapping, file_name, limits, on_stage)
        validation.sha256 = digest.result()
    return validation


def _validate_file(
    path: Path,
    compiled: CompiledContract,
    mapping: Mapping | None,
    file_name: str | None,
    limits: ReadLimits | None,
    on_stage: Callable[[str], None] | None,
) -> FileValidation:
    stage = on_stage or (lambda _name: None)
    validation = FileValidation(
        file_name=file_name or path.name,
        sha256="",
        size_bytes=path.stat().st_size,
        contract_name=compiled.contract.name,
        contract_version=compiled.contract.version,
        mapping_name=mapping.name if mapping else None,
    )
    clock = [time.perf_counter()]

    def timed(name: str) -> None:
        """Seconds spent per step (``read``, ``map``, ``validate``), for run history."""
        clock.append(time.perf_counter())
        validation.timings[name] = clock[-1] - clock[-2]

    try:
        stage("reading")
        validation.raw = read_table(
            path,
            delimiter=mapping.delimiter if mapping else None,
            sheet=mapping.sheet if mapping else None,
            limits=limits,
        )
        timed("read")
        stage("mapping")
        validation.mapped = apply_mapping(validation.raw.frame, compiled.contract, mapping)
        timed("map")
        stage("validating")
        validation.result = validate_rows(
            validation.mapped.frame, compiled, labels=validation.mapped.source_columns
        )
        timed("validate")
    except FileRejected as rejection:
        validation.rejection = rejection
    return validation
