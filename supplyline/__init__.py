"""Supplyline: an integration hub between suppliers and retailers, orchestrated by Prefect."""

import os

__version__ = "0.1.0"

# Prefect's ephemeral API gives up after 20 s, which a busy machine (a CI run, a laptop
# indexing) overshoots; Prefect reads its settings when it is first imported, so this must run
# before that. Set the variable yourself to choose another limit.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
