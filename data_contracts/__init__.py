"""Data contracts (ODCS v3 YAML), supplier mappings, and their compilation into GX suites."""

import os

# Great Expectations reports usage analytics by default; Supplyline never phones home.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
