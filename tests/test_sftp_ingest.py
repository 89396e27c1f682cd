"""SFTP pickup end to end: a real sshd, the catalog-sftp-ingest flow on Prefect's ephemeral API,
and the ledger that keeps every file to one load, whatever stops half-way."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import paramiko
import pytest
import sqlalchemy as sa
from prefect.settings import PREFECT_API_URL
from sqlmodel import select
from typer.testing import CliRunner

from blocks.sftp import SftpServer
from flows.sftp_ingest import catalog_sftp_ingest
from models.catalog import CatalogFile, utcnow
from models.db import session_scope
from models.sftp import Pickup, RemoteFile
from sandbox.openssh import OpenSshServer
from supplyline.cli import SAMPLES_DIR, app
from tasks.sftp import find_ready_files, stamped
from tasks.suppliers import add_supplier, get_supplier, products_of

pytestmark = pytest.mark.usefixtures("prefect_api", "database")
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
runner = CliRunner()


class Supplier:
    """A supplier with an SFTP block on the test sshd, and its own folders there."""

    def __init__(
        self, server: OpenSshServer, code: str, *, feed: str = "delta", mapping: str | None = None
    ) -> None:
        self.code = code
        base = f"{code}-{uuid.uuid4().hex[:8]}"
        self.inbox, self.archive, self.errors = (
            server.folder(f"{base}/{name}") for name in ("inbox", "archive", "errors")
        )
        self.block = SftpServer(
            host="127.0.0.1",
            port=server.port,
            username=server.user,
            private_key=server.client_key.read_text(),
            known_hosts=server.known_hosts,
            inbox=str(self.inbox),
            archive=str(self.archive),
            errors=str(self.errors),
        )
        self.block.save(f"supplier-{code}", overwrite=True)
        with session_scope() as session:
            add_supplier(session, code, code.upper(), mapping=mapping, feed_mode=feed)

    def drop(self, name: str, data: bytes) -> None:
        """Upload as a supplier would: paramiko, straight into the inbox."""
        with _session(self.block) as raw, raw.open(f"{self.inbox}/{name}", "wb") as remote:
            remote.write(data)

    def ingest(self, **parameters: object) -> dict[str, object]:
        return catalog_sftp_ingest(supplier=self.code, **({"stable_seconds": 0} | parameters))

    def products(self) -> dict[str, str]:
        with session_scope() as session:
            return {p.sku: p.status for p in products_of(session, get_supplier(session, self.code))}


class _session:
    """A bare paramiko SFTP session for the test's own uploads (host key still checked)."""

    def __init__(self, block: SftpServer) -> None:
        self.block = block

    def __enter__(self) -> paramiko.SFTPClient:
        self.ssh = paramiko.SSHClient()
        self.ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        for line in self.block.known_hosts.splitlines():
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
            self.ssh.get_host_keys().add(entry.hostnames[0], entry.key.get_name(), entry.key)
        self.ssh.connect(
            self.block.host,
            port=self.block.port,
            username=self.block.username,
            pkey=paramiko.Ed25519Key.from_private_key(
                io.StringIO(self.block.private_key.get_secret_value())  # type: ignore[union-attr]
            ),
            allow_agent=False,
            look_for_keys=False,
        )
        return self.ssh.open_sftp()

    def __exit__(self, *_: object) -> None:
        self.ssh.close()


def catalog_rows(skus: list[str], cost: str = "5.00") -> bytes:
    """A catalog file with canonical headers and these SKUs."""
    lines = [["sku", "title", "brand", "cost", "quantity", "status"]]
    lines += [[sku, f"Item {sku}", "ACME", cost, "3", "active"] for sku in skus]
    path = Path(f"/tmp/{uuid.uuid4().hex}.csv")
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(lines)
    data = path.read_bytes()
    path.unlink()
    return data


def files_by_status() -> list[tuple[str, str]]:
    with session_scope() as session:
        rows = session.exec(select(CatalogFile).order_by(CatalogFile.id)).all()
        return [(r.original_name, r.status) for r in rows]


def ledger() -> dict[str, str]:
    with session_scope() as session:
        return {r.name: r.state for r in session.exec(select(RemoteFile)).all()}


# --- the whole path -------------------------------------------------------------------------


