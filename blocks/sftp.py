"""The ``SftpServer`` block: a supplier's SFTP server, its pinned host key, and a client for it.

The client never trusts a host it does not know: the block holds the server's host key(s) as
known_hosts lines, and paramiko refuses an unknown or changed key before any byte of a file
moves (``RejectPolicy``, never ``AutoAddPolicy``). Downloads land under a temporary name, are
checked against the remote size and hashed on the way, then renamed into place; uploads go up
under a temporary name and are renamed on the server, so nobody ever sees half a file.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import socket
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import paramiko
from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr, field_validator, model_validator

# The formats the catalog readers take, plain or compressed.
_CATALOG_SUFFIXES = ("csv", "tsv", "tab", "txt", "psv", "xlsx", "xlsm", "json", "jsonl", "ndjson")
DEFAULT_PATTERNS = [
    f"*.{suffix}{compressed}"
    for suffix in _CATALOG_SUFFIXES
    for compressed in ("", ".gz", ".gzip", ".zip")
]
# Big windows and packets, many reads in flight: the difference between a few MB/s and
# line speed on a long fat pipe (measured in bench/sftp_download.py).
WINDOW_SIZE = 2**25
MAX_PACKET_SIZE = 2**15
PREFETCH_REQUESTS = 512
# AES-GCM needs no separate MAC pass; the CTR modes stay for servers without it.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)


class SftpError(RuntimeError):
    """An SFTP operation that failed for a reason worth telling the operator."""


class UnsafeRemoteName(SftpError):
    """A remote file name that could write outside the working folder if trusted."""


@dataclass(frozen=True)
class RemoteFile:
    """A regular file in a remote folder, as a listing shows it."""

    name: str
    path: str
    size: int
    mtime: int


@dataclass(frozen=True)
class Download:
    """A file fetched into place, with what was checked on the way."""

    path: Path
    size: int
    sha256: str


def check_remote_name(name: str) -> str:
    """``name`` if it is a plain file name: a path separator, ``..`` or NUL are refused."""
    if not name or name == "." or any(bad in name for bad in ("/", "\\", "..", "\x00")):
        raise UnsafeRemoteName(
            f"refused remote file name {name!r}: a path separator, '..' or NUL could write "
            f"outside the working folder; rename the file on the server"
        )
    return name


class SftpServer(CredentialsBlock):
    """A supplier's SFTP server: where its catalog files arrive and where answers go.

    The server's host key must be pinned (``known_hosts``); an unknown or changed key is
    refused. Authenticate with a password or a private key (optionally with a passphrase).

    Example:
        ```python
        from blocks.sftp import SftpServer

        server = SftpServer.load("supplier-acme")
        with server.get_client() as sftp:
            for remote in sftp.list(server.inbox):
                print(remote.name, remote.size)
        ```
    """

    _block_type_name: ClassVar[str] = "Supplyline SFTP Server"
    _block_type_slug: ClassVar[str] = "supplyline-sftp-server"
    _description: ClassVar[str] = (
        "A supplier's SFTP server with its pinned host key, credentials and folders "
        "(inbox, archive, errors), and a client that lists, downloads, uploads and moves files."
    )

    host: str = Field(description="Host name or IP address of the SFTP server.")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port.")
    username: str = Field(description="The account to log in as.")
    password: SecretStr | None = Field(default=None, description="Password, if any.")
    private_key: SecretStr | None = Field(
        default=None, description="Private key (OpenSSH or PEM text), if any."
    )
    private_key_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase of the private key, if it has one."
    )
    known_hosts: str = Field(
        description=(
            "The server's host key(s) as known_hosts lines, e.g. from `ssh-keyscan -p PORT "
            "HOST` checked against the supplier's own word. Required: unknown hosts are refused."
        )
    )
    inbox: str = Field(default="/inbox", description="Folder where new files arrive.")
    archive: str = Field(default="/archive", description="Folder processed files move to.")
    errors: str = Field(default="/errors", description="Folder error files are written to.")
    patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PATTERNS),
        description="File name patterns (fnmatch, case-insensitive) that are catalog files.",
    )
    connect_timeout: float = Field(
        default=20, gt=0, description="Seconds to wait for the TCP connection and the SSH banner."
    )
    operation_timeout: float = Field(
        default=60, gt=0, description="Seconds an SFTP request may go unanswered."
    )

    @field_validator("known_hosts")
    @classmethod
    def _parse_known_hosts(cls, value: str) -> str:
        entries = _host_key_entries(value)
        if not entries:
            raise ValueError(
                "known_hosts holds no host key: pin the server's key (a known_hosts line); "
                "unknown hosts are refused"
            )
        return value

    @model_validator(mode="after")
    def _has_credentials(self) -> SftpServer:
        if self.password is None and self.private_key is None:
            raise ValueError("give a password or a private key")
        return self

    @contextmanager
    def get_client(self) -> Iterator[SftpClient]:  # type: ignore[override]
        """An SFTP session on the server, closed when the block exits."""
        ssh = paramiko.SSHClient()
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        host_keys = ssh.get_host_keys()
        for entry in _host_key_entries(self.known_hosts):
            for name in entry.hostnames:
                host_keys.add(name, entry.key.get_name(), entry.key)
        try:
            ssh.connect(
                self.host,
                port=self.port,
                username=self.username,
                password=self.password.get_secret_value() if self.password else None,
                pkey=self._private_key(),
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.operation_timeout,
                allow_agent=False,
                look_for_keys=False,
                transport_factory=_fast_transport,
            )
        except paramiko.BadHostKeyException as exc:
            ssh.close()
            raise SftpError(
                f"{self._where}: the server's host key has CHANGED ({exc.key.get_name()} "
                f"{exc.key.fingerprint}); refusing to connect. If the supplier confirms a new "
                f"key, update the block's known_hosts"
            ) from exc
        except paramiko.SSHException as exc:
            ssh.close()
            if "not found in known_hosts" in str(exc):
                raise SftpError(
                    f"{self._where}: the server's host key is not pinned in known_hosts; "
                    f"refusing to connect. Add its key (ssh-keyscan, checked with the supplier)"
                ) from exc
            raise
        except Exception:
            ssh.close()
            raise
        try:
            sftp = _open_sftp(ssh.get_transport())  # type: ignore[arg-type]
            sftp.get_channel().settimeout(self.operation_timeout)  # type: ignore[union-attr]
            yield SftpClient(sftp)
        finally:
            ssh.close()

    @property
    def _where(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}"

    def _private_key(self) -> paramiko.PKey | None:
        if self.private_key is None:
            return None
        passphrase = (
            self.private_key_passphrase.get_secret_value() if self.private_key_passphrase else None
        )
        text = self.private_key.get_secret_value()
        problems = []
        for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            try:
                return key_class.from_private_key(io.StringIO(text), password=passphrase)
            except paramiko.PasswordRequiredException:
                raise SftpError(
                    f"{self._where}: the private key is encrypted; set its passphrase"
                ) from None
            except (paramiko.SSHException, ValueError) as exc:
                problems.append(f"{key_class.__name__}: {exc}")
        raise SftpError(
            f"{self._where}: the private key cannot be read as Ed25519, ECDSA or RSA "
            f"({'; '.join(problems)})"
        )


def _host_key_entries(text: str) -> list[paramiko.hostkeys.HostKeyEntry]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno=number)
        except (paramiko.SSHException, ValueError) as exc:
            raise ValueError(f"known_hosts line {number} cannot be read: {exc}") from None
        if entry is None:
            raise ValueError(f"known_hosts line {number} is not a host key line: {line!r}")
        entries.append(entry)
    return entries


def _fast_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    # SFTP requests are small writes: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
    # stall each round of reads by up to 40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(
        sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE, **kwargs
    )
    options = transport.get_security_options()
    available = tuple(c for c in PREFERRED_CIPHERS if c in options.ciphers)
    options.ciphers = available + tuple(c for c in options.ciphers if c not in available)
    return transport


class _BytearrayPipe(paramiko.buffered_pipe.BufferedPipe):
    """paramiko's channel buffer, on a bytearray instead of an array of bytes.

    paramiko takes every SFTP reply out of the front of this buffer; an ``array`` shifts all
    the bytes behind on each take, a ``bytearray`` only moves its start. With many reads in
    flight the buffer holds megabytes, and that shifting was most of a download's time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()  # type: ignore[assignment]

    def _buffer_frombytes(self, data: bytes) -> None:
        self._buffer += data  # type: ignore[operator]

    def _buffer_tobytes(self, limit: int | None = None) -> bytes:
        return bytes(memoryview(self._buffer)[:limit])  # type: ignore[arg-type]


