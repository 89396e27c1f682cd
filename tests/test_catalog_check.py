"""Mappings, error files and `supplyline catalog check`, end to end on real files."""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_contracts.contract import ContractError, load_contract
from data_contracts.mapping import load_mapping, parse_mapping
from supplyline.cli import SAMPLES_DIR, app
from tasks.mapping import apply_mapping
from tasks.parse import read_table

runner = CliRunner()
HEADER = ["sku", "title", "brand", "cost", "quantity", "status"]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_error_file(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "error files start with a UTF-8 BOM for Excel"
    return list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))


def check(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["catalog", "check", *args])
    return result.exit_code, result.output


# --- mappings -------------------------------------------------------------------------------


def test_mapping_headers_values_and_defaults(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "acme.csv",
        [["A-1", "Hammer", "ACME", "4.10", "3", " a "], ["A-2", "Saw", "ACME", "9", "1", ""]],
        header=["  ITEM number ", "Product Name", "brand", "Unit Cost", "Qty On Hand", "Status"],
    )
    mapping = parse_mapping(
        {
            "contract": "catalog_item",
            "columns": {
                "sku": "Item Number",
                "title": "product name",
                "cost": "Unit Cost",
                "quantity": "Qty On Hand",
                "status": "Status",
            },
            "values": {"status": {"A": "active", "D": "discontinued"}},
            "defaults": {"status": "discontinued"},
        },
        name="test",
    )
    mapped = apply_mapping(read_table(path).frame, load_contract("catalog_item"), mapping)
    assert mapped.source_columns["sku"] == "  ITEM number "
    assert mapped.source_columns["brand"] == "brand"
    assert mapped.frame["status"].tolist() == ["active", "discontinued"]
    assert mapped.frame["sku"].tolist() == ["A-1", "A-2"]


def test_mapping_that_names_a_missing_header_rejects_the_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "acme.csv", [["A-1", "Hammer", "ACME", "4", "3", "A"]])
    code, output = check(str(path), "--mapping", "acme")
    assert code == 2
    assert "the mapping expects column(s) 'Item Number'" in output


def test_mapping_for_unknown_columns_is_refused() -> None:
    mapping = parse_mapping({"contract": "catalog_item", "columns": {"colour": "Color"}}, name="m")
    with pytest.raises(ContractError, match="columns names colour"):
        mapping.check_against(load_contract("catalog_item"))


def test_bundled_mapping_loads() -> None:
    mapping = load_mapping("acme")
    assert mapping.columns["sku"] == "Item Number"
    assert mapping.values["status"] == {"A": "active", "D": "discontinued"}


# --- catalog check: exit codes, JSON, error files --------------------------------------------


def test_clean_file_exit_0_and_no_error_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "clean.csv", [["A-1", "Hammer", "ACME", "4.10", "3", "active"]])
    errors = tmp_path / "out" / "clean.errors.csv"
    code, output = check(str(path), "--errors", str(errors), "--json")
    assert code == 0
    summary = json.loads(output)
    assert (summary["rows_total"], summary["rows_valid"], summary["rows_invalid"]) == (1, 1, 0)
    assert summary["status"] == "accepted" and summary["error_file"] is None
    assert not errors.exists()
    assert (
        json.loads((tmp_path / "out" / "clean.errors.json").read_text())["sha256"]
        == summary["sha256"]
    )


