"""Benchmark: ``catalog check`` on a generated catalog CSV, beside a plain ``pandas.read_csv``.

    uv run python bench/catalog_check.py                  # 1,000,000 rows and 100,000 rows
    uv run python bench/catalog_check.py --rows 200000 --repeat 3 --no-cli

For each size (``--rows`` and ``--rows``/10) it generates, or reuses from ``bench/data/``, a
deterministic catalog CSV with the canonical headers and about 1% of rows holding realistic
errors, then measures, each in a fresh Python process so that peak memory is per measurement:

1. baseline: ``pandas.read_csv(path)``;
2. check: ``tasks.check.check_catalog_file(path, errors_dir=tmp)`` in-process, excluding
   interpreter start-up and imports, broken down by stage through ``on_stage``;
3. CLI: ``uv run supplyline catalog check FILE --json`` wall time, imports included (information
   only; pass ``--no-cli`` to skip it).

It prints a table against the targets of the issue (check within 4x the baseline read, peak
memory under 2,500 MB, 10x the rows costs at most 12x the time), checks that the summary counts
match the errors injected, and writes the results as JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
RESULTS_DIR = BENCH_DIR / "results"

# Bump when the generator's output changes, so that cached files are not reused.
GENERATOR_VERSION = 1

TARGET_RATIO = 4.0  # check time / baseline read time
TARGET_PEAK_MB = 2500.0  # peak RSS of the check process
TARGET_SCALING = 12.0  # check time at N rows / check time at N/10 rows

RESULT_MARKER = "BENCH_RESULT "

HEADERS = (
    "sku",
    "title",
    "brand",
    "description",
    "gtin",
    "category",
    "cost",
    "map_price",
    "msrp",
    "quantity",
    "weight_lb",
    "length_in",
    "width_in",
    "height_in",
    "image_urls",
    "status",
)

# --- the generator -------------------------------------------------------------------------

BRANDS = np.array(
    [
        "ACME",
        "Bolt & Nut Co",
        "Ridgeway",
        "NorthPeak",
        "Ferro",
        "Kestrel",
        "Sunbeam Home",
        "Ironclad",
        "BlueRiver",
        "Atlas Supply",
        "Hügel Werkzeug",
        "Orchard & Vine",
    ],
    dtype=object,
)
BRAND_CODES = np.array(
    ["ACM", "BNC", "RDG", "NPK", "FER", "KES", "SBH", "IRC", "BLR", "ATL", "HUG", "ORV"],
    dtype=object,
)
CATEGORIES = np.array(
    [
        "Hand Tools",
        "Power Tools",
        "Measuring",
        "Fasteners",
        "Plumbing",
        "Electrical",
        "Garden",
        "Paint & Supplies",
        "Safety",
        "Storage",
        "Hardware > Hinges",
        "Lighting",
    ],
    dtype=object,
)
ADJECTIVES = np.array(
    [
        "Heavy-Duty",
        "Compact",
        "Professional",
        "Stainless",
        "Cordless",
        "Magnetic",
        "Adjustable",
        "Folding",
        "Insulated",
        "Weatherproof",
        "Classic",
        "Ergonomic",
    ],
    dtype=object,
)
NOUNS = np.array(
    [
        "Claw Hammer",
        "Tape Measure",
        "Utility Knife",
        "Drill Driver",
        "Socket Set",
        "Pipe Wrench",
        "Wood Screws",
        "Cable Ties",
        "Garden Hose",
        "Paint Roller",
        "Work Gloves",
        "Tool Box",
        "LED Work Light",
        "Extension Cord",
        "Level",
        "Chisel Set",
        "Pruning Shears",
        "Wire Stripper",
        "Hex Key Set",
        "Caulk Gun",
    ],
    dtype=object,
)
SIZES = np.array(
    [
        "16 oz",
        "25 ft",
        "12 in",
        '1/2"',
        "Pack of 100",
        "Set of 12",
        "50 ft",
        "3/8 in drive",
        "Size L",
        "9 in x 3/8 in",
        "20 V",
        "½ in",
    ],
    dtype=object,
)
SENTENCES_A = np.array(
    [
        "Fiberglass handle, forged steel head.",
        'Magnetic tip, "nite-eye" markings; belt clip included.',
        'Hardened 2" blade, stainless steel, lifetime warranty.',
        "Chrome vanadium steel, satin finish.",
        'Rated 15 A / 125 V, 16/3 gauge, "all-weather" jacket.',
        "Lightweight, durable and easy to clean.",
        "Non-slip grip; fits most standard holders.",
        "Zinc-plated for corrosion resistance, 100 per box.",
    ],
    dtype=object,
)
SENTENCES_B = np.array(
    [
        "Ideal for home, shop or job site.",
        'Includes 6 bits (1/4", 3/8", 1/2") and a storage case.',
        "Meets ANSI Z87.1, CSA certified.",
        "Backed by a 2-year warranty.",
        "Sold individually.",
        'The "original" design, improved.',
        "Made in USA of global materials.",
        "Crème finish, 10% recycled packaging.",
    ],
    dtype=object,
)
COST_TEXTS = np.array(["twelve", "twelve", "12,50", "$8.99", "TBD"], dtype=object)

# Error kinds: the rule each one breaks (exactly one per row; a duplicate pair breaks it twice).
ERROR_RULES = {
    "bad_check_digit": "gtin_check_digit",
    "cost_not_a_number": "cost.type",
    "negative_quantity": "quantity.range",
    "duplicate_sku": "sku.unique",
    "msrp_below_cost": "msrp_not_below_cost",
}


def _digits_to_text(digits: np.ndarray) -> np.ndarray:
    """A (rows, width) array of decimal digits as an object array of strings, vectorised."""
    width = digits.shape[1]
    ascii_codes = np.ascontiguousarray(digits.astype(np.uint8) + ord("0"))
    return ascii_codes.view(f"S{width}").ravel().astype(f"U{width}").astype(object)


def _zero_padded(values: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return _digits_to_text((values[:, None] // powers) % 10)


def gs1_check_digits(body: np.ndarray) -> np.ndarray:
    """GS1 check digits of a (rows, width) array of digits: weights 3, 1, 3, ... from the
    right of the body (the digit next to the check digit weighs 3)."""
    width = body.shape[1]
    weights = np.where((width - 1 - np.arange(width)) % 2 == 0, 3, 1)
    return (10 - (body @ weights) % 10) % 10


def _gtins(rng: np.random.Generator, length: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` valid GTIN-``length`` digit arrays and their check digits."""
    body = rng.integers(0, 10, size=(rows, length - 1), dtype=np.int64)
    if length == 12:
        body[:, 0] = rng.choice([0, 0, 0, 6, 7, 8], size=rows)  # UPC-A number systems
    else:
        prefixes = np.array([[4, 0], [5, 0], [7, 6], [8, 0], [9, 3], [4, 9]])
        body[:, :2] = prefixes[rng.integers(0, len(prefixes), size=rows)]
    return body, gs1_check_digits(body)


