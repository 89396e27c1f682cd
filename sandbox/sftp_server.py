"""An embedded SFTP server on loopback (asyncssh), for the demo: a supplier's server in a box.

It serves one folder (chrooted: the client sees ``/inbox``, ``/archive``, ``/errors``) to one
account with a random password, under a host key generated for this run, so the client pins
that key exactly as it would a real supplier's.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import threading
from pathlib import Path

import asyncssh


class _PasswordOnly(asyncssh.SSHServer):
    def __init__(self, username: str, password: str) -> None:
        self._username, self._password = username, password

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == self._username and secrets.compare_digest(password, self._password)


class EmbeddedSftpServer:
    """``with EmbeddedSftpServer(root) as server:`` — SFTP on 127.0.0.1:``server.port``."""

    def __init__(self, root: Path, username: str = "supplier") -> None:
        self.root = root
        self.username = username
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def known_hosts(self) -> str:
        """The known_hosts line that pins this server's host key."""
        public = self._host_key.export_public_key().decode().split()[:2]
        return f"[127.0.0.1]:{self.port} {' '.join(public)}\n"

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def __enter__(self) -> EmbeddedSftpServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._acceptor = await asyncssh.create_server(
            functools.partial(_PasswordOnly, self.username, self.password),
            "127.0.0.1",
            0,
            server_host_keys=[self._host_key],
            sftp_factory=functools.partial(asyncssh.SFTPServer, chroot=str(self.root)),
            allow_scp=False,
        )
        self.port = self._acceptor.get_port()

    async def _stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for session in sessions:
            session.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
