"""Supplyline as it runs in production, on one machine: a real ``prefect server`` on PostgreSQL,
the ``supplyline`` process work pool, the deployments of prefect.yaml, two process workers, and
Supplyline's own PostgreSQL database, all brought up by ``deploy/local-stack.sh``.

Through the deployments, two suppliers' catalogs come in from their inboxes on a real sshd and a
retailer's order file is taken in (at once, on both workers; a second pickup of one inbox is
refused by its concurrency limit), then two order syncs run (one after the other, by theirs);
every run completes and every row and PO lands once. Headless Chromium then opens that server's
UI and finds the runs and the ``catalog-<supplier>`` artifacts; and the project's whole
prefect.yaml is deployed there as written.

This stack is separate from the session's test harness: its PREFECT_API_URL is only in the
subprocesses' environment and in a client made for it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
import sqlalchemy as sa
import yaml
from browser import Chromium, chromium_path
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import FlowRun
from prefect.events.filters import EventFilter, EventNameFilter

from models.db import engine_for
from sandbox.openssh import OpenSshServer
from sandbox.supplier_api import SupplierSandbox

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = os.environ.get(
    "SUPPLYLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SUPPLIERS = ("alpha", "beta")
RUN_TIMEOUT = 150
TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
RUN_MINUTE = r"\d{4}-\d\d-\d\dT\d\d:\d\d"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _catalog(prefix: str, rows: int, *, broken: bool = False) -> bytes:
    lines = ["sku,title,brand,cost,quantity,status"]
    lines += [f"{prefix}-{n},Item {prefix}-{n},Brand,{n}.50,10,active" for n in range(1, rows + 1)]
    if broken:
        lines.append(f"{prefix}-BAD,,Brand,1.00,10,active")  # no title: rejected
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Stack:
    """The running stack: where it is, and how to talk to it."""

    api_url: str
    ui_url: str
    env: dict[str, str]
    client: SyncPrefectClient
    database_url: str
    stack_dir: Path
    runs: dict[str, FlowRun] = field(default_factory=dict)
    refused: list[FlowRun] = field(default_factory=list)
    sandbox_orders: list[dict[str, Any]] = field(default_factory=list)

    def run(self, *args: str, **env: str) -> str:
        """A command in the stack's environment; its output, or the test fails with it."""
        done = subprocess.run(
            [str(a) for a in args],
            env=self.env | env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start_run(self, deployment: str, **parameters: Any) -> UUID:
        found = self.client.read_deployment_by_name(deployment)
        return self.client.create_flow_run_from_deployment(found.id, parameters=parameters).id

    def wait(self, *run_ids: UUID) -> list[FlowRun]:
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            runs = [self.client.read_flow_run(run_id) for run_id in run_ids]
            if all(r.state and r.state.type.value in TERMINAL for r in runs):
                return runs
            if time.monotonic() > deadline:
                logs = "\n".join(
                    p.read_text()[-3000:] for p in sorted(self.stack_dir.glob("worker-*.log"))
                )
                states = [(r.name, r.state and r.state.name) for r in runs]
                pytest.fail(f"runs not finished after {RUN_TIMEOUT}s: {states}\n{logs}")
            time.sleep(1)


def _admin(statement: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """deploy/local-stack.sh up: server, pool, blocks, migrations, deployments, two workers."""
    work = tmp_path_factory.mktemp("stack")
    suffix = uuid.uuid4().hex[:10]
    prefect_db, supplyline_db = f"stack_prefect_{suffix}", f"stack_supplyline_{suffix}"
    port = _free_port()
    pg_base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SUPPLYLINE_"))}
    env |= {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "SUPPLYLINE_STACK_DIR": str(work),
        "PREFECT_PORT": str(port),
        "PG_ADMIN_URL": POSTGRES_ADMIN_URL,
        "PREFECT_DB": prefect_db,
        "SUPPLYLINE_DB": supplyline_db,
        "WORKERS": "2",
        "PREFECT_FILE": str(_test_prefect_file(work)),
        # Workers look for runs every second, and an enqueued run retries its slot at once.
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
        "SUPPLYLINE_SFTP_RETRY_DELAY_SECONDS": "0.2",
    }
    script = ROOT / "deploy" / "local-stack.sh"
    api_url = f"http://127.0.0.1:{port}/api"
    client: SyncPrefectClient | None = None
    try:
        up = subprocess.run(
            [str(script), "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240
        )
        assert up.returncode == 0, f"local-stack.sh up failed:\n{up.stdout}{up.stderr}"
        client = SyncPrefectClient(api_url)
        client.__enter__()
        yield Stack(
            api_url=api_url,
            ui_url=f"http://127.0.0.1:{port}",
            env=env
            | {
                "PREFECT_API_URL": api_url,
                "PREFECT_HOME": str(work / "prefect-home"),
                "SUPPLYLINE_DATABASE_URL": f"{pg_base}/{supplyline_db}",
                "SUPPLYLINE_HOME": str(work / "home"),
            },
            client=client,
            database_url=f"{pg_base}/{supplyline_db}",
            stack_dir=work,
        )
    finally:
        if client is not None:
            client.__exit__(None, None, None)
        subprocess.run([str(script), "down"], env=env, cwd=ROOT, timeout=120, check=False)
        engine_for(f"{pg_base}/{supplyline_db}").dispose()
        for name in (prefect_db, supplyline_db):
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _test_prefect_file(work: Path) -> Path:
    """The project's prefect.yaml, with the SFTP pickup copied per test supplier (no schedules:
    runs start only when the test starts them)."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    by_flow = {d["entrypoint"].split(":")[1]: d for d in config["deployments"]}
    deployments = []
    for code in SUPPLIERS:
        pickup = copy.deepcopy(by_flow["catalog_sftp_ingest"])
        pickup.pop("schedules")
        pickup["name"] = f"catalog-sftp-{code}"
        pickup["parameters"] = {"supplier": code, "stable_seconds": 0}
        pickup["tags"] = [t for t in pickup["tags"] if not t.startswith("supplier:")]
        pickup["tags"].append(f"supplier:{code}")
        deployments.append(pickup)
    sync = copy.deepcopy(by_flow["order_sync"])
    sync.pop("schedules")
    config["deployments"] = [*deployments, by_flow["order_file_intake"], sync]
    path = work / "prefect.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def ran(stack: Stack, sshd: OpenSshServer, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """Through the deployments, on the stack's two workers: both suppliers' SFTP pickups and a
    retailer's order file at once, then two order syncs at once."""
    work = tmp_path_factory.mktemp("parties")
    known_hosts = work / "known_hosts"
    known_hosts.write_text(sshd.known_hosts)
    files = {
        "alpha": {"catalog.csv": _catalog("A", 30), "catalog-resent.csv": _catalog("A", 30)},
        "beta": {"beta-products.csv": _catalog("B", 20, broken=True)},
    }
    supplyline = BIN / "supplyline"
    with SupplierSandbox(database=work / "supplier.db") as sandbox:
        for code in SUPPLIERS:
            folders = {name: sshd.folder(f"stack-{code}-{uuid.uuid4().hex[:6]}/{name}")
                       for name in ("inbox", "archive", "errors")}  # fmt: skip
            for name, data in files[code].items():
                (folders["inbox"] / name).write_bytes(data)
                shutil.chown(folders["inbox"] / name, user=sshd.user)
            stack.run(supplyline, "supplier", "add", code, "--name", code.title(), "--feed",
                      "full")  # fmt: skip
            stack.run(supplyline, "supplier", "sftp", code, "--host", "127.0.0.1", "--port",
                      str(sshd.port), "--user", sshd.user, "--key-file", str(sshd.client_key),
                      "--known-hosts", str(known_hosts), "--inbox", str(folders["inbox"]),
                      "--archive", str(folders["archive"]), "--errors", str(folders["errors"]),
                      "--check")  # fmt: skip
            stack.run(supplyline, "supplier", "orders", code, "--api-url", sandbox.url,
                      "--client-id", sandbox.client_id, "--secret-env", "SANDBOX_SECRET",
                      SANDBOX_SECRET=sandbox.client_secret)  # fmt: skip
        connector, orders = _retailer(stack)

        first = [stack.start_run(f"catalog-sftp-ingest/catalog-sftp-{code}") for code in SUPPLIERS]
        # A second pickup of alpha's inbox while the first works it: one run per inbox.
        first.append(stack.start_run("catalog-sftp-ingest/catalog-sftp-alpha"))
        first.append(
            stack.start_run(
                "order-file-intake/order-file-intake", connector=connector, files=[str(orders)]
            )
        )
        for run in stack.wait(*first):
            if run.state_name == "Cancelled":
                stack.refused.append(run)
            else:
                stack.runs[run.name] = run
        # Routing needs the catalogs: the syncs come once they are in.
        syncs = [stack.start_run("order-sync/order-sync") for _ in range(2)]
        for run in stack.wait(*syncs):
            stack.runs[f"{run.name} ({run.id})"] = run
        stack.sandbox_orders = sandbox.orders()
    return stack


def _retailer(stack: Stack) -> tuple[str, Path]:
    """Retailer shopco, connected to both suppliers (auto sync, ACH), with an sftp connector;
    returns the connector and an order file of three orders for it."""
    supplyline = BIN / "supplyline"
    stack.run(supplyline, "retailer", "add", "shopco", "--name", "Shop Co")
    for code in SUPPLIERS:
        stack.run(supplyline, "supplier", "settings", code, "--ordering", "instant")
        stack.run(supplyline, "connect", "shopco", code)
        stack.run(supplyline, "connection", "settings", f"shopco/{code}", "--auto-sync",
                  "--auto-purchase", "--payment", "ach", "--funds", "100000")  # fmt: skip
    out = stack.run(supplyline, "connector", "add", "--retailer", "shopco", "--type", "sftp")
    connector = re.search(r"shopco-sftp[\w-]*", out)
    assert connector, out
    orders = stack.stack_dir / "orders.csv"
    header = (
        "order_id,line_id,sku,quantity,unit_cost,shipping_method,ship_to_name,ship_to_address1,"
        "ship_to_city,ship_to_postal_code,ship_to_country"
    )
    address = "standard,Ann Buyer,1 Main St,Springfield,12345,US"
    lines = [("O1", 1, "A-1", 2), ("O1", 2, "B-1", 1), ("O2", 1, "A-2", 1), ("O3", 1, "B-2", 3)]
    orders.write_text(
        "\n".join([header, *(f"{o},{n},{s},{q},9.99,{address}" for o, n, s, q in lines)]) + "\n"
    )
    return connector[0], orders


def _scalar(stack: Stack, query: str) -> Any:
    with engine_for(stack.database_url).connect() as connection:
        return connection.execute(sa.text(query)).all()


def _events(stack: Stack, prefix: str, expected: int) -> list[Any]:
    """Events named ``prefix…`` the server stored (its event persister writes them in batches),
    once there are ``expected`` of them or 30 s have passed."""
    deadline = time.monotonic() + 30
    while True:
        page = stack.client.read_events(
            EventFilter(event=EventNameFilter(prefix=[prefix])), limit=50
        )
        if len(page.events) >= expected or time.monotonic() > deadline:
            return page.events
        time.sleep(0.5)


def test_runs_through_deployments_complete_and_land_everything_once(ran: Stack) -> None:
    runs = list(ran.runs.values())
    failed = [f"{r.name}: {r.state.message}" for r in runs if r.state.type.value != "COMPLETED"]
    assert len(runs) == 5 and not failed, "\n".join(failed)
    # The second pickup of alpha's inbox was refused (CANCEL_NEW) while the first held it.
    [refused] = ran.refused
    deployment = ran.client.read_deployment(refused.deployment_id)
    assert deployment.name == "catalog-sftp-alpha"
    assert "limit reached" in str(refused.state.message), refused.state.message
    # Every run the server knows of is one of these: nothing ran twice or on its own.
    assert {r.id for r in ran.client.read_flow_runs()} == {r.id for r in [*runs, refused]}
    workers = {r.infrastructure_pid for r in runs}
    assert len(workers) == 5, "each run in its own process"
    for code in SUPPLIERS:
        [pickup] = [r for r in runs if r.name.startswith(f"ingest-{code}-")]
        assert re.fullmatch(rf"ingest-{code}-{RUN_MINUTE}", pickup.name)
        assert {f"supplier:{code}", "catalog", "sftp"} <= set(pickup.tags)
    [intake] = [r for r in runs if r.name.startswith("order-files-")]
    assert re.fullmatch(rf"order-files-shopco-sftp-{RUN_MINUTE}-orders\.csv", intake.name)
    assert {"retailer:shopco", "connector:shopco-sftp"} <= set(intake.tags)
    syncs = sorted(
        (r for r in runs if r.name.startswith("order-sync-")), key=lambda r: r.start_time
    )
    assert len(syncs) == 2 and all(re.fullmatch(rf"order-sync-{RUN_MINUTE}", r.name) for r in syncs)
    assert syncs[0].end_time <= syncs[1].start_time, "one order sync at a time (the second waited)"
    assert {"supplier:alpha", "supplier:beta"} <= set(syncs[0].tags) | set(syncs[1].tags)

    files = _scalar(
        ran,
        "SELECT s.code, f.original_name, f.status, f.rows_valid, f.flow_run_id"
        " FROM catalog_file f JOIN supplier s ON s.id = f.supplier_id ORDER BY f.id",
    )
    by_name = {name: (code, status, valid, run_id) for code, name, status, valid, run_id in files}
    assert len(files) == 3
    assert by_name["beta-products.csv"][:3] == ("beta", "partially_accepted", 20)
    alpha_statuses = sorted(by_name[n][1] for n in ("catalog.csv", "catalog-resent.csv"))
    assert alpha_statuses == ["accepted", "duplicate"], "the same content is loaded once"
    pickup_ids = {str(r.id) for r in runs if r.name.startswith("ingest-")}
    assert {run_id for *_, run_id in by_name.values()} <= pickup_ids
    products = dict(
        _scalar(
            ran,
            "SELECT s.code, count(*) FROM product p JOIN supplier s ON s.id = p.supplier_id"
            " GROUP BY s.code",
        )
    )
    assert products == {"alpha": 30, "beta": 20}
    [[distinct]] = _scalar(ran, "SELECT count(DISTINCT (supplier_id, sku)) FROM product")
    assert distinct == 50

    pos = dict(_scalar(ran, "SELECT po_number, state FROM purchase_order"))
    assert len(pos) == 4 and set(pos.values()) == {"submitted"}, pos
    received = Counter(o["po_number"] for o in ran.sandbox_orders)
    assert received == Counter(dict.fromkeys(pos, 1)), "each PO reached the supplier once"
    submitted = _events(ran, "supplyline.pos.submitted", 2)
    assert sorted(
        (e.resource.get("prefect.resource.name"), sorted(e.payload["po_numbers"]))
        for e in submitted
    ) == [
        (code, sorted(n for n in pos if n.startswith(f"PO-{code.upper()}-"))) for code in SUPPLIERS
    ]

    # One event per file, named for what became of it.
    file_events = _events(ran, "supplyline.catalog.file.", 3)
    assert {(e.event, e.resource.get("prefect.resource.name")) for e in file_events} == {
        (f"supplyline.catalog.file.{status}", name) for name, (_, status, *_) in by_name.items()
    }

    status = json.loads(ran.run(BIN / "supplyline", "status", "--json"))
    feeds = {f["supplier"]: f for f in status["suppliers"]}
    assert feeds["beta"]["last_file"] == "beta-products.csv"
    assert feeds["beta"]["recent_rejection_rate"] == pytest.approx(1 / 21, abs=1e-4)
    assert feeds["alpha"]["last_success_at"] is not None
    connections = {c["supplier"]: c for c in status["connections"] if c["retailer"] == "shopco"}
    assert {c: (v["open_pos"], v["oldest_unsent_po"]) for c, v in connections.items()} == {
        "alpha": (2, None),
        "beta": (2, None),
    }

    artifacts = ran.client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["catalog-alpha", "catalog-beta", "pos-shopco-alpha"])
        )
    )
    assert {a.key for a in artifacts} == {"catalog-alpha", "catalog-beta", "pos-shopco-alpha"}


