"""Benchmark: a full catalog ingest into PostgreSQL and into SQLite, beside a baseline.

    uv run python bench/catalog_ingest.py                   # 1,000,000 rows
    uv run python bench/catalog_ingest.py --rows 100000     # a quicker run

It takes the catalog CSV of ``bench/catalog_check.py`` (generated, or reused from
``bench/data/``: canonical headers, about 1% of rows with realistic errors) and a copy of it with
1% of the rows changed (their quantity), then measures, each in a fresh Python process so that
peak memory is per measurement:

1. baseline: ``pandas.read_csv`` of the file, plus a ``COPY`` of the file into a PostgreSQL table
   of text columns (what loading the file costs with no validation, no upsert, no history);
2. ingest into PostgreSQL, then into SQLite: a new database and supplier (full feed), then the
   ``catalog-ingest`` flow on Prefect's ephemeral API (started before the clock, as a deployed
   worker's server would be) for the file, then for the changed copy (a re-ingest: 1% updated).

It reports time, rows/s, peak memory and the share of time per step (claim: sha256, archive
copy, history row; read; map; validate; error file; load: upsert, retirements, history; Prefect:
the rest of the flow run's wall time, i.e. task and flow orchestration), against the targets of
the issue: ingest within 6x the baseline, peak memory under 2,500 MB, the re-ingest no slower
than the first. Results go to ``bench/results/`` as JSON.

PostgreSQL: ``SUPPLYLINE_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/
postgres``); the script makes, and drops, its own databases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from catalog_check import (
    PROJECT_DIR,
    RESULT_MARKER,
    RESULTS_DIR,
    _emit,
    _peak_rss_mb,
    _warm_page_cache,
    environment,
    generate_in_subprocess,
)

TARGET_RATIO = 6.0
TARGET_PEAK_MB = 2500.0
CHANGED_SHARE = 0.01
POSTGRES_ADMIN_URL = os.environ.get(
    "SUPPLYLINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STEPS = ("claim", "read", "map", "validate", "error_file", "load")


# --- PostgreSQL scratch databases -----------------------------------------------------------


def _admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


def _scratch_database() -> tuple[str, str]:
    name = f"supplyline_bench_{uuid.uuid4().hex[:10]}"
    _admin(f"CREATE DATABASE {name}")
    return name, POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


# --- the files ------------------------------------------------------------------------------


def changed_copy(path: Path, seed: int) -> Path:
    """The same catalog with the quantity of 1% of its rows changed (cached beside it)."""
    out = path.with_name(path.stem + f"-changed{int(CHANGED_SHARE * 100)}pct.csv")
    if out.exists():
        return out
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(frame), size=int(len(frame) * CHANGED_SHARE), replace=False)
    quantity = pd.to_numeric(frame["quantity"].iloc[picked], errors="coerce")
    frame.loc[frame.index[picked], "quantity"] = np.where(
        quantity.notna(), (quantity.fillna(0) + 1).astype("int64").astype(str), "7"
    )
    partial = out.with_suffix(".partial")
    frame.to_csv(partial, index=False, lineterminator="\n")
    partial.replace(out)
    return out


# --- workers --------------------------------------------------------------------------------


def worker_baseline(path: Path) -> None:
    import psycopg

    started = time.perf_counter()
    frame = pd.read_csv(path)
    read_seconds = time.perf_counter() - started
    name, url = _scratch_database()
    try:
        with psycopg.connect(url) as connection:
            columns = ", ".join(f'"{c}" text' for c in frame.columns)
            connection.execute(f"CREATE TABLE catalog ({columns})")
            started = time.perf_counter()
            with (
                connection.cursor() as cursor,
                cursor.copy("COPY catalog FROM STDIN (FORMAT csv, HEADER true)") as copy,
                path.open("rb") as source,
            ):
                while block := source.read(1 << 20):
                    copy.write(block)
            connection.commit()
            copy_seconds = time.perf_counter() - started
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _emit(
        {
            "seconds": read_seconds + copy_seconds,
            "read_seconds": read_seconds,
            "copy_seconds": copy_seconds,
            "rows": len(frame),
            "peak_rss_mb": _peak_rss_mb(),
        }
    )


def worker_ingest(database: str, path: Path, changed: Path, home: Path) -> None:
    """Two ingests (the file, then its changed copy) through the flow, on a new database."""
    name = None
    if database == "postgresql":
        name, url = _scratch_database()
    else:
        url = f"sqlite:///{home / 'bench.db'}"
    os.environ |= {
        "SUPPLYLINE_HOME": str(home),
        "SUPPLYLINE_DATABASE_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    sys.path.insert(0, str(PROJECT_DIR))
    try:
        from prefect.testing.utilities import prefect_test_harness

        from flows.catalog_ingest import catalog_ingest
        from models.db import session_scope
        from tasks.suppliers import add_supplier

        with prefect_test_harness(server_startup_timeout=180):
            with session_scope() as session:
                add_supplier(session, "bench", "Bench Supplier", feed_mode="full")
            runs = []
            for label, file in (("first", path), ("changed", changed)):
                started = time.perf_counter()
                (entry,) = catalog_ingest(supplier="bench", files=[file], source="sftp")
                seconds = time.perf_counter() - started
                timings = dict(entry.get("timings_s") or {})
                timings["prefect"] = max(0.0, seconds - sum(timings.values()))
                runs.append(
                    {
                        "label": label,
                        "seconds": seconds,
                        "steps": timings,
                        "entry": {
                            k: entry[k]
                            for k in (
                                "status",
                                "rows_total",
                                "rows_valid",
                                "rows_invalid",
                                "rows_inserted",
                                "rows_updated",
                                "rows_retired",
                                "message",
                            )
                        },
                    }
                )
    finally:
        if name:
            from models.db import engine_for

            engine_for(url).dispose()
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _emit({"runs": runs, "peak_rss_mb": _peak_rss_mb()})


def measure(arguments: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        command = [sys.executable, str(Path(__file__).resolve()), *arguments, "--tmp", tmp]
        done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker {arguments} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1].removeprefix(RESULT_MARKER))


# --- the report -----------------------------------------------------------------------------


def report(rows: int, size_mb: float, baseline: dict, ingests: dict[str, dict]) -> str:
    base = float(baseline["seconds"])
    lines = [
        f"{rows:,} rows, {size_mb:,.0f} MB",
        f"baseline: read_csv {baseline['read_seconds']:.2f} s + COPY into PostgreSQL "
        f"{baseline['copy_seconds']:.2f} s = {base:.2f} s "
        f"({rows / base:,.0f} rows/s, peak {baseline['peak_rss_mb']:,.0f} MB)",
        "",
        "| database | ingest | s | rows/s | x baseline | peak MB | "
        + " | ".join(STEPS)
        + " | prefect |",
        "|---|---|---|---|---|---|" + "---|" * (len(STEPS) + 1),
    ]
    verdicts = []
    for database, result in ingests.items():
        first, changed = result["runs"]
        for run in (first, changed):
            seconds = float(run["seconds"])
            shares = " | ".join(
                f"{run['steps'].get(step, 0):.2f} ({run['steps'].get(step, 0) / seconds:.0%})"
                for step in (*STEPS, "prefect")
            )
            lines.append(
                f"| {database} | {run['label']} | {seconds:.2f} | {rows / seconds:,.0f} | "
                f"{seconds / base:.1f} | {result['peak_rss_mb']:,.0f} | {shares} |"
            )
        ratio = float(first["seconds"]) / base
        verdicts += [
            f"{database}: ingest {ratio:.1f}x baseline (target <= {TARGET_RATIO:.0f}x): "
            + ("PASS" if ratio <= TARGET_RATIO else "MISS"),
            f"{database}: peak {result['peak_rss_mb']:,.0f} MB (target < {TARGET_PEAK_MB:,.0f}): "
            + ("PASS" if result["peak_rss_mb"] < TARGET_PEAK_MB else "MISS"),
            f"{database}: re-ingest with 1% changed {changed['seconds']:.2f} s vs first "
            f"{first['seconds']:.2f} s: "
            + ("PASS" if changed["seconds"] <= first["seconds"] else "MISS"),
            f"{database}: first {first['entry']}",
            f"{database}: changed {changed['entry']}",
        ]
    return "\n".join([*lines, "", *verdicts])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--databases", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite"
    )
    parser.add_argument("--worker", choices=["baseline", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--changed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "baseline":
        worker_baseline(args.file)
        return 0
    if args.worker == "ingest":
        worker_ingest(args.database, args.file, args.changed, args.tmp)
        return 0

    path, _expected = generate_in_subprocess(args.rows, args.seed, regenerate=False)
    changed = changed_copy(path, args.seed)
    for file in (path, changed):
        _warm_page_cache(file)
    baseline = measure(["--worker", "baseline", "--file", str(path)])
    print(f"baseline: {baseline['seconds']:.2f} s", flush=True)
    ingests = {}
    for database in args.databases.split(","):
        worker = ["--worker", "ingest", "--database", database]
        ingests[database] = measure([*worker, "--file", str(path), "--changed", str(changed)])
        print(f"{database}: {[round(r['seconds'], 2) for r in ingests[database]['runs']]}")
    text = report(args.rows, path.stat().st_size / 1e6, baseline, ingests)
    print()
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"catalog_ingest-{args.rows}-{stamp}.json"
    payload = {
        "benchmark": "catalog_ingest",
        "when": stamp,
        "rows": args.rows,
        "environment": environment(),
        "baseline": baseline,
        "ingests": ingests,
        "report": text,
    }
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"results: {out.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
