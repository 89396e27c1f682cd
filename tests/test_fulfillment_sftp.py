"""Fulfillment files from a supplier's SFTP outbound folder (a real OpenSSH sshd): validated
by their contracts, applied once, answered with error files, archived."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from order_world import make_world, money, order
from sqlmodel import select
from typer.testing import CliRunner

from blocks.sftp import SftpServer
from flows.fulfillment_sync import fulfillment_sync
from flows.order_sync import order_sync
from models.db import session_scope
from models.orders import OrderLine, PurchaseOrder, Shipment, SupplierUpdate
from models.relationships import RetailerConnection
from models.sftp import RemoteFile
from sandbox.openssh import OpenSshServer
from supplyline.cli import app

pytestmark = pytest.mark.usefixtures("prefect_api", "database")
runner = CliRunner()


class Folders:
    def __init__(self, sshd: OpenSshServer) -> None:
        base = f"acme-{uuid.uuid4().hex[:8]}"
        self.user = sshd.user
        self.orders, self.outbound, self.errors, self.archive = (
            sshd.folder(f"{base}/{name}") for name in ("orders", "outbound", "errors", "archive")
        )
        SftpServer(
            host="127.0.0.1",
            port=sshd.port,
            username=sshd.user,
            private_key=sshd.client_key.read_text(),
            known_hosts=sshd.known_hosts,
            errors=str(self.errors),
            archive=str(self.archive),
        ).save("supplier-acme", overwrite=True)

    def drop(self, name: str, content: str) -> None:
        """A file as the supplier leaves it in its outbound folder."""
        path = self.outbound / name
        path.write_text(content)
        account = pwd.getpwnam(self.user)
        os.chown(path, account.pw_uid, account.pw_gid)


def csv_text(*rows: dict[str, object]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def po(number: str) -> PurchaseOrder:
    with session_scope() as session:
        return session.exec(select(PurchaseOrder).where(PurchaseOrder.po_number == number)).one()


def line_values(number: str, attribute: str) -> list[object]:
    with session_scope() as session:
        found = po(number)
        return [
            getattr(line, attribute)
            for line in session.exec(
                select(OrderLine).where(OrderLine.po_id == found.id).order_by(OrderLine.line_no)
            )
        ]


def funds(connection_id: int) -> Decimal:
    with session_scope() as session:
        return session.get(RetailerConnection, connection_id).available_funds  # type: ignore[union-attr,return-value]


def error_rows(folder: Path, stem: str) -> list[dict[str, str]]:
    [found] = [
        p
        for p in folder.iterdir()
        if p.name.startswith(stem + ".") and p.name.endswith(".errors.csv")
    ]
    return list(csv.DictReader(io.StringIO(found.read_text(encoding="utf-8-sig"))))


@pytest.fixture
def folders(sshd: OpenSshServer) -> Folders:
    return Folders(sshd)


def test_outbound_files_are_applied_once_and_answered(folders: Folders) -> None:
    world = make_world(funds="1000.00")
    result = runner.invoke(
        app,
        [
            "supplier",
            "orders",
            "acme",
            "--sftp",
            "--format",
            "csv",
            "--folder",
            str(folders.orders),
            "--outbound",
            str(folders.outbound),
        ],
    )
    assert result.exit_code == 0, result.output
    order("O1", ("A-1", 3), ("SHARED", 2))  # 44.00
    order("O2", ("A-1", 1))  # 10.00
    assert order_sync()["pos_submitted"] == 2
    assert funds(world["acme_connection"]) == money("946.00")

    folders.drop(
        "ack-001.csv",
        csv_text(
            {
                "po_number": "PO-ACME-00000001",
                "line_no": 1,
                "sku": "A-1",
                "status": "accepted",
                "quantity": 3,
                "backorder_date": "",
                "reason": "",
            },
            {
                "po_number": "PO-ACME-00000001",
                "line_no": 2,
                "sku": "SHARED",
                "status": "backordered",
                "quantity": 2,
                "backorder_date": "2026-12-24",
                "reason": "",
            },
            {
                "po_number": "PO-ACME-00000002",
                "line_no": 1,
                "sku": "A-1",
                "status": "rejected",
                "quantity": 1,
                "backorder_date": "",
                "reason": "",
            },
        ),
    )
    folders.drop(
        "cancel-001.csv",
        csv_text(
            {
                "po_number": "PO-ACME-00000001",
                "line_no": 2,
                "sku": "SHARED",
                "quantity": 2,
                "reason": "out of stock",
            }
        ),
    )
    folders.drop(
        "ship-001.json",
        json.dumps(
            [
                {
                    "po_number": "PO-ACME-00000001",
                    "shipment_id": "S1",
                    "carrier": "UPS",
                    "service": "Ground",
                    "tracking_number": "1Z001",
                    "tracking_url": "https://track.example/1Z001",
                    "shipped_at": "2026-12-06T10:00:00Z",
                    "line_no": 1,
                    "sku": "A-1",
                    "quantity": 3,
                }
            ]
        ),
    )
    folders.drop(
        "ship-bad.csv",
        csv_text(
            {
                "po_number": "PO-ACME-00000002",
                "shipment_id": "S9",
                "carrier": "UPS",
                "tracking_number": "1Z 9",
                "shipped_at": "yesterday",
                "line_no": 1,
                "quantity": 0,
            }
        ),
    )
    folders.drop("readme.txt", "not a fulfillment file")

    summary = fulfillment_sync(stable_seconds=0)
    assert summary["files"] == 4
    assert summary["updates_applied"] == 3
    # Line 1 shipped whole, line 2 cancelled: all that will ship has shipped.
    assert po("PO-ACME-00000001").state == "shipped"
    assert line_values("PO-ACME-00000001", "shipped_quantity") == [3, 0]
    assert line_values("PO-ACME-00000001", "cancelled_quantity") == [0, 2]
    assert po("PO-ACME-00000002").state == "submitted"  # its acknowledgement was refused
    assert funds(world["acme_connection"]) == money("960.00")  # line 2's 14.00 came back
    with session_scope() as session:
        [shipment] = session.exec(select(Shipment)).all()
    assert (shipment.tracking_number, shipment.tracking_url) == (
        "1Z001",
        "https://track.example/1Z001",
    )

    # Answers: error files for the refused rows, every taken file archived, the rest left.
    assert sorted(p.name for p in folders.outbound.iterdir()) == ["readme.txt"]
    archived = sorted(p.name.split(".")[0] for p in folders.archive.iterdir())
    assert archived == ["ack-001", "cancel-001", "ship-001", "ship-bad"]
    ack_errors = error_rows(folders.errors, "ack-001")
    assert len(ack_errors) == 1 and ack_errors[0]["po_number"] == "PO-ACME-00000002"
    assert "reason: required for a rejected row" in ack_errors[0]["_errors"]
    bad = error_rows(folders.errors, "ship-bad")[0]["_errors"]
    assert "tracking_number" in bad and "shipped_at" in bad and "quantity" in bad
    assert not [
        p
        for p in folders.errors.iterdir()
        if p.name.startswith("ship-001") and p.name.endswith(".csv")
    ]

    # Taken once: a second run takes nothing.
    again = fulfillment_sync(stable_seconds=0)
    assert (again["files"], again["updates_applied"]) == (0, 0)

    # The fixed acknowledgement, and a shipment that contradicts what is known.
    folders.drop(
        "ack-002.csv",
        csv_text(
            {
                "po_number": "PO-ACME-00000002",
                "line_no": 1,
                "status": "rejected",
                "quantity": 1,
                "reason": "discontinued",
            }
        ),
    )
    folders.drop(
        "ship-002.csv",
        csv_text(
            {
                "po_number": "PO-ACME-00000001",
                "shipment_id": "S1",
                "carrier": "UPS",
                "tracking_number": "1Z-OTHER",
                "shipped_at": "2026-12-06",
                "line_no": 1,
                "quantity": 3,
            }
        ),
    )
    summary = fulfillment_sync(stable_seconds=0)
    assert (summary["updates_applied"], summary["updates_conflict"]) == (1, 1)
    assert po("PO-ACME-00000002").state == "cancelled"  # every unit rejected
    assert funds(world["acme_connection"]) == money("970.00")
    conflict = error_rows(folders.errors, "ship-002")[0]["_errors"]
    assert conflict.startswith("conflict: shipment S1 was reported with tracking number 1Z001")
    with session_scope() as session:
        [shipment] = session.exec(select(Shipment)).all()
        logged = session.exec(select(SupplierUpdate).order_by(SupplierUpdate.id)).all()
        ledger = {r.name.rsplit("/", 1)[-1]: r.state for r in session.exec(select(RemoteFile))}
    assert shipment.tracking_number == "1Z001"
    assert [(u.source, u.outcome) for u in logged] == [
        ("sftp:ack-001.csv", "applied"),
        ("sftp:cancel-001.csv", "applied"),
        ("sftp:ship-001.json", "applied"),
        ("sftp:ack-002.csv", "applied"),
        ("sftp:ship-002.csv", "conflict"),
    ]
    assert ledger == {
        "ack-001.csv": "archived",
        "cancel-001.csv": "archived",
        "ship-001.json": "archived",
        "ship-bad.csv": "archived",
        "readme.txt": "ignored",
        "ack-002.csv": "archived",
        "ship-002.csv": "archived",
    }

    # The CLI shows the log; a run that met a conflict exits 1.
    shown = runner.invoke(app, ["fulfillment", "log", "--outcome", "conflict", "--json"])
    assert shown.exit_code == 0, shown.output
    [row] = json.loads(shown.output)
    assert row["po_number"] == "PO-ACME-00000001" and "1Z-OTHER" in row["detail"]
    folders.drop(
        "ship-003.csv",
        csv_text(
            {
                "po_number": "PO-ACME-00000001",
                "shipment_id": "S2",
                "carrier": "UPS",
                "tracking_number": "1Z002",
                "shipped_at": "2026-12-07",
                "line_no": 1,
                "quantity": 1,
            }
        ),
    )
    ran = runner.invoke(app, ["fulfillment", "sync", "--stable-seconds", "0"])
    assert ran.exit_code == 1, ran.output
    assert "only 0 of its 3 are open" in ran.output
