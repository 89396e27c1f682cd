"""`supplyline supplier sftp`: saving a supplier's SFTP server as a block, by password or key,
checked against a real sshd with --check; the secret is never printed, and a check that fails
says why and saves nothing."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from blocks.sftp import SftpServer
from sandbox.openssh import OpenSshServer
from supplyline.cli import EXIT_CONFIG_ERROR, app

pytestmark = [
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
    pytest.mark.usefixtures("database"),
]
runner = CliRunner()


@pytest.fixture
def supplier_code() -> str:
    code = f"sftp{uuid.uuid4().hex[:6]}"
    result = runner.invoke(app, ["supplier", "add", code, "--name", "SFTP Co"])
    assert result.exit_code == 0, result.output
    return code


@pytest.fixture
def known_hosts(sshd: OpenSshServer, tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts)
    return path


def save(code: str, sshd: OpenSshServer, known_hosts: Path, *auth: str, inbox: str) -> list[str]:
    return ["supplier", "sftp", code, "--host", "127.0.0.1", "--port", str(sshd.port),
            "--user", sshd.user, "--known-hosts", str(known_hosts), *auth,
            "--inbox", inbox, "--check"]  # fmt: skip


def said(result: Result) -> str:
    """What the command printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


def saved_block(code: str) -> SftpServer | None:
    try:
        return SftpServer.load(f"supplier-{code}")
    except ValueError:
        return None


def test_by_password_the_check_logs_in_and_the_password_is_never_shown(
    sshd: OpenSshServer,
    known_hosts: Path,
    supplier_code: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox = sshd.folder(f"cli-{uuid.uuid4().hex[:8]}")
    (inbox / "catalog.csv").write_text("sku\n")
    monkeypatch.setenv("SFTP_TEST_PASSWORD", sshd.password)
    caplog.set_level(logging.DEBUG)

    result = runner.invoke(
        app,
        save(supplier_code, sshd, known_hosts, "--password-env", "SFTP_TEST_PASSWORD",
             inbox=str(inbox)),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert f"logged in: 1 file(s) in {inbox}" in said(result)
    assert f"saved block supplier-{supplier_code}" in said(result)
    assert "by password" in said(result)
    assert sshd.password not in "".join((result.output + caplog.text).split())
    block = saved_block(supplier_code)
    assert block is not None and block.password is not None
    assert block.password.get_secret_value() == sshd.password
    assert sshd.password not in repr(block)
    with block.get_client() as sftp:
        assert [f.name for f in sftp.list(block.inbox)] == ["catalog.csv"]


def test_by_key_the_check_logs_in(
    sshd: OpenSshServer, known_hosts: Path, supplier_code: str
) -> None:
    inbox = sshd.folder(f"cli-{uuid.uuid4().hex[:8]}")

    result = runner.invoke(
        app,
        save(supplier_code, sshd, known_hosts, "--key-file", str(sshd.client_key),
             inbox=str(inbox)),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert f"logged in: 0 file(s) in {inbox}" in said(result)
    assert "by private key" in said(result)
    block = saved_block(supplier_code)
    assert block is not None and block.private_key is not None
    assert "PRIVATEKEY" not in "".join(result.output.split())


def test_a_wrong_password_is_refused_and_nothing_is_saved(
    sshd: OpenSshServer,
    known_hosts: Path,
    supplier_code: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SFTP_TEST_PASSWORD", "not-the-password")

    result = runner.invoke(
        app,
        save(supplier_code, sshd, known_hosts, "--password-env", "SFTP_TEST_PASSWORD",
             inbox=str(sshd.root)),
    )  # fmt: skip

    assert result.exit_code == EXIT_CONFIG_ERROR, result.output
    assert "refused the login by password" in said(result)
    assert "Nothing saved" in said(result)
    assert "not-the-password" not in "".join(result.output.split())
    assert saved_block(supplier_code) is None


def test_a_changed_host_key_is_refused_and_nothing_is_saved(
    sshd: OpenSshServer, supplier_code: str, tmp_path: Path
) -> None:
    with OpenSshServer() as other:
        impostor = tmp_path / "known_hosts"
        impostor.write_text(
            other.known_hosts.replace(f"[127.0.0.1]:{other.port}", f"[127.0.0.1]:{sshd.port}")
        )
        result = runner.invoke(
            app,
            save(supplier_code, sshd, impostor, "--key-file", str(sshd.client_key),
                 inbox=str(sshd.root)),
        )  # fmt: skip

    assert result.exit_code == EXIT_CONFIG_ERROR, result.output
    assert "host key has CHANGED" in said(result)
    assert saved_block(supplier_code) is None


def test_a_missing_inbox_or_a_server_out_of_reach_is_said_and_nothing_is_saved(
    sshd: OpenSshServer, known_hosts: Path, supplier_code: str
) -> None:
    key = ("--key-file", str(sshd.client_key))
    missing = runner.invoke(
        app, save(supplier_code, sshd, known_hosts, *key, inbox="/no/such/inbox")
    )
    assert missing.exit_code == EXIT_CONFIG_ERROR, missing.output
    assert "the inbox /no/such/inbox is not there" in said(missing)

    with OpenSshServer() as gone:
        pass  # stopped: nothing listens on its port any more
    out_of_reach = save(supplier_code, gone, known_hosts, *key, inbox=str(sshd.root))
    result = runner.invoke(app, out_of_reach)
    assert result.exit_code == EXIT_CONFIG_ERROR, result.output
    assert "cannot reach the server" in said(result)
    assert saved_block(supplier_code) is None


def test_exactly_one_secret_and_a_set_variable_are_required(
    sshd: OpenSshServer,
    known_hosts: Path,
    supplier_code: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SFTP_UNSET_PASSWORD", raising=False)
    neither = runner.invoke(app, save(supplier_code, sshd, known_hosts, inbox="/inbox"))
    assert neither.exit_code == EXIT_CONFIG_ERROR
    assert "exactly one of --password-env and --key-file" in said(neither)

    unset = runner.invoke(
        app,
        save(supplier_code, sshd, known_hosts, "--password-env", "SFTP_UNSET_PASSWORD",
             inbox="/inbox"),
    )  # fmt: skip
    assert unset.exit_code == EXIT_CONFIG_ERROR
    assert "SFTP_UNSET_PASSWORD is not set" in said(unset)
    assert saved_block(supplier_code) is None
