"""Run names say what ran, for whom and when; tags name the parties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from tasks.flow_runs import first_and_count, run_name, tag_current_run

MOMENT = datetime(2026, 11, 22, 10, 15, 42, tzinfo=UTC)


def test_run_names() -> None:
    assert run_name("ingest", "acme", at=MOMENT) == "ingest-acme-2026-11-22T10:15"
    assert run_name("order-sync", at=MOMENT) == "order-sync-2026-11-22T10:15"
    assert (
        run_name("order-files", "shopco-sftp", "june.csv+2", at=MOMENT)
        == "order-files-shopco-sftp-2026-11-22T10:15-june.csv+2"
    )
    eastern = MOMENT.astimezone(timezone(timedelta(hours=-5)))
    assert run_name("ingest", "acme", at=eastern) == "ingest-acme-2026-11-22T10:15", "in UTC"


def test_first_and_count() -> None:
    assert first_and_count([]) is None
    assert first_and_count(["/in/a.csv"]) == "a.csv"
    assert first_and_count(["/in/a.csv", "b.csv", "c.csv"]) == "a.csv+2"
    assert first_and_count(["PO-ACME-00000001", "PO-ACME-00000002"]) == "PO-ACME-00000001+1"


@pytest.mark.usefixtures("prefect_api")
def test_tags_are_added_once_and_kept() -> None:
    @flow(name="tagging", flow_run_name=lambda: run_name("tagging", "test"))
    def tagging() -> None:
        tag_current_run("supplier:acme")
        tag_current_run("supplier:acme", "retailer:shopco")

    state = tagging(return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert sorted(run.tags) == ["retailer:shopco", "supplier:acme"]
    assert run.name.startswith("tagging-test-")
    tag_current_run("supplier:outside")  # outside a flow run: nothing to tag, no error