def test_some_rows_rejected_exit_1_with_json_summary(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "mixed.csv",
        [
            ["A-1", "Hammer", "ACME", "4.10", "3", "active"],
            ["A-2", "Saw", "ACME", "twelve", "3", "active"],
            ["A-3", "", "ACME", "2", "-1", "active"],
        ],
    )
    code, output = check(str(path), "--contract", "catalog_item", "--json")
    assert code == 1
    summary = json.loads(output)
    assert (summary["rows_total"], summary["rows_valid"], summary["rows_invalid"]) == (3, 1, 2)
    assert summary["contract"] == {"name": "catalog_item", "version": "1.0.0"}
    assert {r["rule"]: r["failures"] for r in summary["rules"]} == {
        "cost.type": 1,
        "title.required": 1,
        "quantity.range": 1,
    }
    assert summary["columns"] == {"cost": 1, "title": 1, "quantity": 1}
    assert len(summary["sha256"]) == 64
    rows = read_error_file(Path(summary["error_file"]))
    assert [r["_row"] for r in rows] == ["3", "4"]
    assert rows[1]["_errors"] == "title: is required but empty; quantity: -1 must be at least 0"
    assert list(rows[0])[2:] == HEADER
    assert rows[0]["cost"] == "twelve"


def test_file_rejected_exit_2_with_one_line_error_file(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "nocost.csv",
        [["A-1", "Hammer", "ACME", "3"]],
        header=["sku", "title", "brand", "quantity"],
    )
    code, output = check(str(path), "--json")
    assert code == 2
    summary = json.loads(output)
    assert summary["status"] == "rejected"
    assert "required column(s) missing: 'cost'" in summary["file_errors"][0]
    rows = read_error_file(Path(summary["error_file"]))
    assert len(rows) == 1
    assert rows[0]["_row"] == "1"
    assert rows[0]["_errors"].startswith("file: required column(s) missing: 'cost'")


def test_empty_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    code, output = check(str(path))
    assert code == 2
    assert "file rejected" in output


def test_unknown_contract_exit_3(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [])
    code, output = check(str(path), "--contract", "nope")
    assert code == 3
    assert "unknown contract 'nope'" in output


def test_messages_name_the_suppliers_headers(tmp_path: Path) -> None:
    code, output = check(
        str(SAMPLES_DIR / "acme_catalog_with_errors.csv"), "--mapping", "acme", "--json"
    )
    assert code == 1
    rows = {r["_row"]: r for r in read_error_file(Path(json.loads(output)["error_file"]))}
    assert rows["2"]["_errors"] == "UPC: check digit should be 2, not 3"
    assert "MAP: 12.00 is below Unit Cost 24.00" in rows["3"]["_errors"]


def test_error_file_round_trip_fix_and_check_again(tmp_path: Path) -> None:
    """Fix the rows in the error file, send it back as it is: clean."""
    code, output = check(
        str(SAMPLES_DIR / "acme_catalog_with_errors.csv"), "--mapping", "acme", "--json"
    )
    assert code == 1
    error_file = Path(json.loads(output)["error_file"])
    rows = read_error_file(error_file)
    formula_row = next(r for r in rows if r["Item Number"] == "ACM 2007!")
    assert formula_row["Product Name"] == '\'=HYPERLINK("http://evil.example")'
    fixes = {
        "ACM-2001": {"UPC": "036000291452"},
        "ACM-2002": {"UPC": "812345000009", "MAP": "25.00"},
        "ACM-2003": {"Unit Cost": "12.00", "Qty On Hand": "5"},
        "ACM-2004": {"Product Name": "Mallet", "Unit Cost": "12.5", "Images": "", "Status": "A"},
        "ACM-2008": {"MSRP": "3.50"},
        "ACM 2007!": {"Item Number": "ACM-2007"},
    }
    seen: set[str] = set()
    fixed = []
    for row in rows:
        sku = row["Item Number"]
        if sku == "ACM-2005":
            row = row | (
                {"Qty On Hand": "3", "Weight (lb)": ""}
                if sku not in seen
                else {"Item Number": "ACM-2006"}
            )
            seen.add(sku)
        fixed.append(row | fixes.get(sku, {}))
    sent_back = tmp_path / "acme_catalog_with_errors.errors.csv"
    with sent_back.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(fixed)
    code, output = check(
        str(sent_back),
        "--mapping",
        "acme",
        "--json",
        "--errors",
        str(tmp_path / "again.errors.csv"),
    )
    summary = json.loads(output)
    assert summary["rules"] == []
    assert code == 0, summary
    assert summary["rows_valid"] == len(rows)
    # _row and _errors were dropped by the reader, not reported as unknown columns
    assert summary["ignored_columns"] == []


