"""Status files for retailers with an ``sftp`` connector: the run's PO events as JSON Lines in
the connector's status folder on a real OpenSSH sshd, once, deduplicable by event id."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from order_world import ACTOR, make_world
from push_world import add_event, events_of, life_of, order_through, unpushed
from sqlmodel import select

from blocks.sftp import SftpServer
from flows.retailer_push import retailer_push
from models.db import session_scope
from models.orders import PoEvent
from models.retailer_push import PoEventDelivery
from sandbox.openssh import OpenSshServer, free_port
from supplyline.settings import get_settings
from tasks.connectors import add_connector, retailer_block_name
from tasks.retailer_events import event_key
from tasks.retailer_push import STATUS_FILE_PREFIX

pytestmark = pytest.mark.usefixtures("prefect_api", "database")


def sftp_world(sshd: OpenSshServer) -> tuple[str, Path]:
    make_world()
    name = f"shopco-{uuid.uuid4().hex[:8]}"
    base = sshd.folder(name)
    with session_scope() as session:
        added = add_connector(
            session,
            "shopco",
            "sftp",
            orders_folder=str(base / "orders"),
            status_folder=str(base / "status"),
            actor=ACTOR,
        )
    return added.connector.code, base / "status"


def save_server(sshd: OpenSshServer, connector: str, port: int | None = None) -> None:
    SftpServer(
        host="127.0.0.1",
        port=port or sshd.port,
        username=sshd.user,
        private_key=sshd.client_key.read_text(),
        known_hosts=sshd.known_hosts,
        connect_timeout=5,
    ).save(retailer_block_name(connector), overwrite=True)


def status_files(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(STATUS_FILE_PREFIX))


def test_status_files_reach_the_retailers_folder_once(
    sshd: OpenSshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPLYLINE_PUSH_RETRY_DELAY_SECONDS", "0")
    get_settings.cache_clear()
    connector, folder = sftp_world(sshd)
    order_through(connector, "O1", ("A-1", 2))
    order_through(connector, "O2", ("A-1", 1))
    life_of("O1")
    expected = events_of("O1") + events_of("O2")

    # The server cannot be reached: nothing is lost, everything waits for the next run.
    save_server(sshd, connector, port=free_port())
    down = retailer_push()
    assert (down["delivered"], down["retrying"]) == (0, len(expected))
    assert status_files(folder) == [] and len(unpushed()) == len(expected)
    with session_scope() as session:
        problem = session.exec(select(PoEventDelivery.last_error)).first()
    assert problem.startswith("status file po-events-")

    save_server(sshd, connector)
    up = retailer_push()
    assert up["delivered"] == len(expected) and unpushed() == []
    [status] = status_files(folder)
    assert status.suffix == ".jsonl"
    lines = [json.loads(line) for line in status.read_text().splitlines()]
    assert [line["id"] for line in lines] == [event_key(i) for i in sorted(expected)]
    shipments = [line for line in lines if line["type"] == "po.shipment"]
    assert [s["data"]["tracking_number"] for s in shipments] == ["1ZO1-S1", "1ZO1-S2"]
    assert {line["order_id"] for line in lines} == {"O1", "O2"}
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]

    # A run that died after the upload, before recording it, uploads the same file name: the
    # file already there is the delivery, and no second copy is written.
    with session_scope() as session:
        session.execute(PoEventDelivery.__table__.update().values(status="pending"))  # type: ignore[attr-defined]
        session.execute(PoEvent.__table__.update().values(pushed_at=None))  # type: ignore[attr-defined]
    assert retailer_push()["delivered"] == len(expected)
    assert status_files(folder) == [status]

    # Later events go in a file of their own.
    late = add_event("O2", "cancellation", {"whole_po": True, "lines": []})
    assert retailer_push()["delivered"] == 1
    assert len(status_files(folder)) == 2
    newest = max(status_files(folder), key=lambda p: p.name)
    assert [json.loads(line)["id"] for line in newest.read_text().splitlines()] == [event_key(late)]
