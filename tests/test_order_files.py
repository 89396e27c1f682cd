"""Order files from retailers: the order contract, whole orders or none, the error file and its
round trip, by hand and from a real sshd."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from pathlib import Path

import pytest
from order_world import ACTOR, make_world
from sqlmodel import select
from typer.testing import CliRunner

from blocks.sftp import SftpServer
from flows.order_files import order_sftp_intake
from models.db import session_scope
from models.orders import OrderLine, RetailOrder
from sandbox.openssh import OpenSshServer
from supplyline.cli import app
from tasks.connectors import add_connector

pytestmark = pytest.mark.usefixtures("prefect_api", "database")
runner = CliRunner()

HEADER = (
    "order_id,line_id,sku,quantity,unit_cost,shipping_method,"
    "ship_to_name,ship_to_address1,ship_to_city,ship_to_postal_code,ship_to_country"
)
ROWS = [
    "R1,1,A-1,2,9.99,standard,Ann,1 Main St,Springfield,12345,US",
    "R1,2,SHARED,1,,standard,Ann,1 Main St,Springfield,12345,US",
    "R2,1,A-1,two,,standard,Bo,2 High St,Leeds,LS1,GB",
    "R2,2,A-2,1,,standard,Bo,2 High St,Leeds,LS1,GB",
    "R3,1,A-1,1,,standard,Cy,3 Low Rd,Paris,75001,FR",
    "R3,2,A-1,1,,standard,Cy,3 Low Rd,Lyon,75001,FR",
]


def orders() -> dict[str, list[tuple[str, str, int]]]:
    with session_scope() as session:
        found = {}
        for order in session.exec(select(RetailOrder)):
            lines = session.exec(
                select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)
            ).all()
            found[order.source_order_id] = [
                (line.source_item_id, line.sku, line.quantity) for line in lines
            ]
        return found


def sftp_connector(folder: Path | None = None) -> str:
    with session_scope() as session:
        added = add_connector(
            session,
            "shopco",
            "sftp",
            orders_folder=str(folder / "orders") if folder else None,
            status_folder=str(folder / "status") if folder else None,
            actor=ACTOR,
        )
    return added.connector.code


def import_files(connector: str, *paths: Path, code: int) -> list[dict]:
    result = runner.invoke(
        app, ["orders", "import", *map(str, paths), "--connector", connector, "--json"]
    )
    assert result.exit_code == code, result.output
    return json.loads(result.stdout[result.stdout.index("[") :])


def test_whole_orders_or_none_with_an_error_file_to_send_back(tmp_path: Path) -> None:
    make_world()
    connector = sftp_connector()
    source = tmp_path / "orders-0601.csv"
    source.write_text("\n".join([HEADER, *ROWS]) + "\n")
    [entry] = import_files(connector, source, code=1)
    assert entry["status"] == "partially_accepted"
    assert (entry["orders_new"], sorted(entry["orders_refused"])) == (["R1"], ["R2", "R3"])
    assert orders() == {"R1": [("1", "A-1", 2), ("2", "SHARED", 1)]}

    error_file = Path(entry["error_file"])
    rows = list(csv.DictReader(io.StringIO(error_file.read_text(encoding="utf-8-sig"))))
    assert [r["_row"] for r in rows] == ["4", "5", "6", "7"]
    assert "quantity: 'two' is not a number" in rows[0]["_errors"]
    assert "order R2 is refused whole: row(s) 4 have errors" in rows[1]["_errors"]
    assert "ship_to_city: differs between the rows of order R3" in rows[2]["_errors"]
    summary = json.loads(Path(entry["summary_file"]).read_text())
    assert summary["rows_refused"] == 4 and summary["contract"] == {
        "name": "order",
        "version": "1.0.0",
    }

    # The same file again adds nothing; the fixed error file, sent back as it is, is taken in.
    [again] = import_files(connector, source, code=1)
    assert again["orders_again"] == ["R1"] and again["orders_new"] == []
    fixed = (
        error_file.read_text(encoding="utf-8-sig").replace(",two,", ",2,").replace("Lyon", "Paris")
    )
    back = tmp_path / "orders-0601.errors.csv"
    back.write_text(fixed, encoding="utf-8-sig")
    [taken] = import_files(connector, back, code=0)
    assert sorted(taken["orders_new"]) == ["R2", "R3"]
    assert orders()["R2"] == [("1", "A-1", 2), ("2", "A-2", 1)]


def test_json_order_files_and_files_refused_whole(tmp_path: Path) -> None:
    make_world()
    connector = sftp_connector()
    records = [dict(zip(HEADER.split(","), row.split(","), strict=True)) for row in ROWS[:2]]
    as_json = tmp_path / "orders.json"
    as_json.write_text(json.dumps(records))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    no_sku = tmp_path / "no-sku.csv"
    no_sku.write_text("order_id,quantity\nR9,1\n")
    entries = import_files(connector, as_json, empty, no_sku, code=2)
    assert [e["status"] for e in entries] == ["accepted", "rejected", "rejected"]
    assert entries[0]["orders_new"] == ["R1"]
    assert "empty" in entries[1]["file_error"]
    assert "sku" in entries[2]["file_error"]
    assert Path(entries[2]["error_file"]).read_text(encoding="utf-8-sig").count("\n") >= 1


def test_order_files_from_a_retailers_sftp_folder(sshd: OpenSshServer) -> None:
    make_world()
    name = f"shopco-{uuid.uuid4().hex[:8]}"
    base = sshd.folder(name)
    for folder in ("orders", "status"):
        sshd.folder(f"{name}/{folder}")
    connector = sftp_connector(base)
    SftpServer(
        host="127.0.0.1",
        port=sshd.port,
        username=sshd.user,
        private_key=sshd.client_key.read_text(),
        known_hosts=sshd.known_hosts,
    ).save(f"retailer-{connector}", overwrite=True)
    (base / "orders" / "batch-1.csv").write_text("\n".join([HEADER, *ROWS[:4]]) + "\n")
    (base / "orders" / "batch-2.csv.part").write_text(HEADER + "\n")
    state = order_sftp_intake(connector=connector, stable_seconds=0, return_state=True)
    [entry] = state.result()
    _check_run_shows_it(state.state_details.flow_run_id, connector, entry)
    assert (entry["status"], entry["orders_new"], entry["orders_refused"]) == (
        "partially_accepted",
        ["R1"],
        ["R2"],
    )
    assert sorted(p.name for p in (base / "orders").iterdir()) == ["batch-2.csv.part", "processed"]
    [moved] = (base / "orders" / "processed").iterdir()
    assert moved.name.startswith("batch-1.") and moved.name.endswith(".csv")
    answers = sorted(p.name for p in (base / "status").iterdir())
    assert (
        len(answers) == 2
        and answers[0].startswith("batch-1.")
        and answers[0].endswith(".errors.csv")
    )
    assert order_sftp_intake(connector=connector, stable_seconds=0) == []
    assert set(orders()) == {"R1"}


def _check_run_shows_it(run_id: object, connector: str, entry: dict[str, object]) -> None:
    """Run name, tags, and a report linking the error file, as analysts see them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)  # type: ignore[arg-type]
        reports = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"order-files-{connector}-report"])
            )
        )
    assert re.fullmatch(rf"order-sftp-{connector}-\d{{4}}-\d\d-\d\dT\d\d:\d\d", run.name)
    assert {"retailer:shopco", f"connector:{connector}"} <= set(run.tags)
    [report] = [a for a in reports if a.flow_run_id == run.id]
    error_file = Path(str(entry["error_file"]))
    assert f"[{error_file.name}]({error_file.resolve().as_uri()})" in str(report.data)
    assert "| batch-1.csv | partially_accepted | 1 | 0 | 1 |" in str(report.data)


def test_the_order_contract_compiles_every_rule() -> None:
    from data_contracts.contract import load_contract
    from data_contracts.suite import compile_contract

    contract = load_contract("order")
    compiled = compile_contract(contract)
    assert (contract.name, contract.version) == ("order", "1.0.0")
    required = {c.name for c in contract.columns if c.required}
    assert required == {
        "order_id",
        "sku",
        "quantity",
        "ship_to_name",
        "ship_to_address1",
        "ship_to_city",
        "ship_to_postal_code",
        "ship_to_country",
    }
    ids = {rule.id for rule in compiled.rules}
    assert {f"{name}.required" for name in required} <= ids
    assert {"order_id.pattern", "quantity.type", "quantity.range", "ship_to_country.pattern"} <= ids
