"""A real OpenSSH ``sshd`` on a loopback port, for the tests and the SFTP benchmark.

It runs ``sshd -D -f`` with its own configuration, host key and ``authorized_keys`` in a
temporary folder, serves SFTP only (``internal-sftp``), and logs a dedicated local account in
by key or by password. That account (``supplyline-sftp``) is created on first use with a random
password kept in a root-only file (``PASSWORD_FILE``), made once per machine: every server,
in this process or in another test session running beside it, logs the account in with the
same password, so starting one server never locks another's clients out. This needs root, as
sshd does to check passwords. The server can be stopped, killed (with its
sessions, as a crash would) and started again on the same port with the same host key.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SFTP_USER = "supplyline-sftp"
PASSWORD_FILE = Path("/var/lib/supplyline-test-sshd/password")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class OpenSshUnavailable(RuntimeError):
    """sshd is not installed, or this process may not run it with password logins."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SFTP_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
             "/usr/sbin/nologin", SFTP_USER],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return pwd.getpwnam(SFTP_USER)


def _account_password() -> str:
    """The account's password: made once, at random, and shared by every server on the machine."""
    PASSWORD_FILE.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as new:
            new.write(secrets.token_urlsafe(18))
    for _ in range(100):  # another session may be between creating the file and writing it
        password = PASSWORD_FILE.read_text().strip()
        if password:
            return password
        time.sleep(0.01)
    raise OpenSshUnavailable(f"{PASSWORD_FILE} stays empty; remove it to make a new password")


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


class OpenSshServer:
    """``with OpenSshServer() as server:`` — an SFTP server on 127.0.0.1:``server.port``.

    ``root`` is a folder the SFTP account owns (make ``inbox`` and the like there);
    ``client_key`` the private key it accepts; ``password`` its password; ``known_hosts``
    the line that pins the server's host key. ``denied_requests`` are SFTP requests the server
    refuses (``sftp-server -P``, names as ``sftp-server -Q requests`` lists them), to play a
    server without some extension.
    """

    def __init__(self, denied_requests: tuple[str, ...] = ()) -> None:
        if not Path(SSHD).exists():
            raise OpenSshUnavailable(
                "sshd is not installed (Debian: apt-get install openssh-server)"
            )
        if os.geteuid() != 0:
            raise OpenSshUnavailable("running sshd with password logins needs root")
        self.user = SFTP_USER
        self.port = free_port()
        self.password = _account_password()
        self.dir = Path(tempfile.mkdtemp(prefix="supplyline-sshd-"))
        self.dir.chmod(0o755)
        self.root = self.dir / "sftp"
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "client_ed25519_key"
        self.denied_requests = denied_requests
        self._process: subprocess.Popen[bytes] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> OpenSshServer:
        account = _ensure_user()
        subprocess.run(["chpasswd"], input=f"{self.user}:{self.password}".encode(), check=True)
        _keygen(self.host_key, "supplyline-test-host")
        _keygen(self.client_key, "supplyline-test-client")
        authorized = self.dir / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o644)
        self.root.mkdir()
        os.chown(self.root, account.pw_uid, account.pw_gid)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
        (self.dir / "sshd_config").write_text(self._config())
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        """Start sshd and wait until it answers with its banner."""
        self._process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "sshd.log").open("ab"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.dir / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    if probe.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not start on port {self.port}")

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Kill sshd and every session it serves at once, as a crash or a restart would."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Session processes stay in sshd's process group only until they set up their own:
        # signal the listener's group and every child of it.
        for pid in self._children(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        process.wait(timeout=10)

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        children = [int(p) for p in found.stdout.split()]
        return [
            grandchild for c in children for grandchild in OpenSshServer._children(c)
        ] + children

    # --- what a client needs -----------------------------------------------------------------

    @property
    def known_hosts(self) -> str:
        """The known_hosts line that pins this server's host key (``[127.0.0.1]:port``)."""
        key_type, key = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}\n"

    def folder(self, name: str) -> Path:
        """A folder under the SFTP root, owned by the SFTP account."""
        account = pwd.getpwnam(self.user)
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, account.pw_uid, account.pw_gid)
        return path

    def _config(self) -> str:
        sftp = "internal-sftp" + (
            f" -P {','.join(self.denied_requests)}" if self.denied_requests else ""
        )
        return "\n".join(
            [
                f"Port {self.port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {self.host_key}",
                f"PidFile {self.dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                f"AllowUsers {self.user}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin no",
                f"Subsystem sftp {sftp}",
                f"ForceCommand {sftp}",
                "MaxStartups 100:30:200",
                "LogLevel ERROR",
                "",
            ]
        )
