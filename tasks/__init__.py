"""Tasks: small, named steps of the flows (one module per step family)."""