@pytest.mark.skipif(
    chromium_path() is None, reason="no chromium (Debian: apt-get install chromium)"
)
def test_the_ui_shows_the_runs_and_the_catalog_artifact(ran: Stack, tmp_path: Path) -> None:
    names = [run.name for run in ran.runs.values()]
    shots = []
    with Chromium() as browser:
        browser.open(f"{ran.ui_url}/runs")
        browser.wait_for_text(names)
        shots.append(browser.screenshot(tmp_path / "prefect-runs.png"))
        browser.open(f"{ran.ui_url}/artifacts")
        browser.wait_for_text(["catalog-alpha", "catalog-beta", "pos-shopco-alpha"])
        shots.append(browser.screenshot(tmp_path / "prefect-artifacts.png"))
        browser.open(f"{ran.ui_url}/artifacts/key/catalog-beta")
        [pickup] = [n for n in names if n.startswith("ingest-beta-")]
        browser.wait_for_text(["beta-products.csv: partially accepted", pickup])
        shots.append(browser.screenshot(tmp_path / "prefect-catalog-beta.png"))
    for shot in shots:
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    if os.environ.get("SUPPLYLINE_SCREENSHOT_DIR"):
        target = Path(os.environ["SUPPLYLINE_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, target / shot.name)


def test_the_projects_prefect_yaml_deploys_on_a_real_server(ran: Stack) -> None:
    """Every deployment of the project's prefect.yaml, as `prefect deploy --all` applies it
    (to a paused pool of its own here, so that its schedules start nothing): what the server
    holds."""
    pool = "supplyline-yaml-check"
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        deployment["work_pool"]["name"] = pool
    prefect_file = ran.stack_dir / "prefect-yaml-check.yaml"
    prefect_file.write_text(yaml.safe_dump(config, sort_keys=False))
    ran.run(BIN / "prefect", "work-pool", "create", pool, "--type", "process", "--paused")
    ran.run(BIN / "prefect", "--no-prompt", "deploy", "--all", "--prefect-file",
            str(prefect_file), SUPPLYLINE_PROJECT_DIR=str(ROOT))  # fmt: skip

    everything = ran.client.read_deployments()
    deployed = {d.name: d for d in everything if d.work_pool_name == pool}
    assert set(deployed) == {d["name"] for d in config["deployments"]}, [
        (d.name, d.work_pool_name) for d in everything
    ]
    for spec in config["deployments"]:
        found = deployed[spec["name"]]
        assert found.entrypoint == spec["entrypoint"]
        assert set(found.tags) == set(spec["tags"])
        assert found.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]
        assert len(found.schedules) == len(spec.get("schedules", []))
        for schedule in found.schedules:
            assert schedule.schedule.timezone == "America/New_York"
        limit = spec.get("concurrency_limit")
        if limit:
            assert found.global_concurrency_limit.limit == limit["limit"]
            assert found.concurrency_options.collision_strategy == limit["collision_strategy"]
        else:
            assert found.global_concurrency_limit is None