def _open_sftp(transport: paramiko.Transport) -> paramiko.SFTPClient:
    channel = transport.open_session(window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE)
    channel.in_buffer = _BytearrayPipe()
    channel.invoke_subsystem("sftp")
    return paramiko.SFTPClient(channel)


class SftpClient:
    """An open SFTP session: list, stat, download, upload and move, safely."""

    def __init__(self, sftp: paramiko.SFTPClient) -> None:
        self._sftp = sftp

    def list(self, folder: str) -> list[RemoteFile]:
        """The regular files in ``folder`` (not folders, links or devices)."""
        files = []
        for attributes in self._sftp.listdir_attr(folder):
            if attributes.st_mode is not None and not stat.S_ISREG(attributes.st_mode):
                continue
            files.append(
                RemoteFile(
                    name=attributes.filename,
                    path=posixpath.join(folder, attributes.filename),
                    size=int(attributes.st_size or 0),
                    mtime=int(attributes.st_mtime or 0),
                )
            )
        return sorted(files, key=lambda f: (f.mtime, f.name))

    def stat(self, path: str) -> RemoteFile | None:
        """The file at ``path``, or None if there is none."""
        try:
            attributes = self._sftp.stat(path)
        except FileNotFoundError:
            return None
        return RemoteFile(
            name=posixpath.basename(path),
            path=path,
            size=int(attributes.st_size or 0),
            mtime=int(attributes.st_mtime or 0),
        )

    def download(self, remote: RemoteFile, folder: Path) -> Download:
        """Fetch ``remote`` into ``folder`` under its own (checked) name, all or nothing.

        The bytes land in a temporary file and are hashed on the way; only when the size
        matches what the server reports is the file renamed into place.
        """
        name = check_remote_name(remote.name)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        partial = folder / f".{name}.{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        try:
            with self._sftp.open(remote.path, "rb") as source, partial.open("wb") as sink:
                size = source.stat().st_size or 0
                source.prefetch(size, PREFETCH_REQUESTS)
                _copy(source, sink, digest)
                received = sink.tell()
            if received != size:
                raise SftpError(
                    f"{remote.path}: received {received:,} bytes of {size:,}; the file changed "
                    f"or the connection dropped during the download"
                )
            partial.replace(target)
        finally:
            with suppress(FileNotFoundError):
                partial.unlink()
        return Download(path=target, size=received, sha256=digest.hexdigest())

    def upload(self, local: Path, folder: str, name: str) -> str:
        """Put ``local`` into ``folder`` as ``name``: a temporary name first, then a rename."""
        target = posixpath.join(folder, check_remote_name(name))
        partial = posixpath.join(folder, f".{name}.{uuid.uuid4().hex}.part")
        try:
            self._sftp.put(str(local), partial, confirm=True)
            self._sftp.posix_rename(partial, target)
        except BaseException:
            with suppress(OSError):
                self._sftp.remove(partial)
            raise
        return target

    def move(self, path: str, folder: str, name: str) -> str:
        """Move the remote file ``path`` into ``folder`` as ``name``."""
        target = posixpath.join(folder, check_remote_name(name))
        self._sftp.posix_rename(path, target)
        return target

    def remove(self, path: str) -> None:
        self._sftp.remove(path)

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` if it does not exist (its parent must)."""
        try:
            self._sftp.stat(folder)
        except FileNotFoundError:
            self._sftp.mkdir(folder)


def _copy(source: paramiko.SFTPFile, sink: BinaryIO, digest: Any) -> None:
    while chunk := source.read(1024 * 1024):
        digest.update(chunk)
        sink.write(chunk)
