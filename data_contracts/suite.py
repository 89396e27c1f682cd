"""Compiling a contract into a Great Expectations suite.

Every rule of the contract becomes exactly one expectation, tagged in its ``meta`` with the
rule's id, column and kind; a rule that cannot be compiled raises :class:`ContractError`.
GX itself would log and skip an unknown expectation type, so expectation classes are looked
up in GX's registry here, where an unknown one is an error.

The frame the suite runs on (see :func:`validation_view`) holds every contract column under
its own name, as text for strings and converted for typed columns (numbers, integers, dates,
booleans; empty where the text is not a valid value), plus ``<column>__text`` holding the
text of each typed column, on which the required rule runs. A type rule fails where the text
is there and its converted value is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from great_expectations.data_context import AbstractDataContext
from great_expectations.exceptions import ExpectationNotFoundError
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.registry import get_expectation_impl

from data_contracts.contract import Contract, ContractColumn, ContractError
from data_contracts.expectations import ExpectColumnPairValuesToBeConverted

TEXT_SUFFIX = "__text"

# Text is converted only where it matches its type's pattern, so that "twelve" and "12,5" are
# left unconverted and reported by the type rule, not coerced.
TYPE_PATTERNS = {
    "number": r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$",
    "integer": r"^[+-]?\d+(?:\.0*)?$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "boolean": r"^(?i:true|false|yes|no|y|n|1|0)$",
}
TYPE_HINTS = {
    "number": "a number like 12.50",
    "integer": "a whole number like 12",
    "date": "a date like 2026-01-31",
    "boolean": "true or false",
}
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})

RANGE_OPTIONS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
LENGTH_OPTIONS = frozenset({"minLength", "maxLength"})
STRING_OPTIONS = frozenset({"pattern"}) | LENGTH_OPTIONS


@dataclass(frozen=True)
class Rule:
    """One executable rule of a contract and the expectation that checks it."""

    id: str
    column: str | None  # None: a rule about the whole table
    kind: str  # required, type, unique, pattern, length, range, values, custom
    expectation: Expectation
    description: str | None = None


@dataclass(frozen=True)
class CompiledContract:
    contract: Contract
    rules: tuple[Rule, ...]

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def build_suite(
        self,
        context: AbstractDataContext,
        name: str | None = None,
        rules: tuple[Rule, ...] | None = None,
    ) -> gx.ExpectationSuite:
        """A GX suite in ``context`` holding one expectation per rule (all, or ``rules``)."""
        return context.suites.add(self.suite(name, rules))

    def suite(
        self,
        name: str | None = None,
        rules: tuple[Rule, ...] | None = None,
        batch_ids: Mapping[str, str] | None = None,
    ) -> gx.ExpectationSuite:
        """A GX suite holding one expectation per rule (all, or ``rules``), kept in no store.

        ``batch_ids`` (rule id -> batch id) pins each expectation to the batch it runs on, for
        a validation over several batches at once. Needs an active GX context.
        """
        suite = gx.ExpectationSuite(name=name or f"{self.contract.name}-{self.contract.version}")
        rules = self.rules if rules is None else rules
        for rule in rules:
            update = {"batch_id": batch_ids[rule.id]} if batch_ids else {}
            suite.add_expectation(rule.expectation.copy(update=update, deep=True))
        if len(suite.expectations) != len(rules):
            raise ContractError(
                f"{self.contract.name}: GX kept {len(suite.expectations)} of {len(rules)} rules"
            )
        return suite


def columns_named_in(kwargs: dict[str, Any]) -> tuple[str, ...]:
    """The columns an expectation's kwargs name, in order, each once."""
    names = [str(kwargs[k]) for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    names += [str(c) for c in kwargs.get("column_list") or []]
    return tuple(dict.fromkeys(names))


def columns_read_by(rule: Rule) -> tuple[str, ...] | None:
    """The validation-view columns a rule's expectation reads; None for table-level rules."""
    return columns_named_in(rule.expectation.configuration.kwargs) or None


def text_column(column: ContractColumn) -> str:
    """Name of the column in the validation view that holds the column's text."""
    return column.name + TEXT_SUFFIX if column.is_typed else column.name


def compile_contract(contract: Contract) -> CompiledContract:
    rules: list[Rule] = []
    for column in contract.columns:
        rules.extend(_column_rules(contract, column))
    for index, quality in enumerate(contract.table_quality):
        rules.append(_quality_rule(contract, None, quality, f"table.quality[{index}]"))
    ids = [rule.id for rule in rules]
    duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if duplicates:
        raise ContractError(f"{contract.name}: rule names used twice: {', '.join(duplicates)}")
    return CompiledContract(contract=contract, rules=tuple(rules))


def _column_rules(contract: Contract, column: ContractColumn) -> list[Rule]:
    name = column.name
    rules: list[Rule] = []
    if column.required:
        rules.append(
            _rule(
                f"{name}.required",
                name,
                "required",
                gxe.ExpectColumnValuesToNotBeNull(column=text_column(column)),
            )
        )
    if column.is_typed:
        rules.append(
            _rule(
                f"{name}.type",
                name,
                "type",
                ExpectColumnPairValuesToBeConverted(column_A=text_column(column), column_B=name),
                hint=TYPE_HINTS[column.logical_type],
                logical_type=column.logical_type,
            )
        )
    if column.unique:
        rules.append(
            _rule(f"{name}.unique", name, "unique", gxe.ExpectColumnValuesToBeUnique(column=name))
        )
    rules.extend(_option_rules(contract, column))
    for index, quality in enumerate(column.quality):
        rules.append(_quality_rule(contract, column, quality, f"{name}.quality[{index}]"))
    return rules


def _option_rules(contract: Contract, column: ContractColumn) -> list[Rule]:
    name, options = column.name, column.options
    allowed = RANGE_OPTIONS if column.logical_type in ("number", "integer") else STRING_OPTIONS
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ContractError(
            f"{contract.name}: column {name} ({column.logical_type}): logicalTypeOptions "
            f"{', '.join(unknown)} cannot be checked (supported: {', '.join(sorted(allowed))})"
        )
    rules: list[Rule] = []
    if "pattern" in options:
        rules.append(
            _rule(
                f"{name}.pattern",
                name,
                "pattern",
                _regex_expectation(name, str(options["pattern"])),
                hint=column.hint,
                pattern=str(options["pattern"]),
            )
        )
    if LENGTH_OPTIONS & set(options):
        rules.append(
            _rule(
                f"{name}.length",
                name,
                "length",
                gxe.ExpectColumnValueLengthsToBeBetween(
                    column=name,
                    min_value=options.get("minLength"),
                    max_value=options.get("maxLength"),
                ),
            )
        )
    if RANGE_OPTIONS & set(options):
        rules.append(_rule(f"{name}.range", name, "range", _range_expectation(contract, column)))
    return rules


def _range_expectation(contract: Contract, column: ContractColumn) -> Expectation:
    """minimum/maximum, and exclusiveMinimum/Maximum as ODCS writes them: either a bound
    of its own (``exclusiveMinimum: 0``) or a flag on minimum (``exclusiveMinimum: true``)."""
    options = column.options
    bounds: dict[str, Any] = {"column": column.name}
    for side in ("min", "max"):
        inclusive_key = "minimum" if side == "min" else "maximum"
        exclusive_key = "exclusiveMinimum" if side == "min" else "exclusiveMaximum"
        inclusive, exclusive = options.get(inclusive_key), options.get(exclusive_key)
        if isinstance(exclusive, bool):
            if exclusive and inclusive is None:
                raise ContractError(
                    f"{contract.name}: column {column.name}: {exclusive_key}: true needs "
                    f"{inclusive_key}"
                )
            bounds[f"{side}_value"], bounds[f"strict_{side}"] = inclusive, exclusive
        elif exclusive is not None:
            if inclusive is not None:
                raise ContractError(
                    f"{contract.name}: column {column.name}: give {inclusive_key} or "
                    f"{exclusive_key}, not both"
                )
            bounds[f"{side}_value"], bounds[f"strict_{side}"] = exclusive, True
        elif inclusive is not None:
            bounds[f"{side}_value"] = inclusive
    return gxe.ExpectColumnValuesToBeBetween(**bounds)


# What Python's ``\s`` matches in a text pattern, the characters for which str.isspace() is
# true (a test checks it against ``re``), as the body of a character class that Python and
# RE2 both read: escapes for the ASCII ones, the others as themselves.
PYTHON_WHITESPACE_CLASS = (
    r"\t\n\v\f\r\x1c-\x1f " + "\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)

# An inline ASCII flag, (?a) or (?a:...), makes \s ASCII only.
_ASCII_FLAG = re.compile(r"\(\?[aiLmsux-]*a")


def _regex_expectation(column: str, pattern: str) -> Expectation:
    return gxe.ExpectColumnValuesToMatchRegex(column=column, regex=spell_out_whitespace(pattern))


def spell_out_whitespace(pattern: str) -> str:
    """``pattern`` with ``\\s`` and ``\\S`` spelled out as the characters Python's ``re`` reads.

    pandas matches Arrow text with RE2, a whole column at once, unless the pattern holds
    something RE2 reads differently from Python; ``\\s`` is one (RE2's misses ``\\v`` and the
    Unicode spaces), and then pandas runs Python's ``re`` value by value, thirty times
    slower. Spelled out, the pattern matches exactly the same values. A pattern that cannot be
    spelled out so (``\\S`` inside a character class) is returned as it is.
    """
    if _ASCII_FLAG.search(pattern):
        return pattern
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped == "s":
                body = PYTHON_WHITESPACE_CLASS
                out.append(body if in_class else f"[{body}]")
            elif escaped == "S":
                if in_class:
                    return pattern
                out.append(f"[^{PYTHON_WHITESPACE_CLASS}]")
            else:
                out.append(pattern[index : index + 2])
            index += 2
            continue
        out.append(char)
        index += 1
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A "]" first in a class (after an optional "^") is a literal, not its end.
            for lead in ("^", "]"):
                if pattern.startswith(lead, index):
                    out.append(lead)
                    index += 1
    return "".join(out)


LIBRARY_METRICS = ("nullValues", "duplicateValues", "invalidValues")


def _quality_rule(
    contract: Contract, column: ContractColumn | None, quality: dict[str, Any], fallback_id: str
) -> Rule:
    rule_id = str(quality.get("name") or fallback_id)
    where = f"{contract.name}: rule {rule_id}"
    rule_type = quality.get("type", "library")
    description = quality.get("description")
    if rule_type == "library":
        if column is None:
            raise ContractError(f"{where}: library rules belong to a column")
        return _library_rule(where, rule_id, column, quality, description)
    if rule_type == "custom" and str(quality.get("engine", "")).lower() == "greatexpectations":
        expectation, reported_column = _custom_expectation(where, contract, column, quality)
        return _rule(rule_id, reported_column, "custom", expectation, description)
    raise ContractError(
        f"{where}: type {rule_type!r}"
        + (f" with engine {quality.get('engine')!r}" if quality.get("engine") else "")
        + " cannot be checked on files; use a library rule or type: custom with "
        "engine: greatExpectations"
    )


def _library_rule(
    where: str,
    rule_id: str,
    column: ContractColumn,
    quality: dict[str, Any],
    description: str | None,
) -> Rule:
    metric = quality.get("metric") or quality.get("rule")
    if metric not in LIBRARY_METRICS:
        raise ContractError(
            f"{where}: library metric {metric!r} is not supported "
            f"(supported: {', '.join(LIBRARY_METRICS)})"
        )
    if quality.get("mustBe", 0) != 0 or set(quality) & {"mustBeGreaterThan", "mustBeLessThan"}:
        raise ContractError(f"{where}: only mustBe: 0 is supported (every row must pass)")
    arguments = quality.get("arguments") or {}
    name = column.name
    if metric == "nullValues":
        expectation: Expectation = gxe.ExpectColumnValuesToNotBeNull(column=text_column(column))
        return _rule(rule_id, name, "required", expectation, description)
    if metric == "duplicateValues":
        expectation = gxe.ExpectColumnValuesToBeUnique(column=name)
        return _rule(rule_id, name, "unique", expectation, description)
    if "validValues" in arguments:
        values = [str(v) for v in arguments["validValues"]]
        expectation = gxe.ExpectColumnValuesToBeInSet(column=text_column(column), value_set=values)
        return _rule(rule_id, name, "values", expectation, description)
    if "pattern" in arguments:
        pattern = str(arguments["pattern"])
        expectation = _regex_expectation(text_column(column), pattern)
        return _rule(
            rule_id, name, "pattern", expectation, description, hint=column.hint, pattern=pattern
        )
    raise ContractError(f"{where}: invalidValues needs arguments.validValues or arguments.pattern")


def _custom_expectation(
    where: str, contract: Contract, column: ContractColumn | None, quality: dict[str, Any]
) -> tuple[Expectation, str | None]:
    implementation = quality.get("implementation")
    if isinstance(implementation, str):
        try:
            implementation = yaml.safe_load(implementation)
        except yaml.YAMLError as exc:
            raise ContractError(f"{where}: implementation is not valid YAML: {exc}") from exc
    if not isinstance(implementation, dict) or "type" not in implementation:
        raise ContractError(f"{where}: implementation must give an expectation type and kwargs")
    expectation_type = str(implementation["type"])
    kwargs = dict(implementation.get("kwargs") or {})
    try:
        expectation_class = get_expectation_impl(expectation_type)
    except ExpectationNotFoundError as exc:
        raise ContractError(
            f"{where}: unknown Great Expectations type {expectation_type!r}"
        ) from exc
    referenced = list(columns_named_in(kwargs))
    for name in referenced:
        if name not in contract.column_names:
            raise ContractError(f"{where}: refers to column {name!r}, which the contract lacks")
    try:
        expectation = expectation_class(**kwargs)
    except Exception as exc:  # GX raises pydantic and its own errors for bad kwargs
        raise ContractError(f"{where}: {expectation_type}: invalid kwargs: {exc}") from exc
    reported = referenced[0] if referenced else (column.name if column else None)
    return expectation, reported


def _rule(
    rule_id: str,
    column: str | None,
    kind: str,
    expectation: Expectation,
    description: str | None = None,
    hint: str | None = None,
    logical_type: str | None = None,
    pattern: str | None = None,
) -> Rule:
    """``hint`` (the contract's wording of a valid value) and ``pattern`` (its regular
    expression as written) go into error messages."""
    meta = {"rule": rule_id, "column": column, "kind": kind}
    extra = {"hint": hint, "logical_type": logical_type, "pattern": pattern}
    expectation.meta = meta | {k: v for k, v in extra.items() if v}
    if description:
        expectation.description = description
    return Rule(rule_id, column, kind, expectation, description)


def validation_view(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The frame a compiled suite runs on, from canonical text columns (None = empty).

    Columns the file lacks are present and empty, so that every rule runs on every file.
    """
    view: dict[str, pd.Series] = {}
    for column in contract.columns:
        text = (
            frame[column.name]
            if column.name in frame.columns
            else pd.Series(None, index=frame.index, dtype="str")
        )
        if not column.is_typed:
            view[column.name] = text
            continue
        view[text_column(column)] = text
        view[column.name] = _convert(text, column.logical_type)
    return pd.DataFrame(view, index=frame.index)


def _convert(text: pd.Series, logical_type: str) -> pd.Series:
    """The values of ``text`` that match the type's pattern, converted; missing elsewhere."""
    pattern = TYPE_PATTERNS[logical_type]
    if logical_type in ("number", "integer"):
        return _to_float(text, pattern)
    text = text.where(text.str.fullmatch(pattern).fillna(False).astype(bool))
    if logical_type == "date":
        return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    lowered = text.str.lower()
    return lowered.isin(TRUE_WORDS).astype("boolean").where(lowered.notna())


def _to_float(text: pd.Series, pattern: str) -> pd.Series:
    """The values of ``text`` that match ``pattern`` as float64, NaN elsewhere.

    In Arrow kernels: RE2 matches a million values in hundredths of a second, and the cast
    parses them ten times faster than ``pd.to_numeric``, rounding as ``float()`` does. RE2's
    ``\\d`` is ASCII only where Python's takes other scripts' digits too, which
    ``pd.to_numeric`` did not parse either: either way those are NaN.
    """
    values = pa.array(text, type=pa.large_string(), from_pandas=True)
    matched = pc.fill_null(pc.match_substring_regex(values, pattern), False)
    numbers = pc.cast(pc.if_else(matched, values, pa.scalar(None, pa.large_string())), pa.float64())
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")