def test_formula_cells_are_neutralised(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "f.csv",
        [["=1+1", "@SUM(A1)", "+ACME", "-2", "\t3", "active"]],
    )
    code, output = check(str(path), "--json")
    assert code == 1
    row = read_error_file(Path(json.loads(output)["error_file"]))[0]
    assert [row[h] for h in HEADER[:5]] == ["'=1+1", "'@SUM(A1)", "'+ACME", "'-2", "'\t3"]
    assert not any(v[:1] in "=+-@" for v in row.values() if v)


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "SUPPLYLINE_HOME": str(tmp_path / "demo-home")}
    result = subprocess.run(
        [sys.executable, "-m", "supplyline.cli", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "#1 acme_catalog.csv (sftp): accepted" in out
    assert "#2 acme_new_products.csv (sftp): partially accepted" in out
    assert "#3 acme_catalog_resent.csv (sftp): duplicate same content as file #1" in out
    error_file = tmp_path / "demo-home" / "errors" / "acme" / "2-acme_new_products.errors.csv"
    assert str(error_file) in out
    assert len(read_error_file(error_file)) == 8
    # What ACME finds on its SFTP server: the inbox emptied, its error file, its files archived.
    [server_root] = (tmp_path / "demo-home").glob("acme-sftp-*")
    assert list((server_root / "inbox").iterdir()) == []
    [returned] = (server_root / "errors").glob("*.errors.csv")
    assert returned.name.startswith("acme_new_products.")
    assert len(read_error_file(returned)) == 8
    assert len(list((server_root / "archive").iterdir())) == 3
    assert (tmp_path / "demo-home" / "supplyline.db").is_file()
    # Then ShopCo's orders: through the intake API, routed, sent to ACME's order API once.
    assert "POST order SC-1001: HTTP 201" in out
    assert "POST order SC-1002: HTTP 201" in out
    assert "POST order SC-1001: HTTP 200" in out
    assert "POs submitted: 2 (purchased 2, awaiting purchase 0)" in out
    assert "order #2 shopco:SC-1002 (native): partially_routed" in out
    assert "ACME's order API holds 2 order(s)" in out
    [supplier_db] = (tmp_path / "demo-home").glob("acme-orders-*/supplier.db")
    with sqlite3.connect(supplier_db) as connection:
        po_numbers = [row[0] for row in connection.execute("SELECT po_number FROM sandbox_order")]
    assert sorted(po_numbers) == ["PO-ACME-00000001", "PO-ACME-00000002"]
    # ACME acknowledges, ships SC-1001's PO in two parts, delivers; fulfillment sync follows.
    assert "fulfillment sync: PO-ACME-00000001 → partially_shipped" in out
    assert "fulfillment sync: PO-ACME-00000001 → shipped" in out
    assert "fulfillment sync: PO-ACME-00000001 → delivered" in out
    assert "shipment SH-0000002: UPS Ground 1Z0000000000000002" in out
    # ShopCo hears of each change: its receiver down, then up; each event once, in order,
    # tracking included; a forged one refused.
    assert "ShopCo's receiver is down (503): 2 order(s) wait for a retry" in out
    held = re.search(r"shopco's receiver holds (\d+) event\(s\), each once", out)
    assert held and int(held.group(1)) >= 10, out
    assert "(2 refused while it was down were sent again; 0 still to send)" in out
    assert "evt_3 po.state: PO-ACME-00000001 of order SC-1001 is submitted" in out
    assert "is partially_shipped (tracking UPS 1Z0000000000000001)" in out
    assert "po.state: PO-ACME-00000001 of order SC-1001 is delivered" in out
    assert "A forged event (bad signature) is refused: HTTP 401." in out
