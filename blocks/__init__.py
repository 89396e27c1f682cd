"""Prefect blocks: connection settings, credentials and their client methods."""