def _money(values: np.ndarray) -> np.ndarray:
    return np.round(values, 2).astype(str).astype(object)


def generate_catalog(rows: int, seed: int) -> tuple[pd.DataFrame, dict[str, object]]:
    """A realistic catalog with about 1% of rows broken; returns it and what was injected."""
    rng = np.random.default_rng(seed)
    n = rows

    # Errors first: disjoint rows per kind, 0.2% of the rows each (duplicates: 0.1% pairs).
    per_kind = max(2, n // 500)
    if len(ERROR_RULES) * per_kind > n:
        raise ValueError(f"too few rows ({n:,}) to inject errors; use at least 1,000")
    order = rng.permutation(n)
    error_rows = {
        kind: order[i * per_kind : (i + 1) * per_kind] for i, kind in enumerate(ERROR_RULES)
    }
    dup_first = error_rows["duplicate_sku"][: per_kind // 2]
    dup_second = error_rows["duplicate_sku"][per_kind // 2 : 2 * (per_kind // 2)]

    # SKU: brand code + an 8-digit number; i -> (i * stride + offset) mod 1e8 is a bijection.
    brand = rng.integers(0, len(BRANDS), size=n)
    numbers = (np.arange(n, dtype=np.int64) * 7_919_311 + int(rng.integers(0, 10**8))) % 10**8
    sku = BRAND_CODES[brand] + "-" + _zero_padded(numbers, 8)
    sku[dup_second] = sku[dup_first]

    noun = rng.integers(0, len(NOUNS), size=n)
    title = (
        BRANDS[brand]
        + " "
        + ADJECTIVES[rng.integers(0, len(ADJECTIVES), size=n)]
        + " "
        + NOUNS[noun]
        + ", "
        + SIZES[rng.integers(0, len(SIZES), size=n)]
    )
    description = (
        SENTENCES_A[rng.integers(0, len(SENTENCES_A), size=n)]
        + " "
        + SENTENCES_B[rng.integers(0, len(SENTENCES_B), size=n)]
    )
    shape = rng.random(n)
    multiline = shape < 0.005
    description[multiline] = description[multiline] + "\nSee the manual for details."
    description[shape > 0.85] = ""
    category = CATEGORIES[(noun + rng.integers(0, 2, size=n)) % len(CATEGORIES)]

    # GTIN: 60% GTIN-12 (UPC-A), 30% GTIN-13 (EAN-13), 10% empty; broken ones always present.
    kind = rng.choice(np.array([12, 13, 0]), size=n, p=[0.6, 0.3, 0.1])
    bad = error_rows["bad_check_digit"]
    kind[bad] = np.where(kind[bad] == 0, 12, kind[bad])
    gtin = np.full(n, "", dtype=object)
    wrong_by = np.zeros(n, dtype=np.int64)
    wrong_by[bad] = rng.integers(1, 10, size=len(bad))
    for length in (12, 13):
        where = np.flatnonzero(kind == length)
        body, check = _gtins(rng, length, len(where))
        check = (check + wrong_by[where]) % 10
        gtin[where] = _digits_to_text(np.column_stack([body, check]))

    # Prices: cost > 0; MAP (70% of rows) >= cost; MSRP >= MAP and >= cost; .99 endings.
    cost = np.round(np.maximum(rng.lognormal(2.3, 0.9, size=n), 0.5), 2)
    map_price = np.round(np.ceil(cost * rng.uniform(1.2, 1.6, size=n)) - 0.01, 2)
    msrp = np.round(np.ceil(np.maximum(map_price, cost) * rng.uniform(1.05, 1.3, size=n)) - 0.01, 2)
    has_map = rng.random(n) < 0.7
    below = error_rows["msrp_below_cost"]
    msrp[below] = np.round(cost[below] * rng.uniform(0.5, 0.9, size=len(below)), 2)
    has_map[below] = False  # else MSRP below MAP would be a second failure
    cost_text = _money(cost)
    broken_cost = error_rows["cost_not_a_number"]
    cost_text[broken_cost] = COST_TEXTS[rng.integers(0, len(COST_TEXTS), size=len(broken_cost))]
    map_text = np.where(has_map, _money(map_price), "").astype(object)
    msrp_text = np.where(rng.random(n) < 0.97, _money(msrp), "").astype(object)
    msrp_text[below] = _money(msrp[below])

    quantity = rng.integers(0, 500, size=n)
    quantity[rng.random(n) < 0.08] = 0
    negative = error_rows["negative_quantity"]
    quantity[negative] = -rng.integers(1, 50, size=len(negative))

    weight = np.maximum(np.round(rng.lognormal(0.5, 1.0, size=n), 3), 0.01)
    dims = np.maximum(np.round(rng.lognormal(1.8, 0.6, size=(n, 3)), 1), 0.1)
    no_dims = rng.random(n) < 0.1

    def measure(values: np.ndarray) -> np.ndarray:
        return np.where(no_dims, "", values.astype(str)).astype(object)

    url = "https://img.example.com/p/" + pd.Series(sku).str.lower().to_numpy(dtype=object)
    images = url + ".jpg"
    pictures = rng.random(n)
    two = pictures < 0.3
    images[two] = images[two] + "|" + url[two] + "-side.jpg"
    images[pictures > 0.9] = ""

    status = rng.choice(
        np.array(["active", "discontinued", ""], dtype=object), size=n, p=[0.93, 0.05, 0.02]
    )

    frame = pd.DataFrame(
        {
            "sku": sku,
            "title": title,
            "brand": BRANDS[brand],
            "description": description,
            "gtin": gtin,
            "category": category,
            "cost": cost_text,
            "map_price": map_text,
            "msrp": msrp_text,
            "quantity": quantity.astype(str).astype(object),
            "weight_lb": np.where(rng.random(n) < 0.05, "", weight.astype(str)).astype(object),
            "length_in": measure(dims[:, 0]),
            "width_in": measure(dims[:, 1]),
            "height_in": measure(dims[:, 2]),
            "image_urls": images,
            "status": status,
        },
        columns=list(HEADERS),
    )
    injected = {
        "bad_check_digit": len(bad),
        "cost_not_a_number": len(broken_cost),
        "negative_quantity": len(negative),
        "duplicate_sku": 2 * len(dup_first),
        "msrp_below_cost": len(below),
    }
    expected = {
        "rows": n,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "injected_rows": injected,
        "expected_rule_failures": {ERROR_RULES[k]: v for k, v in injected.items()},
        "expected_rows_invalid": sum(injected.values()),
        "multiline_descriptions": int(multiline.sum()),
    }
    return frame, expected


def catalog_file(rows: int, seed: int, *, regenerate: bool = False) -> tuple[Path, dict]:
    """The cached catalog CSV for ``rows`` (generated when missing) and its injected errors."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"catalog-{rows}-seed{seed}-v{GENERATOR_VERSION}"
    path, meta_path = DATA_DIR / f"{stem}.csv", DATA_DIR / f"{stem}.json"
    if path.exists() and meta_path.exists() and not regenerate:
        return path, json.loads(meta_path.read_text())
    started = time.perf_counter()
    frame, expected = generate_catalog(rows, seed)
    generated = time.perf_counter()
    partial = path.with_suffix(".csv.partial")
    frame.to_csv(partial, index=False, lineterminator="\n")
    with partial.open("rb+") as written:  # no write-back of the file during the measurements
        os.fsync(written.fileno())
    partial.replace(path)
    meta_path.write_text(json.dumps(expected, indent=2) + "\n")
    size_mb = path.stat().st_size / 1e6
    print(
        f"generated {path.relative_to(PROJECT_DIR)}: {rows:,} rows, {size_mb:,.0f} MB "
        f"(build {generated - started:.1f} s, write {time.perf_counter() - generated:.1f} s)",
        flush=True,
    )
    return path, expected


# --- workers: one measurement per fresh process --------------------------------------------


def _peak_rss_mb() -> float:
    """This process's peak RSS. On Linux, VmHWM: ``ru_maxrss`` is carried across exec from
    the process that forked, so a worker started by a big parent would report the parent's."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _emit(result: dict[str, object]) -> None:
    print(RESULT_MARKER + json.dumps(result), flush=True)


def worker_baseline(path: Path) -> None:
    before = _peak_rss_mb()
    started = time.perf_counter()
    frame = pd.read_csv(path)
    seconds = time.perf_counter() - started
    _emit(
        {
            "seconds": seconds,
            "rows": len(frame),
            "peak_rss_mb": _peak_rss_mb(),
            "rss_before_mb": before,
        }
    )


def worker_check(path: Path, errors_dir: Path) -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    import_started = time.perf_counter()
    from tasks.check import check_catalog_file

    import_seconds = time.perf_counter() - import_started
    before = _peak_rss_mb()
    marks: list[tuple[str, float]] = []

    def on_stage(name: str) -> None:
        marks.append((name, time.perf_counter()))

    started = time.perf_counter()
    outcome = check_catalog_file(path, errors_dir=errors_dir, on_stage=on_stage)
    finished = time.perf_counter()
    # Before the first stage: load and compile the contract, hash the file (sha256).
    bounds = [("setup", started), *marks, ("end", finished)]
    stages = {name: bounds[i + 1][1] - at for i, (name, at) in enumerate(bounds[:-1])}
    summary = outcome.summary()
    _emit(
        {
            "seconds": finished - started,
            "stages": stages,
            "import_seconds": import_seconds,
            "peak_rss_mb": _peak_rss_mb(),
            "rss_before_mb": before,
            "exit_code": outcome.exit_code,
            "error_file_bytes": outcome.error_file.stat().st_size if outcome.error_file else 0,
            "summary": {k: summary[k] for k in SUMMARY_KEYS},
        }
    )


SUMMARY_KEYS = ("status", "rows_total", "rows_valid", "rows_invalid", "file_errors", "rules")


def worker_cli(path: Path, home: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is not on PATH")
    command = [uv, "run", "supplyline", "catalog", "check", str(path), "--json"]
    env = os.environ | {"SUPPLYLINE_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError:
        summary = None
    _emit(
        {
            "seconds": seconds,
            # The largest of uv and the Python process it starts (both waited for); at least
            # this worker's own peak (carried across exec), about 120 MB.
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "exit_code": done.returncode,
            "stderr_tail": done.stderr[-2000:] if summary is None else "",
            "summary": {k: summary[k] for k in SUMMARY_KEYS} if summary else None,
        }
    )


def measure(kind: str, path: Path) -> dict[str, object]:
    """Run one worker in a fresh interpreter and return what it reports."""
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind]
        command += ["--file", str(path), "--tmp", tmp]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True)
        wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{kind} worker failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    result = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    result["process_wall_seconds"] = wall
    return result


# --- the run ---------------------------------------------------------------------------------


def _warm_page_cache(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(16 << 20):
            pass


def _best(runs: list[dict[str, object]]) -> dict[str, object]:
    return min(runs, key=lambda run: run["seconds"])


def generate_in_subprocess(rows: int, seed: int, *, regenerate: bool) -> tuple[Path, dict]:
    """``catalog_file`` in a child process, so that this one stays small while it measures."""
    command = [sys.executable, str(Path(__file__).resolve()), "--generate-only", "--exact"]
    command += ["--rows", str(rows), "--seed", str(seed)]
    if regenerate:
        command.append("--regenerate")
    subprocess.run(command, cwd=PROJECT_DIR, check=True)
    return catalog_file(rows, seed)


def bench_size(rows: int, args: argparse.Namespace) -> dict[str, object]:
    path, expected = generate_in_subprocess(rows, args.seed, regenerate=args.regenerate)
    _warm_page_cache(path)
    baselines, checks = [], []
    for attempt in range(args.repeat):
        tag = f"[{rows:,} rows, run {attempt + 1}/{args.repeat}]"
        print(f"{tag} baseline pandas.read_csv ...", end=" ", flush=True)
        baselines.append(measure("baseline", path))
        print(f"{baselines[-1]['seconds']:.2f} s; check ...", end=" ", flush=True)
        checks.append(measure("check", path))
        print(f"{checks[-1]['seconds']:.2f} s", flush=True)
    cli = None
    if args.cli:
        print(
            f"[{rows:,} rows] CLI uv run supplyline catalog check --json ...", end=" ", flush=True
        )
        cli = measure("cli", path)
        print(f"{cli['seconds']:.2f} s", flush=True)
    return {
        "rows": rows,
        "file": str(path.relative_to(PROJECT_DIR)),
        "file_bytes": path.stat().st_size,
        "expected": expected,
        "baseline": _best(baselines),
        "check": _best(checks),
        "baseline_runs": [run["seconds"] for run in baselines],
        "check_runs": [run["seconds"] for run in checks],
        "cli": cli,
    }


def verify_counts(result: dict[str, object]) -> list[str]:
    """Compare the check's (and the CLI's) summary with the errors injected; print it."""
    expected = result["expected"]
    problems: list[str] = []
    sources = {"check": result["check"]["summary"]}
    if result["cli"]:
        sources["cli"] = result["cli"]["summary"]
    for source, summary in sources.items():
        if summary is None:
            problems.append(f"{source}: no summary")
            continue
        reported = {rule["rule"]: rule["failures"] for rule in summary["rules"]}
        wanted = expected["expected_rule_failures"]
        for rule in sorted(set(reported) | set(wanted)):
            if reported.get(rule, 0) != wanted.get(rule, 0):
                problems.append(
                    f"{source} {result['rows']:,} rows: {rule} reported "
                    f"{reported.get(rule, 0):,}, injected {wanted.get(rule, 0):,}"
                )
        for key, want in (
            ("rows_total", result["rows"]),
            ("rows_invalid", expected["expected_rows_invalid"]),
            ("rows_valid", result["rows"] - expected["expected_rows_invalid"]),
        ):
            if summary[key] != want:
                problems.append(
                    f"{source} {result['rows']:,} rows: {key} {summary[key]:,}, expected {want:,}"
                )
        if summary["file_errors"]:
            problems.append(f"{source}: file errors {summary['file_errors']}")
    return problems


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table; numeric cells are right-aligned, text cells left-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str], numeric: bool = True) -> str:
        return "  ".join(
            cell.rjust(width) if numeric and cell[:1].isdigit() else cell.ljust(width)
            for cell, width in zip(cells, widths, strict=True)
        ).rstrip()

    return "\n".join(
        [line(header, numeric=False), line(["-" * w for w in widths]), *map(line, rows)]
    )


def report(results: list[dict[str, object]]) -> tuple[str, dict[str, object]]:
    small, large = results[0], results[-1]
    scaling = large["check"]["seconds"] / small["check"]["seconds"]
    size_ratio = large["rows"] / small["rows"]
    out: list[str] = []
    header = [
        "rows",
        "MB",
        "baseline s",
        "check s",
        f"check/baseline (<= {TARGET_RATIO:g})",
        "check rows/s",
        f"check peak RSS MB (< {TARGET_PEAK_MB:,.0f})",
        "baseline peak RSS MB",
        "CLI s",
    ]
    rows = []
    for r in results:
        base, check = r["baseline"]["seconds"], r["check"]["seconds"]
        ratio = check / base
        peak = r["check"]["peak_rss_mb"]
        rows.append(
            [
                f"{r['rows']:,}",
                f"{r['file_bytes'] / 1e6:,.0f}",
                f"{base:.2f}",
                f"{check:.2f}",
                f"{ratio:.1f} {_verdict(ratio <= TARGET_RATIO)}",
                f"{r['rows'] / check:,.0f}",
                f"{peak:,.0f} {_verdict(peak < TARGET_PEAK_MB)}",
                f"{r['baseline']['peak_rss_mb']:,.0f}",
                f"{r['cli']['seconds']:.2f}" if r["cli"] else "-",
            ]
        )
    out.append(_table(header, rows))
    out.append(
        f"\nscaling: check time({large['rows']:,}) / time({small['rows']:,}) = {scaling:.1f} "
        f"for {size_ratio:g}x the rows (<= {TARGET_SCALING:g}) "
        f"{_verdict(scaling <= TARGET_SCALING)}"
    )

    stage_names: list[str] = []
    for r in results:
        for name in r["check"]["stages"]:
            if name not in stage_names:
                stage_names.append(name)
    stage_rows = []
    for r in results:
        stages, total = r["check"]["stages"], r["check"]["seconds"]
        stage_rows.append(
            [f"{r['rows']:,}"]
            + [
                f"{stages[n]:.2f} ({100 * stages[n] / total:.0f}%)" if n in stages else "-"
                for n in stage_names
            ]
            + [f"{total:.2f}", f"{r['check']['import_seconds']:.2f}"]
        )
    out.append(
        "\ncheck stages, seconds (setup = load and compile the contract, sha256 of the file):"
    )
    out.append(_table(["rows", *stage_names, "total", "imports (not in total)"], stage_rows))

    count_rows = []
    for r in results:
        summary = r["check"]["summary"]
        reported = {rule["rule"]: rule["failures"] for rule in summary["rules"]}
        for kind, rule in ERROR_RULES.items():
            injected = r["expected"]["injected_rows"][kind]
            count_rows.append(
                [f"{r['rows']:,}", kind, rule, f"{injected:,}", f"{reported.get(rule, 0):,}"]
            )
        extra = sorted(set(reported) - set(ERROR_RULES.values()))
        for rule in extra:
            count_rows.append(
                [f"{r['rows']:,}", "(not injected)", rule, "0", f"{reported[rule]:,}"]
            )
        count_rows.append(
            [
                f"{r['rows']:,}",
                "rows invalid",
                "",
                f"{r['expected']['expected_rows_invalid']:,}",
                f"{summary['rows_invalid']:,}",
            ]
        )
    out.append("\nerrors injected vs reported by the check:")
    out.append(_table(["rows", "error", "rule", "injected", "reported"], count_rows))

    targets = {
        "check_within_4x_baseline": all(
            r["check"]["seconds"] / r["baseline"]["seconds"] <= TARGET_RATIO for r in results
        ),
        "check_within_4x_baseline_at_largest": large["check"]["seconds"]
        / large["baseline"]["seconds"]
        <= TARGET_RATIO,
        "peak_rss_under_2500_mb": all(r["check"]["peak_rss_mb"] < TARGET_PEAK_MB for r in results),
        "scaling_at_most_12x": scaling <= TARGET_SCALING,
    }
    return "\n".join(out), {"scaling": scaling, "targets": targets}


def environment() -> dict[str, object]:
    import great_expectations
    import pyarrow

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "pyarrow": pyarrow.__version__,
        "great_expectations": great_expectations.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="largest size (default 1e6)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the best is kept")
    parser.add_argument("--no-cli", dest="cli", action="store_false", help="skip the CLI run")
    parser.add_argument("--regenerate", action="store_true", help="ignore cached files")
    parser.add_argument("--generate-only", action="store_true", help="write the files, no timing")
    parser.add_argument("--exact", action="store_true", help=argparse.SUPPRESS)  # --rows only
    parser.add_argument("--worker", choices=["baseline", "check", "cli"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "baseline":
        worker_baseline(args.file)
        return 0
    if args.worker == "check":
        worker_check(args.file, args.tmp)
        return 0
    if args.worker == "cli":
        worker_cli(args.file, args.tmp)
        return 0

    sizes = [args.rows] if args.exact else [args.rows // 10, args.rows]
    if args.generate_only:
        for rows in sizes:
            catalog_file(rows, args.seed, regenerate=args.regenerate)
        return 0
    results = [bench_size(rows, args) for rows in sizes]
    text, verdicts = report(results)
    problems = [p for r in results for p in verify_counts(r)]
    print()
    print(text)
    print()
    print("counts: " + ("OK, every injected error reported once" if not problems else "MISMATCH"))
    for problem in problems:
        print(f"  {problem}")

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"catalog_check-{args.rows}-{stamp}.json"
    payload = {
        "benchmark": "catalog_check",
        "when": stamp,
        "arguments": {
            k: v for k, v in vars(args).items() if k not in ("worker", "file", "tmp", "exact")
        },
        "targets": {
            "check_over_baseline_max": TARGET_RATIO,
            "peak_rss_mb_max": TARGET_PEAK_MB,
            "scaling_max": TARGET_SCALING,
        },
        "environment": environment(),
        "results": results,
        **verdicts,
        "count_problems": problems,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results: {out.relative_to(PROJECT_DIR)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
