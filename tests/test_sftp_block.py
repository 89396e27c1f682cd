"""The SftpServer block against a real OpenSSH sshd: host keys, auth, downloads, uploads."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from blocks.sftp import SftpError, SftpServer, UnsafeRemoteName, check_remote_name
from sandbox.openssh import OpenSshServer


def block(server: OpenSshServer, *, auth: str = "key", **fields: object) -> SftpServer:
    credentials: dict[str, object] = (
        {"private_key": server.client_key.read_text()}
        if auth == "key"
        else {"password": server.password}
    )
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.user,
        "known_hosts": server.known_hosts,
    }
    return SftpServer(**(settings | credentials | fields))


@pytest.fixture
def inbox(sshd: OpenSshServer) -> Path:
    return sshd.folder(f"block-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("auth", ["key", "password"])
def test_logs_in_by_key_or_password_and_lists_regular_files(
    sshd: OpenSshServer, inbox: Path, auth: str
) -> None:
    (inbox / "a.csv").write_text("sku\n")
    (inbox / "folder").mkdir()
    with block(sshd, auth=auth).get_client() as sftp:
        listed = sftp.list(str(inbox))
    assert [(f.name, f.size) for f in listed] == [("a.csv", 4)]


def test_a_wrong_password_is_refused(sshd: OpenSshServer) -> None:
    server = block(sshd, auth="password", password="not-the-password")
    with pytest.raises(Exception, match=r"(?i)authentication"), server.get_client():
        pass


def test_an_unknown_host_key_is_refused_before_anything_moves(sshd: OpenSshServer) -> None:
    other_host = sshd.known_hosts.replace(f"[127.0.0.1]:{sshd.port}", "[10.9.9.9]:22")
    with (
        pytest.raises(SftpError, match="not pinned"),
        block(sshd, known_hosts=other_host).get_client(),
    ):
        pass


def test_a_changed_host_key_is_refused(sshd: OpenSshServer, tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    key_type, key = (tmp_path / "k.pub").read_text().split()[:2]
    impostor = f"[127.0.0.1]:{sshd.port} {key_type} {key}\n"
    with pytest.raises(SftpError, match="CHANGED"), block(sshd, known_hosts=impostor).get_client():
        pass


def test_a_block_without_a_pinned_host_key_cannot_be_made(sshd: OpenSshServer) -> None:
    with pytest.raises(ValidationError, match="no host key"):
        block(sshd, known_hosts="# nothing pinned\n")
    with pytest.raises(ValidationError, match="password or a private key"):
        SftpServer(host="h", username="u", known_hosts=sshd.known_hosts)


def test_secrets_do_not_show_in_the_block(sshd: OpenSshServer) -> None:
    server = block(sshd, auth="password")
    assert sshd.password not in repr(server)
    assert sshd.password not in str(server.model_dump())


def test_download_checks_size_hashes_and_leaves_no_temporary_file(
    sshd: OpenSshServer, inbox: Path, tmp_path: Path
) -> None:
    data = b"sku,title\n" + b"x" * 3_000_000
    (inbox / "big.csv").write_bytes(data)
    with block(sshd).get_client() as sftp:
        [remote] = sftp.list(str(inbox))
        download = sftp.download(remote, tmp_path / "local")
    assert download.path.read_bytes() == data
    assert download.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == ["big.csv"]


# OpenSSH's sftp-server reads at most 255 KiB (261120 bytes) at a time: sizes around that edge.
@pytest.mark.parametrize("size", [0, 1, 261_119, 261_120, 261_121, 5 * 261_120 + 7])
def test_download_of_any_size_gets_the_exact_bytes_in_large_reads(
    sshd: OpenSshServer, inbox: Path, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    (inbox / "catalog.csv").write_bytes(data)
    with block(sshd).get_client() as sftp:
        assert sftp._sftp.read_size == 261_120, "the server's limits@openssh.com were taken"
        [remote] = sftp.list(str(inbox))
        download = sftp.download(remote, tmp_path / "local")
    assert download.path.read_bytes() == data
    assert (download.size, download.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert [p.name for p in (tmp_path / "local").iterdir()] == ["catalog.csv"]


def test_short_and_out_of_order_replies_are_put_back_in_order(
    sshd: OpenSshServer, inbox: Path, tmp_path: Path
) -> None:
    """Reads of 1 MiB, above the server's limit: it answers each with 255 KiB, the block asks
    again for the rest, and those answers come after the ones for later parts of the file."""
    data = os.urandom(9 * 1024 * 1024 + 12_345)
    (inbox / "catalog.csv").write_bytes(data)
    with block(sshd).get_client() as sftp:
        sftp._sftp.read_size = 1024 * 1024
        [remote] = sftp.list(str(inbox))
        download = sftp.download(remote, tmp_path / "local")
        assert sftp.stat(remote.path) == remote, "the session is still in step afterwards"
    assert download.path.read_bytes() == data
    assert download.sha256 == hashlib.sha256(data).hexdigest()


def test_a_server_without_limits_gets_32_kib_reads(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 777)
    with OpenSshServer(denied_requests=("limits",)) as server:
        (server.folder("inbox") / "catalog.csv").write_bytes(data)
        with block(server).get_client() as sftp:
            assert sftp._sftp.read_size == 32_768
            [remote] = sftp.list(str(server.root / "inbox"))
            download = sftp.download(remote, tmp_path / "local")
    assert download.path.read_bytes() == data
    assert download.sha256 == hashlib.sha256(data).hexdigest()


def test_upload_goes_up_under_a_temporary_name_then_renamed(
    sshd: OpenSshServer, inbox: Path, tmp_path: Path
) -> None:
    local = tmp_path / "report.errors.csv"
    local.write_text("_row,_errors\n2,sku: required\n")
    with block(sshd).get_client() as sftp:
        remote = sftp.upload(local, str(inbox), "report.errors.csv")
        moved = sftp.move(remote, str(inbox), "moved.csv")
    assert moved == f"{inbox}/moved.csv"
    assert [p.name for p in inbox.iterdir()] == ["moved.csv"]
    assert (inbox / "moved.csv").read_text() == local.read_text()


@pytest.mark.parametrize("name", ["../x.csv", "a/b.csv", "..", "a..csv", "x\x00.csv", "a\\b.csv"])
def test_names_that_could_escape_the_folder_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeRemoteName, match="refused"):
        check_remote_name(name)
    assert check_remote_name("catalog 2026-11.csv") == "catalog 2026-11.csv"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_server_killed_mid_download_leaves_no_partial_file(tmp_path: Path) -> None:
    with OpenSshServer() as server:
        folder = server.folder("inbox")
        (folder / "big.csv").write_bytes(b"y" * 400 * 1024 * 1024)
        local = tmp_path / "local"

        def kill_once_bytes_arrive() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                parts = list(local.glob(".*.part")) if local.exists() else []
                if parts and parts[0].stat().st_size > 0:
                    server.kill()
                    return
                time.sleep(0.002)

        killer = threading.Thread(target=kill_once_bytes_arrive)
        with block(server, operation_timeout=5).get_client() as sftp:
            [remote] = sftp.list(str(folder))
            killer.start()
            with pytest.raises(Exception):  # noqa: B017 - the connection dies under it
                sftp.download(remote, local)
        killer.join()
        assert list(local.iterdir()) == [], "nothing, not even a partial file, is left"
        server.start()
        with block(server).get_client() as sftp:
            download = sftp.download(remote, local)
        assert download.size == remote.size
