"""The catalog-check flow on Prefect's ephemeral API: task runs, artifacts, one bad file."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.catalog_check import catalog_check
from supplyline.cli import SAMPLES_DIR


async def _artifacts(key: str) -> list:
    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )


@pytest.mark.usefixtures("prefect_api")
def test_flow_checks_each_file_and_publishes_artifacts(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    files = [
        SAMPLES_DIR / "acme_catalog.csv",
        corrupt,
        shutil.copy(SAMPLES_DIR / "acme_catalog_with_errors.csv", tmp_path / "errors.csv"),
    ]
    summaries = catalog_check(files=[Path(f) for f in files], mapping="acme")
    assert [s["status"] for s in summaries] == ["accepted", "rejected", "partially_accepted"]
    assert "gzip" in summaries[1]["file_errors"][0]
    assert summaries[2]["rows_invalid"] == 8

    table = asyncio.run(_artifacts("catalog-check-acme"))
    assert table and table[0].type == "table"
    assert "gtin_check_digit" in str(table[0].data)
    markdown = asyncio.run(_artifacts("catalog-check-acme-summary"))
    assert "errors.errors.csv" in str(markdown[0].data)
