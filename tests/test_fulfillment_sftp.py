"""Fulfillment files from a supplier's SFTP outbound folder (a real OpenSSH sshd): validated
by their contracts, applied once, answered with error files, archived."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
import time
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

    def at_one_moment(self, *names: str) -> None:
        """Give these files one modification time, as files dropped within a second have."""
        moment = int(time.time()) - 60
        for name in names:
            os.utime(self.outbound / name, (moment, moment))


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
    folders.drop("cancel-broken.json", '{"po_number": "PO-ACME-00000001"')
    folders.drop("readme.txt", "not a fulfillment file")
    folders.at_one_moment(
        "ack-001.csv", "cancel-001.csv", "ship-001.json", "ship-bad.csv", "cancel-broken.json"
    )

    summary = fulfillment_sync(stable_seconds=0)
    assert summary["files"] == 5
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
    assert archived == ["ack-001", "cancel-001", "cancel-broken", "ship-001", "ship-bad"]
    ack_errors = error_rows(folders.errors, "ack-001")
    assert len(ack_errors) == 1 and ack_errors[0]["po_number"] == "PO-ACME-00000002"
    assert "reason: required for a rejected row" in ack_errors[0]["_errors"]
    [broken] = [
        p
        for p in folders.errors.iterdir()
        if p.name.startswith("cancel-broken.") and p.name.endswith(".errors.csv")
    ]
    assert "JSON" in broken.read_text(encoding="utf-8-sig")
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
        ("sftp:ack-001.csv", "applied"),  # files of one moment: acks, shipments, cancellations
        ("sftp:ship-001.json", "applied"),
        ("sftp:cancel-001.csv", "applied"),
        ("sftp:ack-002.csv", "applied"),
        ("sftp:ship-002.csv", "conflict"),
    ]
    assert ledger == {
        "ack-001.csv": "archived",
        "cancel-001.csv": "archived",
        "ship-001.json": "archived",
        "ship-bad.csv": "archived",
        "cancel-broken.json": "archived",
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


def test_a_file_applied_but_not_answered_is_answered_later_not_applied_again(
    folders: Folders,
) -> None:
    make_world()
    result = runner.invoke(
        app,
        [
            "supplier",
            "orders",
            "acme",
            "--sftp",
            "--folder",
            str(folders.orders),
            "--outbound",
            str(folders.outbound),
        ],
    )
    assert result.exit_code == 0, result.output
    order("O1", ("A-1", 2))
    order_sync()
    folders.drop(
        "ship-100.csv",
        csv_text(
            {
                "po_number": "PO-ACME-00000001",
                "shipment_id": "S1",
                "carrier": "UPS",
                "tracking_number": "1Z100",
                "shipped_at": "2026-12-06",
                "line_no": 1,
                "quantity": 2,
            }
        ),
    )
    folders.archive.chmod(0o555)  # the SFTP account cannot move the file there now
    try:
        summary = fulfillment_sync(stable_seconds=0)
    finally:
        folders.archive.chmod(0o755)
    assert summary["updates_applied"] == 1
    assert po("PO-ACME-00000001").state == "shipped"
    assert [p.name for p in folders.outbound.iterdir()] == ["ship-100.csv"]
    with session_scope() as session:
        [row] = session.exec(select(RemoteFile)).all()
    assert row.state == "processed" and "answering on the server failed" in (row.message or "")

    again = fulfillment_sync(stable_seconds=0)
    assert (again["files"], again["updates_applied"], again["updates_duplicate"]) == (0, 0, 0)
    assert list(folders.outbound.iterdir()) == []
    assert [p.name.split(".")[0] for p in folders.archive.iterdir()] == ["ship-100"]
    with session_scope() as session:
        [row] = session.exec(select(RemoteFile)).all()
        assert len(session.exec(select(SupplierUpdate)).all()) == 1
    assert row.state == "archived"


def test_delivery_files_close_shipments_even_when_dropped_with_them(folders: Folders) -> None:
    make_world()
    result = runner.invoke(
        app,
        ["supplier", "orders", "acme", "--sftp", "--folder", str(folders.orders),
         "--outbound", str(folders.outbound)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    order("O1", ("A-1", 2), ("SHARED", 1))
    order_sync()
    ship = {"po_number": "PO-ACME-00000001", "carrier": "UPS", "shipped_at": "2026-12-06"}
    folders.drop(
        "ship-200.csv",
        csv_text(
            ship | {"shipment_id": "S1", "tracking_number": "1Z201", "line_no": 1, "quantity": 2},
            ship | {"shipment_id": "S2", "tracking_number": "1Z202", "line_no": 2, "quantity": 1},
        ),
    )
    # Named to sort before the shipment file, and dropped at the same second: taken after it.
    delivered = {"po_number": "PO-ACME-00000001"}
    folders.drop(
        "deliver-200.csv",
        csv_text(
            delivered | {"shipment_id": "S1", "delivered_at": "2026-12-08T16:05:00Z"},
            delivered | {"shipment_id": "S9", "delivered_at": "2026-12-08"},
            delivered | {"shipment_id": "S2", "delivered_at": "2026-12-08"},
            delivered | {"shipment_id": "S2", "delivered_at": "2026-12-09"},
            {"po_number": "", "shipment_id": "S1", "delivered_at": "tomorrow"},
        ),
    )
    folders.at_one_moment("ship-200.csv", "deliver-200.csv")

    summary = fulfillment_sync(stable_seconds=0)

    # Shipments S1 and S2, then the delivery of S1; S9 was never shipped.
    assert (summary["updates_applied"], summary["updates_conflict"]) == (3, 1)
    assert po("PO-ACME-00000001").state == "shipped"  # S2 is not delivered yet
    assert line_values("PO-ACME-00000001", "delivered_quantity") == [2, 0]
    errors = {row["_row"]: row["_errors"] for row in error_rows(folders.errors, "deliver-200")}
    assert errors.keys() == {"3", "4", "5", "6"}
    assert errors["3"].startswith("conflict: delivery of shipment S9, which is not known")
    assert "delivered_at: differs between the rows of the delivery of shipment S2" in errors["4"]
    assert errors["4"] == errors["5"]
    assert "po_number" in errors["6"] and "delivered_at" in errors["6"]

    # Without a shipment id: every shipment of the PO so far.
    folders.drop(
        "deliver-201.json",
        json.dumps([delivered | {"delivered_at": "2026-12-09T09:00:00+01:00"}]),
    )
    summary = fulfillment_sync(stable_seconds=0)
    assert summary["updates_applied"] == 1
    assert po("PO-ACME-00000001").state == "delivered"
    assert line_values("PO-ACME-00000001", "delivered_quantity") == [2, 1]
    with session_scope() as session:
        delivered = {s.supplier_shipment_id: s.delivered_at for s in session.exec(select(Shipment))}
    assert delivered["S1"] is not None and delivered["S1"].day == 8
    assert delivered["S2"] is not None and (delivered["S2"].day, delivered["S2"].hour) == (9, 8)
    again = fulfillment_sync(stable_seconds=0)
    assert again["files"] == 0
