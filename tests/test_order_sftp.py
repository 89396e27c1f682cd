"""POs as files on a supplier's SFTP server (a real OpenSSH sshd), through the order-sync flow."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
from order_world import make_world, order
from sqlmodel import select
from typer.testing import CliRunner

from blocks.sftp import SftpServer
from flows.order_sync import order_sync
from models.db import session_scope
from models.orders import PurchaseOrder, RetailOrder
from sandbox.openssh import OpenSshServer
from supplyline.cli import app
from tasks.orders import cancel_order
from tasks.po_connectors import ConnectorSettings, open_connector

pytestmark = pytest.mark.usefixtures("prefect_api", "database")
runner = CliRunner()


@pytest.fixture
def orders_folder(sshd: OpenSshServer) -> str:
    folder = sshd.folder(f"acme-{uuid.uuid4().hex[:8]}/orders")
    SftpServer(
        host="127.0.0.1",
        port=sshd.port,
        username=sshd.user,
        private_key=sshd.client_key.read_text(),
        known_hosts=sshd.known_hosts,
    ).save("supplier-acme", overwrite=True)
    return str(folder)


def po(number: str) -> PurchaseOrder:
    with session_scope() as session:
        return session.exec(select(PurchaseOrder).where(PurchaseOrder.po_number == number)).one()


def test_pos_arrive_as_csv_files_once(orders_folder: str) -> None:
    make_world()
    result = runner.invoke(
        app, ["supplier", "orders", "acme", "--sftp", "--format", "csv", "--folder", orders_folder]
    )
    assert result.exit_code == 0, result.output
    order("O1", ("A-1", 2), ("SHARED", 1))
    summary = order_sync()
    assert summary["pos_submitted"] == 1
    sent = po("PO-ACME-00000001")
    assert (sent.state, sent.supplier_order_id) == ("submitted", "PO-ACME-00000001.csv")
    from pathlib import Path

    folder = Path(orders_folder)
    assert sorted(p.name for p in folder.iterdir()) == ["PO-ACME-00000001.csv"]
    rows = list(csv.DictReader(io.StringIO((folder / "PO-ACME-00000001.csv").read_text())))
    assert [(r["line_no"], r["sku"], r["quantity"], r["unit_cost"]) for r in rows] == [
        ("1", "A-1", "2", "10.00"),
        ("2", "SHARED", "1", "7.00"),
    ]
    assert rows[0]["ship_to_city"] == "Springfield" and rows[0]["po_number"] == "PO-ACME-00000001"

    # Sending again after a crash finds the file there and sends nothing new.
    settings = ConnectorSettings(
        "sftp", "supplier-acme", {"format": "csv", "folder": orders_folder}
    )
    with open_connector(settings) as connector:
        again = connector.send({"po_number": "PO-ACME-00000001"}, maybe_sent_before=True)
    assert again.found_existing
    assert sorted(p.name for p in folder.iterdir()) == ["PO-ACME-00000001.csv"]

    # A cancellation goes as a request file, once; the supplier answers in its own files.
    with session_scope() as session:
        cancel_order(session, session.exec(select(RetailOrder)).one(), actor="tester")
    order_sync()
    order_sync()
    request = json.loads((folder / "PO-ACME-00000001.cancel.json").read_text())
    assert request["po_number"] == "PO-ACME-00000001" and request["action"] == "cancel"
    waiting = po("PO-ACME-00000001")
    assert waiting.state == "cancel_requested"
    assert "cancellation requested from the supplier" in waiting.reason


def test_json_po_files(orders_folder: str) -> None:
    make_world()
    result = runner.invoke(app, ["supplier", "orders", "acme", "--sftp", "--folder", orders_folder])
    assert result.exit_code == 0, result.output
    order("O1", ("A-1", 1))
    order_sync()
    from pathlib import Path

    body = json.loads((Path(orders_folder) / "PO-ACME-00000001.json").read_text())
    assert body["po_number"] == "PO-ACME-00000001"
    assert body["lines"] == [{"line_no": 1, "sku": "A-1", "quantity": 1, "unit_cost": "10.00"}]
    assert body["idempotency_key"] == po("PO-ACME-00000001").idempotency_key