def test_files_are_ingested_answered_and_archived_once(sshd: OpenSshServer) -> None:
    acme = Supplier(sshd, "acme", mapping="acme")
    acme.drop("acme_catalog.csv", (SAMPLES_DIR / "acme_catalog.csv").read_bytes())
    acme.drop("fixes.csv", (SAMPLES_DIR / "acme_catalog_with_errors.csv").read_bytes())
    acme.drop("notes.pdf", b"%PDF- not a catalog")
    acme.drop(".hidden.csv", b"sku\n")

    result = acme.ingest()

    statuses = [(e["file"], e["status"]) for e in result["files"]]  # type: ignore[union-attr]
    assert statuses == [("acme_catalog.csv", "accepted"), ("fixes.csv", "partially_accepted")]
    assert sorted(p.name for p in acme.inbox.iterdir()) == [".hidden.csv", "notes.pdf"]
    archived = sorted(p.name for p in acme.archive.iterdir())
    assert [n.split(".")[0] for n in archived] == ["acme_catalog", "fixes"]
    assert all(n.endswith(".csv") for n in archived)
    errors = sorted(p.name for p in acme.errors.iterdir())
    assert len(errors) == 2 and errors[0].endswith(".errors.csv") and errors[1].endswith(".json")
    assert errors[0].startswith("fixes.")
    error_file = (acme.errors / errors[0]).read_text(encoding="utf-8-sig")
    assert error_file.startswith("_row,_errors,Item Number")
    assert ledger() == {
        "acme_catalog.csv": "archived",
        "fixes.csv": "archived",
        "notes.pdf": "ignored",
    }
    with session_scope() as session:
        [pickup] = session.exec(select(Pickup)).all()
        assert (pickup.status, pickup.files_taken) == ("completed", 2)

    # Run again: nothing new is taken; the ignored file is not reported again.
    assert acme.ingest()["files"] == []
    assert len(files_by_status()) == 2


@sqlite_only
def test_same_content_under_another_name_is_a_duplicate(sshd: OpenSshServer) -> None:
    acme = Supplier(sshd, "acme")
    acme.drop("monday.csv", catalog_rows(["A-1", "A-2"]))
    acme.ingest()
    acme.drop("tuesday.csv", catalog_rows(["A-1", "A-2"]))
    [entry] = acme.ingest()["files"]  # type: ignore[misc]
    assert entry["status"] == "duplicate"
    assert "same content as file" in entry["message"]
    assert ledger() == {"monday.csv": "archived", "tuesday.csv": "archived"}


