"""Benchmark: orders from the intake API to submitted at the supplier sandbox.

    uv run python bench/order_sync.py                      # 10,000 orders, SQLite
    uv run python bench/order_sync.py --postgres           # the same on a new PostgreSQL database
    uv run python bench/order_sync.py --pipelined --api-workers 2

The orders are posted first, then one ``order-sync`` run sends them (``--pipelined``: a process of
its own posts while ``order-sync`` runs again and again, as in a deployment).
The intake API (``supplyline api serve``) and the supplier sandbox (``supplyline sandbox
supplier``) run as processes of their own on loopback, as they would beside a real
deployment; this process posts the orders over HTTP, then runs the ``order-sync`` flow on
Prefect's ephemeral API (its start-up is reported, not counted: a deployment's server is up).

Reported: the intake (wall time, orders/s, CPU seconds of the API process), the sync (wall
time, split into routing, claiming, sending over HTTP, recording, events, and Prefect: the
rest of the flow's wall time), and end to end: orders / (intake + sync). Target: at least 200
orders/s end to end. The script checks that every order became one PO, submitted once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_ORDERS_PER_SECOND = 200
PRODUCTS = 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {seconds} s")


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live children (the API's worker processes)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def set_up_world(secret: str) -> tuple[str, str, str]:
    """Supplier bench with a catalog, retailer shop with an active auto-sync connection and a
    native connector; returns (connector code, API key, API secret)."""
    import sqlalchemy as sa

    from models.catalog import Product, Supplier, utcnow
    from models.db import session_scope
    from tasks.connections import (
        request_connection,
        set_supplier_ordering,
        update_connection_settings,
    )
    from tasks.connectors import add_connector
    from tasks.retailers import add_retailer
    from tasks.suppliers import add_supplier

    with session_scope() as session:
        add_supplier(session, "bench", "Bench Supplies")
        add_retailer(session, "shop", "Shop", actor="bench")
    now = utcnow()
    with session_scope() as session:
        supplier_id = session.execute(sa.select(Supplier.id)).scalar_one()
        session.execute(
            sa.insert(Product),
            [
                {
                    "supplier_id": supplier_id,
                    "sku": f"SKU-{n:05d}",
                    "title": f"Product {n}",
                    "brand": "Bench",
                    "cost": 1 + n % 50,
                    "quantity": 1_000_000,
                    "status": "active",
                    "created_at": now,
                    "changed_at": now,
                }
                for n in range(PRODUCTS)
            ],
        )
    with session_scope() as session:
        set_supplier_ordering(session, "bench", ordering_mode="instant", actor="bench")
        connection = request_connection(session, "shop", "bench", actor="bench")
        update_connection_settings(
            session,
            connection.id,  # type: ignore[arg-type]
            auto_sync=True,
            auto_purchase=True,
            payment_method="ach",
            funds="1000000000.00",
            actor="bench",
        )
        added = add_connector(session, "shop", "native_api", actor="bench")
    assert added.credential is not None
    return added.connector.code, added.credential.credential.client_id, added.credential.secret


def post_orders(
    base_url: str, connector: str, auth: tuple[str, str], count: int, concurrency: int
) -> dict[str, int]:
    import httpx

    chooser = random.Random(1)
    bodies = [
        {
            "order_id": f"B-{n:06d}",
            "ship_to": {
                "name": "Ann",
                "address1": "1 Main St",
                "city": "Springfield",
                "postal_code": "12345",
                "country": "US",
            },
            "lines": [
                {
                    "sku": f"SKU-{chooser.randrange(PRODUCTS):05d}",
                    "quantity": chooser.randint(1, 3),
                    "line_id": str(k),
                }
                for k in range(chooser.randint(1, 3))
            ],
        }
        for n in range(count)
    ]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=base_url, auth=auth, timeout=60, limits=limits) as client:

        def post(body: dict) -> int:
            return client.post(f"/v1/native/{connector}/orders", json=body).status_code

        with ThreadPoolExecutor(concurrency) as pool:
            for code in pool.map(post, bodies):
                statuses[str(code)] = statuses.get(str(code), 0) + 1
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16, help="Clients posting at once.")
    parser.add_argument("--api-workers", type=int, default=1, help="Intake API processes.")
    parser.add_argument("--postgres", action="store_true", help="Use a new PostgreSQL database.")
    parser.add_argument(
        "--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument(
        "--pipelined",
        action="store_true",
        help="Sync again and again while orders arrive (default: post every order, then sync).",
    )
    parser.add_argument("--post-only", nargs=3, metavar=("URL", "CONNECTOR", "ORDERS"))
    args = parser.parse_args()
    if args.post_only:
        url, connector, count = args.post_only
        auth = (os.environ["BENCH_API_KEY"], os.environ["BENCH_API_SECRET"])
        started = time.perf_counter()
        statuses = post_orders(url, connector, auth, int(count), args.concurrency)
        print(json.dumps({"statuses": statuses, "seconds": time.perf_counter() - started}))
        return

    home = Path(tempfile.mkdtemp(prefix="supplyline-bench-orders-"))
    os.environ["SUPPLYLINE_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    database_name = None
    if args.postgres:
        import psycopg

        database_name = f"supplyline_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres_admin_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {database_name}")
        os.environ["SUPPLYLINE_DATABASE_URL"] = (
            args.postgres_admin_url.rsplit("/", 1)[0] + f"/{database_name}"
        )
    from supplyline.settings import get_settings

    database_url = get_settings().resolved_database_url
    sandbox_secret = secrets.token_urlsafe(32)
    connector, api_key, api_secret = set_up_world(sandbox_secret)

    env = os.environ | {"SUPPLYLINE_DATABASE_URL": database_url, "SANDBOX_SECRET": sandbox_secret}
    api_port, sandbox_port = free_port(), free_port()
    cli = [sys.executable, "-m", "supplyline.cli"]
    api_log = (home / "api.log").open("w")
    api = subprocess.Popen(
        [*cli, "api", "serve", "--port", str(api_port), "--workers", str(args.api_workers)],
        env=env,
        stdout=api_log,
        stderr=api_log,
    )
    sandbox = subprocess.Popen(
        [
            *cli,
            "sandbox",
            "supplier",
            "--port",
            str(sandbox_port),
            "--database",
            str(home / "supplier.db"),
            "--client-id",
            "bench",
            "--secret-env",
            "SANDBOX_SECRET",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{api_port}/health")
        wait_for(f"http://127.0.0.1:{sandbox_port}/_sandbox/orders")
        started = time.perf_counter()
        from blocks.supplier_api import SupplierApi
        from flows.order_sync import order_sync
        from models.db import session_scope
        from tasks.connections import set_supplier_ordering

        SupplierApi(
            base_url=f"http://127.0.0.1:{sandbox_port}/v1",
            client_id="bench",
            client_secret=sandbox_secret,
        ).save("supplier-api-bench", overwrite=True)
        prefect_start = time.perf_counter() - started
        with session_scope() as session:
            set_supplier_ordering(
                session,
                "bench",
                order_connector_type="rest_api",
                order_connector_settings={"block": "supplier-api-bench"},
                actor="bench",
            )

        api_cpu_before = cpu_seconds(api.pid)
        sandbox_cpu_before = cpu_seconds(sandbox.pid)
        intake_url = f"http://127.0.0.1:{api_port}"
        started = time.perf_counter()
        if not args.pipelined:
            statuses = post_orders(
                intake_url, connector, (api_key, api_secret), args.orders, args.concurrency
            )
            intake = time.perf_counter() - started
            synced = time.perf_counter()
            summary = order_sync()
            sync = time.perf_counter() - synced
        else:
            # As deployed: retailers post while scheduled syncs run, in processes of their own.
            poster = subprocess.Popen(
                [
                    *(sys.executable, __file__, "--post-only", intake_url, connector),
                    *(str(args.orders), "--concurrency", str(args.concurrency)),
                ],
                env=env | {"BENCH_API_KEY": api_key, "BENCH_API_SECRET": api_secret},
                stdout=subprocess.PIPE,
                text=True,
            )
            summary = {"pos_submitted": 0, "timings_s": {}}
            sync = 0.0
            while True:
                posting_done = poster.poll() is not None
                synced = time.perf_counter()
                run = order_sync()
                sync += time.perf_counter() - synced
                summary["pos_submitted"] += run["pos_submitted"]
                for step, seconds in run["timings_s"].items():
                    summary["timings_s"][step] = summary["timings_s"].get(step, 0.0) + seconds
                if posting_done and run["orders_routed"] == 0 and run["pos_submitted"] == 0:
                    break
                if run["orders_routed"] < 100:
                    time.sleep(1)  # a schedule, not a busy loop: let orders gather
            posted = json.loads(poster.stdout.read())  # type: ignore[union-attr]
            statuses, intake = posted["statuses"], posted["seconds"]
        end_to_end = time.perf_counter() - started
        api_cpu = cpu_seconds(api.pid) - api_cpu_before
        sandbox_cpu = cpu_seconds(sandbox.pid) - sandbox_cpu_before

        import httpx

        held = httpx.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/orders", timeout=120).json()[
            "orders"
        ]
    finally:
        api.terminate()
        sandbox.terminate()
        api.wait(timeout=30)
        sandbox.wait(timeout=30)
    po_numbers = [o["po_number"] for o in held]
    timings = summary["timings_s"]
    inside = sum(timings.values())
    prefect = max(0.0, sync - inside)
    rate = args.orders / end_to_end
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": "postgresql" if args.postgres else "sqlite",
        "mode": "pipelined" if args.pipelined else "sequential",
        "orders": args.orders,
        "concurrency": args.concurrency,
        "api_workers": args.api_workers,
        "load_average": os.getloadavg(),
        "intake_statuses": statuses,
        "intake_s": round(intake, 2),
        "intake_orders_per_s": round(args.orders / intake, 1),
        "api_process_cpu_s": round(api_cpu, 2),
        "sync_s": round(sync, 2),
        "sync_steps_s": timings | {"prefect": round(prefect, 3)},
        "sandbox_process_cpu_s": round(sandbox_cpu, 2),
        "end_to_end_s": round(end_to_end, 2),
        "end_to_end_orders_per_s": round(rate, 1),
        "prefect_api_start_s": round(prefect_start, 2),
        "pos_submitted": summary["pos_submitted"],
        "pos_at_supplier": len(po_numbers),
        "duplicates_at_supplier": len(po_numbers) - len(set(po_numbers)),
    }
    shares = {**timings, "prefect": prefect}
    print(json.dumps(result, indent=2))
    print(f"\nintake (HTTP + API): {intake:.2f} s; order sync: {sync:.2f} s in all, of which")
    for name, seconds in shares.items():
        print(f"  {name:<10} {seconds:8.2f} s  {100 * seconds / sync:5.1f}%")
    verdict = "PASS" if rate >= TARGET_ORDERS_PER_SECOND else "MISS"
    print(f"\nend to end: {rate:.0f} orders/s (target >= {TARGET_ORDERS_PER_SECOND}): {verdict}")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (
        results
        / f"order_sync-{result['database']}-{args.orders}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    ).write_text(json.dumps(result, indent=2))
    if database_name:
        import psycopg

        from models.db import engine_for

        engine_for.cache_clear()
        with psycopg.connect(args.postgres_admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database_name} WITH (FORCE)")
    ok = (
        statuses.get("201") == args.orders
        and summary["pos_submitted"] == args.orders
        and len(po_numbers) == args.orders
        and len(set(po_numbers)) == args.orders
    )
    if not ok:
        raise SystemExit("not every order became one PO submitted once: see above")


if __name__ == "__main__":
    main()
