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
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import paramiko
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout
from paramiko.sftp import (
    CMD_DATA,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_READ,
    CMD_STATUS,
    SFTP_EOF,
)
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
# line speed on a long fat pipe (measured in bench/sftp_download.py). The packet size is the
# largest the server may send us: OpenSSH sends what it has ready, up to this, and each packet
# costs paramiko's Python about the same whatever its size (256 KiB rather than 32 KiB: about
# half the download's time, bench/README.md).
WINDOW_SIZE = 2**25
MAX_PACKET_SIZE = 2**18
# Each read asks for up to this much: as much as the server says it takes (OpenSSH: 255 KiB, in
# its limits@openssh.com extension), else the 32 KiB every server takes. Fewer, larger replies
# are fewer trips through paramiko's Python per byte.
READ_SIZE = 2**18
# Reads in flight: enough bytes to cover the round trip many times over, within the window.
IN_FLIGHT_BYTES = 2**24
MAX_IN_FLIGHT = 512
# AES-GCM needs no separate MAC pass; the CTR modes stay for servers without it.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)


class SftpError(RuntimeError):
    """An SFTP operation that failed for a reason worth telling the operator."""


class SftpRefused(SftpError):
    """The server's host key does not match the pinned one, or it refused the login: another
    try cannot fix it; the block's settings (or the supplier) must change."""


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
            raise SftpRefused(
                f"{self.address}: the server's host key has CHANGED ({exc.key.get_name()} "
                f"{exc.key.fingerprint}); refusing to connect. If the supplier confirms a new "
                f"key, update the block's known_hosts"
            ) from exc
        except paramiko.AuthenticationException as exc:
            ssh.close()
            way = "password" if self.password else "private key"
            raise SftpRefused(
                f"{self.address}: the server refused the login by {way} ({exc}). Check the user "
                f"name and the {way} with the supplier, then save the block again"
            ) from exc
        except paramiko.SSHException as exc:
            ssh.close()
            if "not found in known_hosts" in str(exc):
                raise SftpRefused(
                    f"{self.address}: the server's host key is not pinned in known_hosts; "
                    f"refusing to connect. Add its key (ssh-keyscan, checked with the supplier)"
                ) from exc
            raise
        except Exception:
            ssh.close()
            raise
        try:
            sftp = _open_sftp(ssh.get_transport())  # type: ignore[arg-type]
            sftp.get_channel().settimeout(self.operation_timeout)  # type: ignore[union-attr]
            sftp.use_server_limits()
            yield SftpClient(sftp)
        finally:
            ssh.close()

    @property
    def address(self) -> str:
        """Where messages say the server is: ``sftp://user@host:port`` (never a secret)."""
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
                    f"{self.address}: the private key is encrypted; set its passphrase"
                ) from None
            except (paramiko.SSHException, ValueError) as exc:
                problems.append(f"{key_class.__name__}: {exc}")
        raise SftpError(
            f"{self.address}: the private key cannot be read as Ed25519, ECDSA or RSA "
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


class _Chunks:
    """What a channel received and nobody has read yet: the packets' own bytes, in order."""

    __slots__ = ("parts", "size", "start")

    def __init__(self) -> None:
        self.parts: deque[bytes] = deque()
        self.start = 0  # how much of parts[0] was already read
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def take(self, limit: int) -> bytes:
        first, start = self.parts[0], self.start
        if len(first) - start > limit:
            self.start = start + limit
            out = first[start : start + limit]
        else:
            self.parts.popleft()
            self.start = 0
            out = first[start:] if start else first
        self.size -= len(out)
        return out

    def take_all(self) -> bytes:
        out = b"".join([self.parts[0][self.start :], *list(self.parts)[1:]]) if self.parts else b""
        self.parts.clear()
        self.start = self.size = 0
        return out


class _ChunkPipe(BufferedPipe):
    """paramiko's channel buffer, keeping each packet's bytes as they came.

    paramiko copies every packet into one growing array and copies each read back out of its
    front. This buffer appends the packet itself and hands it back whole when the reader asks
    for at least that much, so the data of a large SFTP reply is never copied here; a read may
    return less than asked (at most one packet), as a socket's may.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffer: _Chunks = _Chunks()  # type: ignore[assignment]

    def feed(self, data: bytes) -> None:
        with self._lock:
            if self._event is not None:
                self._event.set()
            if data:
                self._buffer.parts.append(bytes(data) if type(data) is not bytes else data)
                self._buffer.size += len(data)
            self._cv.notify_all()

    def read(self, nbytes: int, timeout: float | None = None) -> bytes:
        with self._lock:
            if not self._buffer.size:
                if self._closed:
                    return b""
                if timeout == 0.0:
                    raise PipeTimeout()
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._buffer.size and not self._closed:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise PipeTimeout()
                    self._cv.wait(left)
                if not self._buffer.size:
                    return b""
            out = self._buffer.take(nbytes)
            if not self._buffer.size and self._event is not None and not self._closed:
                self._event.clear()
            return out

    def empty(self) -> bytes:
        with self._lock:
            out = self._buffer.take_all()
            if self._event is not None and not self._closed:
                self._event.clear()
            return out


class _PipelinedSftp(paramiko.SFTPClient):
    """paramiko's SFTP client, plus a whole-file read pipelined the way OpenSSH's client does.

    paramiko's own prefetch sends its reads from a thread that polls every 10 ms, files each
    reply in a dict that every read scans, and joins reads into a ``bytes`` that is copied again
    with each piece. Here the reading thread keeps its reads in flight itself, and each reply's
    data goes to the writer in file order as it comes off the channel. It takes its request
    numbers from paramiko's own counter (``request_number`` under ``_lock``), so other requests
    on the session never share one; tests/test_sftp_block.py covers it against a real sshd.
    """

    read_size: int = paramiko.SFTPFile.MAX_REQUEST_SIZE

    def use_server_limits(self) -> None:
        """Read as much at a time as the server says it takes (limits@openssh.com)."""
        try:
            kind, reply = self._request(CMD_EXTENDED, "limits@openssh.com")
        except (OSError, paramiko.SFTPError):  # OSError: unsupported, or no answer in time
            return  # not offered: stay with what every server takes
        if kind != CMD_EXTENDED_REPLY or reply is None:
            return
        reply.get_int64()  # max-packet-length
        max_read = reply.get_int64()
        if max_read > 0:
            self.read_size = max(min(max_read, READ_SIZE), self.read_size)

    def read_file(self, handle: bytes, size: int, write: Callable[[bytes], object]) -> int:
        """Read the open file ``handle`` from its start to its end into ``write``, in order.

        Asks for ``size`` bytes and one read past them (to see the end of the file, or that it
        grew); replies may come out of order or short (the rest is asked for again, up to where
        an EOF said the file ends), and are put in order before ``write`` sees them. Returns how
        many bytes were written in order from the start: the caller compares with ``size``.
        """
        in_flight = max(16, min(MAX_IN_FLIGHT, IN_FLIGHT_BYTES // self.read_size))
        top_up = max(1, in_flight // 8)
        prefix = struct.pack(">I", len(handle)) + handle
        message_size = 1 + 4 + len(prefix) + 8 + 4
        asked: dict[int, tuple[int, int]] = {}  # request id: (offset, length)
        early: dict[int, list[bytes]] = {}  # offset: data that came before what precedes it
        to_ask = deque([(0, size + self.read_size)])  # (offset, length) not asked for yet
        written = 0
        end = size + self.read_size  # where the file ends, as far as the server has told

        def ask() -> None:
            requests = []
            with self._lock:
                while to_ask and len(asked) < in_flight:
                    offset, length = to_ask.popleft()
                    if offset >= end:
                        continue
                    piece = min(length, self.read_size)
                    if length > piece:
                        to_ask.appendleft((offset + piece, length - piece))
                    number = self.request_number
                    self.request_number += 1
                    asked[number] = (offset, piece)
                    requests.append(
                        struct.pack(">IBI", message_size, CMD_READ, number)
                        + prefix
                        + struct.pack(">QI", offset, piece)
                    )
            if requests:
                self.sock.sendall(b"".join(requests))

        ask()
        while asked:
            length, kind, number = struct.unpack(">IBI", self._receive(9))
            if number not in asked:  # the late answer to something given up on: skip it
                self._receive_into(length - 5, _discard)
                continue
            offset, piece = asked.pop(number)
            if kind == CMD_DATA:
                (count,) = struct.unpack(">I", self._receive(4))
                if count > piece or length != 9 + count:
                    raise SftpError(f"the server sent {count:,} bytes for a read of {piece:,}")
                if offset == written:
                    self._receive_into(count, write)
                    written += count
                    while written in early:
                        for data in early.pop(written):
                            write(data)
                            written += len(data)
                else:
                    parts: list[bytes] = []
                    self._receive_into(count, parts.append)
                    early[offset] = parts
                if count == 0:
                    end = min(end, offset)
                elif count < piece:  # a short read: ask for the rest (an EOF if at the end)
                    to_ask.appendleft((offset + count, piece - count))
            elif kind == CMD_STATUS:
                status = paramiko.Message(self._receive(length - 5))
                if status.get_int() != SFTP_EOF:
                    status.rewind()
                    self._convert_status(status)
                end = min(end, offset)
            else:
                raise SftpError(f"the server answered a read with message type {kind}")
            if len(asked) <= in_flight - top_up:
                ask()
        return written

    def _receive(self, n: int) -> bytes:
        data = self.sock.recv(n)
        if len(data) == n:
            return data
        parts = [data]
        self._receive_into(n - len(data), parts.append)
        return b"".join(parts)

    def _receive_into(self, n: int, write: Callable[[bytes], object]) -> None:
        while n > 0:
            data = self.sock.recv(n)
            if not data:
                raise SftpError("the server closed the connection in the middle of a reply")
            write(data)
            n -= len(data)


def _discard(_data: bytes) -> None:
    pass


def _open_sftp(transport: paramiko.Transport) -> _PipelinedSftp:
    channel = transport.open_session(window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE)
    channel.in_buffer = _ChunkPipe()
    channel.invoke_subsystem("sftp")
    return _PipelinedSftp(channel)


class SftpClient:
    """An open SFTP session: list, stat, download, upload and move, safely."""

    def __init__(self, sftp: _PipelinedSftp) -> None:
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

                def take(data: bytes) -> None:
                    digest.update(data)
                    sink.write(data)

                received = self._sftp.read_file(source.handle, size, take)
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
