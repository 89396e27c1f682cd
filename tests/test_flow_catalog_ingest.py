"""The catalog-ingest flow and the catalog CLI on Prefect's ephemeral API, on both databases."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shutil
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from typer.testing import CliRunner

from flows.catalog_ingest import catalog_ingest
from models.db import session_scope
from supplyline.cli import SAMPLES_DIR, app
from tasks.suppliers import add_supplier

pytestmark = pytest.mark.usefixtures("prefect_api", "database")
runner = CliRunner()


async def _artifacts(key: str, flow_run_id: UUID) -> list:
    """Every version of the artifact ``key`` made by one flow run (the API outlives a test)."""
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    return [a for a in artifacts if a.flow_run_id == flow_run_id]


def _file_events(run_id: UUID) -> set[tuple[str, str]]:
    """The run's catalog-file events, once the API has stored them (it writes in batches)."""
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(prefix=["supplyline.catalog.file."]),
                    related=EventRelatedFilter(id=[f"prefect.flow-run.{run_id}"]),
                ),
                limit=50,
            )
            found = {(e.event, e.resource.get("prefect.resource.name")) for e in page.events}
            if len(found) >= 4 or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


async def _flow_run(run_id: str):
    async with get_client() as client:
        return await client.read_flow_run(UUID(run_id))


def test_flow_ingests_each_file_records_history_and_publishes(tmp_path: Path) -> None:
    with session_scope() as session:
        add_supplier(session, "acme", "ACME Tools", mapping="acme", feed_mode="delta")
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    files = [
        SAMPLES_DIR / "acme_catalog.csv",
        corrupt,
        tmp_path / "vanished.csv",
        SAMPLES_DIR / "acme_catalog_with_errors.csv",
        shutil.copy(SAMPLES_DIR / "acme_catalog.csv", tmp_path / "resent.csv"),
    ]
    entries = catalog_ingest(supplier="acme", files=files)
    assert [e["status"] for e in entries] == [
        "accepted",
        "rejected",
        "failed",
        "partially_accepted",
        "duplicate",
    ]
    assert "gzip" in str(entries[1]["message"])
    assert "vanished.csv" in str(entries[2]["message"])
    assert entries[3]["rows_invalid"] == 8 and entries[3]["rows_inserted"] == 1
    assert entries[4]["duplicate_of"] == entries[0]["id"]

    run = asyncio.run(_flow_run(str(entries[0]["flow_run_id"])))
    assert re.fullmatch(r"ingest-acme-\d{4}-\d\d-\d\dT\d\d:\d\d-acme_catalog\.csv\+4", run.name)
    assert "supplier:acme" in run.tags
    table = asyncio.run(_artifacts("catalog-acme", run.id))
    assert len(table) == 3, "one table per validated file, none for the duplicate"
    with_errors = next(a for a in table if str(a.description).startswith(f"#{entries[3]['id']} "))
    assert with_errors.type == "table" and "gtin_check_digit" in str(with_errors.data)
    summary = asyncio.run(_artifacts("catalog-acme-summary", run.id))
    assert len(summary) == 4
    assert any("same content as file" in str(a.data) for a in summary)
    error_file = Path(str(entries[3]["error_file"]))
    assert any(
        f"[{error_file.name}]({error_file.resolve().as_uri()})" in str(a.data) for a in summary
    )
    assert _file_events(run.id) == {
        ("supplyline.catalog.file.accepted", "acme_catalog.csv"),
        ("supplyline.catalog.file.rejected", "corrupt.csv.gz"),
        ("supplyline.catalog.file.partially_accepted", "acme_catalog_with_errors.csv"),
        ("supplyline.catalog.file.duplicate", "resent.csv"),
    }
    link = asyncio.run(_artifacts("catalog-acme-error-file", run.id))
    links = " ".join(str(a.data) for a in link)
    assert "2-corrupt.errors.csv" in links and "acme_catalog_with_errors.errors.csv" in links


def test_catalog_cli_end_to_end(tmp_path: Path) -> None:
    def cli(*args: str) -> tuple[int, str]:
        """Exit code and stdout (messages go to stderr, JSON to stdout)."""
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout

    code, _ = cli("supplier", "add", "globex", "--name", "Globex", "--feed", "full")
    assert code == 0
    again = runner.invoke(app, ["supplier", "add", "globex", "--name", "Again"])
    assert again.exit_code == 3 and "supplier 'globex' already exists" in again.stderr

    full = tmp_path / "globex.csv"
    with full.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "title", "brand", "cost", "quantity"])
        writer.writerows([[f"G-{n}", f"Gadget {n}", "Globex", "3.50", "2"] for n in range(1, 5)])
    code, output = cli("catalog", "upload", str(full), "--supplier", "globex", "--json")
    assert code == 0, output
    first = json.loads(output)[0]
    assert (first["status"], first["source"], first["rows_inserted"]) == ("accepted", "manual", 4)

    truncated = tmp_path / "globex-truncated.csv"
    truncated.write_text(
        "sku,title,brand,cost,quantity\nG-1,Gadget 1,Globex,3.50,2\nG-9,,Globex,1.00,1\n"
    )
    code, output = cli("catalog", "upload", str(truncated), "--supplier", "globex", "--json")
    held = json.loads(output)[0]
    assert (code, held["status"]) == (1, "held")

    code, output = cli("catalog", "errors", str(held["id"]), "-o", str(tmp_path / "e.csv"))
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "e.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["_row"], r["sku"], r["_errors"]) for r in rows] == [
        ("3", "G-9", "title: is required but empty")
    ]
    code, output = cli("catalog", "errors", str(first["id"]))
    assert code == 0 and output == ""

    code, output = cli("catalog", "release", str(held["id"]))
    assert code == 1, output
    assert "partially accepted" in output and "retired: 3" in output
    code, output = cli("catalog", "release", str(held["id"]))
    assert code == 3

    code, output = cli("catalog", "history", "--supplier", "globex", "--json")
    history = json.loads(output)
    assert [h["status"] for h in history] == ["partially_accepted", "accepted"]
    assert history[0]["rows_retired"] == 3 and history[0]["id"] == held["id"]

    code, output = cli(
        "catalog", "products", "--supplier", "globex", "--status", "active", "--json"
    )
    assert [p["sku"] for p in json.loads(output)] == ["G-1"]
    code, output = cli("supplier", "show", "globex", "--json")
    shown = json.loads(output)
    assert shown["products"] == {"active": 1, "discontinued": 3}
    assert len(shown["latest_files"]) == 2
    code, output = cli("supplier", "list", "--json")
    assert [s["code"] for s in json.loads(output)] == ["globex"]
    nobody = runner.invoke(app, ["catalog", "products", "--supplier", "nobody"])
    assert nobody.exit_code == 3
    assert "supplyline supplier add nobody" in nobody.stderr
