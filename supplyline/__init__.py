"""Supplyline: an integration hub between suppliers and retailers, orchestrated by Prefect."""

__version__ = "0.1.0"
