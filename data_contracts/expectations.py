"""Custom Great Expectations expectations: ones contracts can name in their quality rules, and
the one the compiler uses for type rules.

Importing this module registers them with GX, e.g.
``type: expect_column_values_to_have_valid_gs1_check_digit``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
)
from stdnum import ean

GTIN_LENGTHS = pa.array([8, 12, 13, 14], type=pa.int64())
# GTINs are checked as GTIN-14: shorter ones are left-padded with zeros, which leaves their
# check digit unchanged. Of the 13 digits before the check digit, the 1st, 3rd, ... weigh 3.
_GS1_WEIGHTS = (3, 1) * 6 + (3,)


def gs1_check_digit_ok(values: pd.Series) -> pd.Series:
    """True where a value is not a GTIN-shaped digit string or its check digit is right.

    GTIN-shaped: 8, 12, 13 or 14 ASCII digits. Vectorised over the column in Arrow and numpy:
    the GTINs, left-padded to 14 digits, are one contiguous buffer of digits, weighed a
    column of digits at a time. Values of another shape pass here; the pattern rule reports
    those.
    """
    text = pa.array(values.astype("str"), type=pa.large_string(), from_pandas=True)
    shaped = pc.and_(
        pc.ascii_is_decimal(text), pc.is_in(pc.binary_length(text), value_set=GTIN_LENGTHS)
    )
    shaped = pc.fill_null(shaped, False)
    ok = np.ones(len(text), dtype=bool)
    if not pc.any(shaped).as_py():
        return pd.Series(ok, index=values.index)
    padded = pc.cast(pc.utf8_lpad(pc.filter(text, shaped), 14, "0"), pa.binary(14))
    padded = padded.combine_chunks() if isinstance(padded, pa.ChunkedArray) else padded
    digits = np.frombuffer(padded.buffers()[1], dtype=np.uint8)
    digits = digits[padded.offset * 14 :][: len(padded) * 14].reshape(-1, 14) - ord("0")
    total = np.zeros(len(digits), dtype=np.int32)
    for position, weight in enumerate(_GS1_WEIGHTS):
        total += digits[:, position] * weight
    ok[shaped.to_numpy(zero_copy_only=False)] = (10 - total % 10) % 10 == digits[:, 13]
    return pd.Series(ok, index=values.index)


def expected_gs1_check_digit(value: str) -> str:
    """The check digit a GTIN-shaped ``value`` should end with."""
    return ean.calc_check_digit(value[:-1])


class ColumnValuesValidGs1CheckDigit(ColumnMapMetricProvider):
    condition_metric_name = "column_values.valid_gs1_check_digit"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: object) -> pd.Series:
        return gs1_check_digit_ok(column)


class ExpectColumnValuesToHaveValidGs1CheckDigit(ColumnMapExpectation):
    """Expect GTIN-8/12/13/14 values (UPC-A is GTIN-12) to end with their GS1 check digit."""

    map_metric = "column_values.valid_gs1_check_digit"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)
    library_metadata: ClassVar[dict[str, object]] = {"tags": ["gs1", "gtin"], "contributors": []}


class ColumnPairValuesConverted(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.converted"

    # noinspection PyPep8Naming
    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **kwargs: object) -> pd.Series:
        return column_A.isna() | column_B.notna()


class ExpectColumnPairValuesToBeConverted(ColumnPairMapExpectation):
    """Expect a value in column B wherever column A, the text it was converted from, has one.

    A typed column's type rule: the validation view converts the text of a typed column where
    it matches the type's pattern and leaves the value empty elsewhere, so text without a
    value is text of the wrong type. Checking the conversion, rather than matching the text
    against the pattern a second time, keeps a million-row file's numbers from being matched
    twice. No rows are left out (GX would copy the batch to leave some out): rows without
    text pass.
    """

    ignore_row_if: Literal["neither"] = "neither"
    map_metric = "column_pair_values.converted"
    success_keys: ClassVar[tuple[str, ...]] = ("ignore_row_if", "mostly")
    library_metadata: ClassVar[dict[str, object]] = {"tags": ["type"], "contributors": []}
