"""The logger a step should use: its Prefect run's, or a plain one when called outside a run."""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The current flow or task run's logger (shown in the Prefect UI); ``supplyline`` outside
    a run, e.g. when a step is called as a plain function."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("supplyline")
