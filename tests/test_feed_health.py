"""Feed health on SQLite and PostgreSQL: stale feeds, rejection-rate jumps, the feed-health flow's
events and artifacts, and ``supplyline status``."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from typer.testing import CliRunner

from flows.feed_health import feed_health
from models.catalog import CatalogFile, Supplier
from models.db import session_scope
from supplyline.cli import app
from tasks.feed_health import FeedRules, file_rejection_rate, supplier_feeds
from tasks.suppliers import add_supplier

pytestmark = pytest.mark.usefixtures("database")
NOW = datetime.now(UTC)
RULES = FeedRules(stale_hours=26, recent_files=3, baseline_files=5, rejection_jump=0.2)

# (status, rows_total, rows_invalid, hours ago), oldest first
STEADY = [("accepted", 20, 0, 100 - n) for n in range(5)] + [("partially_accepted", 20, 1, 3)]
JUMPY = [
    *[("partially_accepted", 20, 1, 200 - n) for n in range(5)],  # baseline: 5% each
    ("partially_accepted", 10, 5, 20),  # 50%
    ("failed", 0, 0, 15),  # our failure: does not count
    ("rejected", 0, 0, 10),  # rejected whole: counts 100%
    ("duplicate", 0, 0, 6),  # a resend: does not count, but it is a file sent
    ("partially_accepted", 10, 5, 5),  # 50%
]


def _supplier(code: str, files: list[tuple[str, int, int, float]], created_hours_ago: float = 500):
    with session_scope() as session:
        supplier = add_supplier(session, code, code.title())
        supplier_id = supplier.id
    with session_scope() as session:
        session.execute(
            sa.update(Supplier)
            .where(Supplier.id == supplier_id)
            .values(created_at=NOW - timedelta(hours=created_hours_ago))
        )
        if files:
            session.execute(
                sa.insert(CatalogFile),
                [
                    {
                        "supplier_id": supplier_id,
                        "original_name": f"{code}-{n}.csv",
                        "source": "sftp",
                        "sha256": uuid.uuid4().hex,
                        "size_bytes": 100,
                        "received_at": NOW - timedelta(hours=hours),
                        "finished_at": NOW - timedelta(hours=hours) + timedelta(minutes=1),
                        "status": status,
                        "rows_total": total,
                        "rows_valid": total - invalid,
                        "rows_invalid": invalid,
                        "contract_name": "catalog_item",
                    }
                    for n, (status, total, invalid, hours) in enumerate(files)
                ],
            )


def _world() -> None:
    _supplier("steady", STEADY)
    _supplier("jumpy", JUMPY)
    _supplier("quiet", [("accepted", 10, 0, 30)])
    _supplier("never", [], created_hours_ago=72)
    _supplier("newcomer", [], created_hours_ago=2)
    _supplier("short", [("partially_accepted", 10, 5, 1)] * 3)  # no baseline yet


def test_file_rejection_rate() -> None:
    assert file_rejection_rate("partially_accepted", 20, 5) == 0.25
    assert file_rejection_rate("rejected", 0, 0) == 1.0
    assert file_rejection_rate("rejected", 4, 4) == 1.0
    assert file_rejection_rate("accepted", 0, 0) == 0.0


def test_stale_feeds_and_rejection_jumps() -> None:
    _world()
    with session_scope() as session:
        feeds = {f.supplier: f for f in supplier_feeds(session, RULES, now=NOW)}
    assert sorted(feeds) == ["jumpy", "never", "newcomer", "quiet", "short", "steady"]
    stale = {code for code, f in feeds.items() if f.stale}
    assert stale == {"quiet", "never"}
    jumped = {code for code, f in feeds.items() if f.rejection_jump}
    assert jumped == {"jumpy"}

    jumpy = feeds["jumpy"]
    assert (jumpy.last_file, jumpy.last_file_status) == ("jumpy-9.csv", "partially_accepted")
    assert (jumpy.recent_files, jumpy.baseline_files) == (3, 5)
    assert jumpy.recent_rejection_rate == pytest.approx((0.5 + 1.0 + 0.5) / 3, abs=1e-4)
    assert jumpy.baseline_rejection_rate == pytest.approx(0.05)
    assert jumpy.last_success_at == NOW - timedelta(hours=5) + timedelta(minutes=1)
    assert jumpy.hours_since_last_file == pytest.approx(5, abs=0.01)

    steady = feeds["steady"]
    assert steady.recent_rejection_rate == pytest.approx(0.05 / 3, abs=1e-4)
    assert (steady.baseline_files, steady.baseline_rejection_rate) == (3, 0.0)
    assert feeds["short"].recent_rejection_rate == 0.5 and feeds["short"].baseline_files == 0
    never = feeds["never"]
    assert never.last_file is None and never.last_success_at is None
    assert never.hours_since_last_file == pytest.approx(72, abs=0.01)


def test_each_supplier_may_have_its_own_stale_time() -> None:
    _world()
    rules = FeedRules(
        stale_hours=26,
        recent_files=3,
        baseline_files=5,
        rejection_jump=0.2,
        stale_hours_by_supplier={"quiet": 48, "steady": 2},
    )
    with session_scope() as session:
        feeds = {f.supplier: f for f in supplier_feeds(session, rules, now=NOW)}
        only = supplier_feeds(session, rules, now=NOW, suppliers=["quiet"])
    assert {code for code, f in feeds.items() if f.stale} == {"never", "steady"}
    assert (feeds["quiet"].stale_hours, feeds["steady"].stale_hours) == (48, 2)
    assert [f.supplier for f in only] == ["quiet"]


def test_a_bigger_jump_threshold_quiets_the_alarm() -> None:
    _world()
    rules = FeedRules(stale_hours=26, recent_files=3, baseline_files=5, rejection_jump=0.7)
    with session_scope() as session:
        assert not any(f.rejection_jump for f in supplier_feeds(session, rules, now=NOW))


def _events(run_id: object, names: set[str], expected: int) -> list[Any]:
    """The run's events named ``names``, once the server has stored ``expected`` of them."""
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=sorted(names)),
                    related=EventRelatedFilter(id=[f"prefect.flow-run.{run_id}"]),
                ),
                limit=50,
            )
            found = page.events
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_raises_events_and_publishes_the_table() -> None:
    _world()
    state = feed_health(stale_hours={"quiet": 48}, return_state=True)
    feeds = {f["supplier"]: f for f in state.result()}
    assert {c for c, f in feeds.items() if f["stale"]} == {"never"}
    run_id = state.state_details.flow_run_id

    events = _events(run_id, {"supplyline.feed.stale", "supplyline.feed.rejection-jump"}, 2)
    raised = sorted((e.event, e.resource.id) for e in events)
    assert raised == [
        ("supplyline.feed.rejection-jump", "supplyline.supplier.jumpy"),
        ("supplyline.feed.stale", "supplyline.supplier.never"),
    ]
    jump = next(e for e in events if e.event.endswith("rejection-jump"))
    assert jump.payload["recent_files"] == 3 and jump.payload["baseline_files"] == 5

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["feed-health", "feed-health-report"])
            )
        )
    assert run.name.startswith("feed-health-")
    assert {"supplier:jumpy", "supplier:never"} <= set(run.tags)
    mine = {a.key: a for a in artifacts if a.flow_run_id == run_id}
    table = mine["feed-health"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert [r["supplier"] for r in rows] == sorted(feeds)
    report = str(mine["feed-health-report"].data)
    assert "**never**: no file for 72 h" in report and "**jumpy**: 67% of rows" in report


def test_status_command_shows_feeds_and_connections() -> None:
    from order_world import make_world, order

    from tasks.routing import route_received_orders

    _world()
    make_world(auto_sync=False)
    order("O1", ("A-1", 1))
    order("O2", ("A-2", 1), ("G-1", 1))
    with session_scope() as session:
        route_received_orders(session, limit=10, actor="tester")

    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 1, "stale feeds and a jump: exit 1"
    found = json.loads(result.stdout)
    suppliers = {s["supplier"]: s for s in found["suppliers"]}
    assert suppliers["jumpy"]["rejection_jump"] and suppliers["never"]["stale"]
    assert suppliers["acme"]["last_file"] is None
    connections = {(c["retailer"], c["supplier"]): c for c in found["connections"]}
    acme, globex = connections[("shopco", "acme")], connections[("shopco", "globex")]
    assert (acme["connection_status"], acme["open_pos"]) == ("active", 2)
    assert acme["oldest_unsent_po"] == "PO-ACME-00000001"
    assert acme["pos_by_state"] == {"awaiting_sync": 2}
    assert (globex["connection_status"], globex["open_pos"]) == ("pending", 1)

    table = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert table.exit_code == 1
    assert "PO-ACME-00000001" in table.stdout and "rejection jump" in table.stdout
    assert "stale (72 h > 26 h)" in table.stdout
