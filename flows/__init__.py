"""Prefect flows: thin compositions of tasks (one module per flow)."""