@sqlite_only
def test_a_growing_file_is_not_taken_until_it_stops(sshd: OpenSshServer) -> None:
    acme = Supplier(sshd, "acme")
    data = catalog_rows([f"G-{n}" for n in range(2000)])
    chunks = [data[i : i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
    with _session(acme.block) as raw, raw.open(f"{acme.inbox}/growing.csv", "wb") as remote:
        for chunk in chunks:
            remote.write(chunk)
            remote.flush()
            inbox = find_ready_files.fn(acme.block, "acme", stable_seconds=1.0, wait=False)
            assert inbox.ready == [] and inbox.waiting == ["growing.csv"]
            time.sleep(0.6)
    time.sleep(1.1)
    inbox = find_ready_files.fn(acme.block, "acme", stable_seconds=1.0, wait=False)
    assert [r.name for r in inbox.ready] == ["growing.csv"]
    assert inbox.ready[0].remote.size == len(data)
    with session_scope() as session:
        rows = session.exec(select(RemoteFile)).all()
        assert [(r.name, r.size_bytes) for r in rows] == [("growing.csv", len(data))]


@sqlite_only
def test_filepart_then_rename_with_the_openssh_client(sshd: OpenSshServer, tmp_path: Path) -> None:
    acme = Supplier(sshd, "acme")
    local = tmp_path / "catalog.csv"
    local.write_bytes(catalog_rows(["F-1"]))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts)
    sftp = [
        "sftp", "-q", "-b", "-", "-P", str(sshd.port), "-i", str(sshd.client_key),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        f"{sshd.user}@127.0.0.1",
    ]  # fmt: skip
    subprocess.run(
        sftp, input=f"put {local} {acme.inbox}/catalog.csv.filepart\n", text=True, check=True
    )
    assert acme.ingest(stable_seconds=3600)["files"] == []
    assert acme.ingest()["files"] == []  # a .filepart is never taken, stable or not
    subprocess.run(
        sftp,
        input=f"rename {acme.inbox}/catalog.csv.filepart {acme.inbox}/catalog.csv\n",
        text=True,
        check=True,
    )
    [entry] = acme.ingest()["files"]  # type: ignore[misc]
    assert entry["status"] == "accepted"


@sqlite_only
def test_a_marker_makes_a_file_ready_at_once_and_is_consumed(sshd: OpenSshServer) -> None:
    acme = Supplier(sshd, "acme")
    acme.drop("catalog.csv", catalog_rows(["M-1"]))
    acme.drop("other.csv", catalog_rows(["M-2"]))
    assert acme.ingest(stable_seconds=3600)["files"] == []  # not stable yet, no marker
    acme.drop("catalog.csv.done", b"")
    [entry] = acme.ingest(stable_seconds=3600)["files"]  # type: ignore[misc]
    assert entry["file"] == "catalog.csv"
    assert sorted(p.name for p in acme.inbox.iterdir()) == ["other.csv"]
    assert sorted(p.name.split(".")[0] for p in acme.archive.iterdir()) == ["catalog", "catalog"]


@sqlite_only
def test_traversal_names_are_refused_and_left_in_place(sshd: OpenSshServer) -> None:
    acme = Supplier(sshd, "acme")
    acme.drop("in\\..\\..\\evil.csv", catalog_rows(["E-1"]))
    acme.drop("fine.csv", catalog_rows(["E-2"]))
    result = acme.ingest()
    assert [e["file"] for e in result["files"]] == ["fine.csv"]  # type: ignore[union-attr]
    assert (acme.inbox / "in\\..\\..\\evil.csv").exists()
    with session_scope() as session:
        [refused] = session.exec(select(RemoteFile).where(RemoteFile.state == "refused")).all()
        assert "path separator" in (refused.message or "")


@sqlite_only
def test_fifty_files_in_one_run(sshd: OpenSshServer) -> None:
    acme = Supplier(sshd, "acme")
    for n in range(50):
        acme.drop(f"part-{n:02}.csv", catalog_rows([f"P-{n}-{i}" for i in range(20)]))
    result = acme.ingest()
    assert len(result["files"]) == 50  # type: ignore[arg-type]
    assert {e["status"] for e in result["files"]} == {"accepted"}  # type: ignore[union-attr]
    assert len(acme.products()) == 1000
    assert list(acme.inbox.iterdir()) == []
    assert len(list(acme.archive.iterdir())) == 50


@sqlite_only
def test_a_run_killed_half_way_and_run_again_loads_each_file_once(
    sshd: OpenSshServer, database: str
) -> None:
    acme = Supplier(sshd, "acme")
    for n in range(16):
        acme.drop(f"part-{n:02}.csv", catalog_rows([f"K-{n}-{i}" for i in range(50)]))
    env = os.environ | {"PREFECT_API_URL": str(PREFECT_API_URL.value())}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supplyline.cli",
            "catalog",
            "ingest",
            "acme",
            "--stable-seconds",
            "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if len(list(acme.archive.iterdir())) >= 4:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    done_before = len(list(acme.archive.iterdir()))
    assert 4 <= done_before < 16, "the run was to be killed half-way"

    # The dead run still holds the lease: the next one says so, then takes over once stale.
    with pytest.raises(Exception, match="working the inbox"):
        acme.ingest()
    with session_scope() as session:
        session.execute(
            sa.update(Pickup)
            .where(Pickup.status == "running")  # type: ignore[arg-type]
            .values(started_at=utcnow() - timedelta(hours=2))
        )
    acme.ingest()

    assert list(acme.inbox.iterdir()) == []
    assert len(acme.products()) == 16 * 50
    with session_scope() as session:
        rows = session.exec(select(CatalogFile)).all()
        loaded = [r.original_name for r in rows if r.status == "accepted"]
        assert sorted(loaded) == sorted(set(loaded)) and len(loaded) == 16, "each loaded once"
        assert {r.status for r in rows} <= {"accepted", "failed", "duplicate"}


@sqlite_only
def test_a_restarting_server_is_retried_and_a_run_that_gives_up_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from supplyline.settings import get_settings

    monkeypatch.setenv("SUPPLYLINE_SFTP_RETRIES", "3")
    monkeypatch.setenv("SUPPLYLINE_SFTP_RETRY_DELAY_SECONDS", "1")
    get_settings.cache_clear()
    with OpenSshServer() as server:
        acme = Supplier(server, "acme")
        acme.drop("catalog.csv", catalog_rows(["R-1"]))
        server.kill()
        restart = threading.Timer(1.5, server.start)
        restart.start()
        [entry] = acme.ingest()["files"]  # type: ignore[misc]
        restart.join()
        assert entry["status"] == "accepted"

        server.kill()
        monkeypatch.setenv("SUPPLYLINE_SFTP_RETRIES", "1")
        get_settings.cache_clear()
        with pytest.raises(Exception, match=r"(?i)connect|refused|unable"):
            acme.ingest()
        with session_scope() as session:
            last = session.exec(select(Pickup).order_by(Pickup.id.desc())).first()  # type: ignore[union-attr]
            assert last is not None and last.status == "failed"
            assert (last.message or "").startswith("gave up:")


@sqlite_only
def test_cli_one_unreachable_supplier_never_stops_the_others(
    sshd: OpenSshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from supplyline.settings import get_settings

    monkeypatch.setenv("SUPPLYLINE_SFTP_RETRIES", "0")
    get_settings.cache_clear()
    acme = Supplier(sshd, "acme")
    acme.drop("catalog.csv", catalog_rows(["U-1"]))
    gone = Supplier(sshd, "gone")
    gone.block.port = 1  # nothing listens there
    gone.block.connect_timeout = 2
    gone.block.save("supplier-gone", overwrite=True)
    result = runner.invoke(app, ["catalog", "ingest", "gone", "acme", "--stable-seconds", "0"])
    assert result.exit_code == 2, result.output
    assert "gone" in result.output and "acme" in result.output
    assert acme.products() == {"U-1": "active"}


def test_archive_names_keep_the_file_type_last() -> None:
    assert stamped("catalog.csv", "S") == "catalog.S.csv"
    assert stamped("catalog.csv.gz", "S") == "catalog.S.csv.gz"
    assert stamped("v1.2 catalog.xlsx", "S") == "v1.2 catalog.S.xlsx"
    assert stamped("README", "S") == "README.S"


@sqlite_only
def test_a_failed_move_stops_reprocessing_and_the_next_run_archives(sshd: OpenSshServer) -> None:
    acme = Supplier(sshd, "acme")
    acme.drop("catalog.csv", catalog_rows(["V-1"]))
    acme.archive.chmod(0o555)  # the SFTP account may not write there
    [entry] = acme.ingest()["files"]  # type: ignore[misc]
    assert entry["status"] == "accepted" and entry["remote"] is None
    assert ledger() == {"catalog.csv": "processed"}
    with session_scope() as session:
        [row] = session.exec(select(RemoteFile)).all()
        assert "will not be processed again" in (row.message or "")

    assert acme.ingest()["files"] == []  # still in the inbox, not loaded again
    assert len(files_by_status()) == 1
    acme.archive.chmod(0o755)  # writable again
    assert acme.ingest()["files"] == []
    assert ledger() == {"catalog.csv": "archived"}
    assert list(acme.inbox.iterdir()) == []
    assert len(files_by_status()) == 1


@sqlite_only
def test_a_refused_login_is_not_retried_and_the_run_says_why(
    sshd: OpenSshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from supplyline.settings import get_settings

    monkeypatch.setenv("SUPPLYLINE_SFTP_RETRIES", "3")
    monkeypatch.setenv("SUPPLYLINE_SFTP_RETRY_DELAY_SECONDS", "1")
    get_settings.cache_clear()
    acme = Supplier(sshd, "acme")
    acme.block.private_key = None
    acme.block.password = "not-the-password"  # type: ignore[assignment]
    acme.block.save("supplier-acme", overwrite=True)

    state = catalog_sftp_ingest(supplier="acme", stable_seconds=0, return_state=True)

    assert state.is_failed()
    with session_scope() as session:
        last = session.exec(select(Pickup).order_by(Pickup.id.desc())).first()  # type: ignore[union-attr]
        assert last is not None and last.status == "failed"
        assert "refused the login by password" in (last.message or "")
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    [listing] = [run for run in runs if run.name == "list-acme"]
    assert listing.run_count == 1, "a refused login is tried once, not retried with backoff"
    assert listing.state is not None and listing.state.is_failed()
