"""Custom Great Expectations expectations that contracts can name in their quality rules.

Importing this module registers them with GX, e.g.
``type: expect_column_values_to_have_valid_gs1_check_digit``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from stdnum import ean

GS1_LENGTHS = (8, 12, 13, 14)
# GS1 weights for the 13 digits before the check digit of a GTIN-14 (shorter GTINs are
# left-padded with zeros, which leaves their check digit unchanged).
_GS1_WEIGHTS = np.array([3, 1] * 6 + [3], dtype=np.int64)


def gs1_check_digit_ok(values: pd.Series) -> pd.Series:
    """True where a value is not a GTIN-shaped digit string or its check digit is right.

    Vectorised over the column: one pass of numpy arithmetic instead of a Python call per
    row. Values of the wrong shape pass here; the pattern rule reports those.
    """
    text = values.astype("string")
    shaped = text.str.fullmatch(r"\d{8}|\d{12,14}").fillna(False).to_numpy(dtype=bool)
    ok = np.ones(len(text), dtype=bool)
    if not shaped.any():
        return pd.Series(ok, index=values.index)
    padded = text[shaped].str.zfill(14).to_numpy(dtype=str).astype("S14")
    digits = np.frombuffer(padded.tobytes(), dtype=np.uint8).reshape(-1, 14).astype(np.int64) - 48
    expected = (10 - (digits[:, :13] @ _GS1_WEIGHTS) % 10) % 10
    ok[shaped] = expected == digits[:, 13]
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
