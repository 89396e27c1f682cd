"""The database engine, and bringing a database's schema up to date with Alembic."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import Session

from supplyline.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_UPGRADE_LOCK = threading.Lock()
T = TypeVar("T")
SQLITE_POOL_SIZE = 40
# Any fixed number: PostgreSQL sessions migrating the same database take turns on it.
_PG_MIGRATION_LOCK_ID = 0x5375_7070


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _on_sqlite_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Transactions are begun by SQLAlchemy (below), not by the sqlite3 module, which would
    # leave DDL such as a load's temporary tables outside them.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL: readers go on reading while a file loads. FULL: a commit is on disk before it
    # returns (with NORMAL the last commits may roll back after a power cut, while the
    # supplier's file is already archived); it costs one fsync of the log per commit.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _begin_sqlite(connection: sa.Connection) -> None:
    # A deferred transaction that reads, then writes, fails at once ("database is locked") when
    # another writer got in between: it cannot wait for the lock. Sessions that read before
    # they write begin IMMEDIATE (session_scope(immediate=True)) and wait their turn instead.
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A connection kept per thread that may use one (the intake API runs up to 40 requests
        # at once): one opened and closed per request costs its PRAGMAs and a WAL check each
        # time (13% of the API's busy time with the default pool of 5 + 10 overflow).
        engine = sa.create_engine(
            url, connect_args={"timeout": 60}, pool_size=SQLITE_POOL_SIZE, max_overflow=10
        )
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        sa.event.listen(engine, "begin", _begin_sqlite)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``: statements with one parameter per item stay under the
    databases' limits (SQLite's 32,766 variables, PostgreSQL's 65,535)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def get_engine() -> Engine:
    """The engine of ``SUPPLYLINE_DATABASE_URL``, with its schema brought up to date."""
    engine = engine_for(get_settings().resolved_database_url)
    ensure_schema(engine)
    return engine


@lru_cache(maxsize=8)
def _sqlite_writers(url: str) -> threading.RLock:
    return threading.RLock()


@contextmanager
def session_scope(*, immediate: bool = False) -> Iterator[Session]:
    """A session on the current database that commits on success and rolls back on error.

    ``immediate``: the session reads, then writes, while others may write too: on SQLite it
    takes the write lock when it begins, waiting for it (PostgreSQL needs nothing of the kind).
    Threads of one process queue for it on a lock of their own first: SQLite's busy handler
    polls with sleeps of up to 100 ms, which leaves the database idle while writers sleep
    (the intake API's 16 threads spent most of their time there); other processes still
    wait in the busy handler.
    """
    engine = get_engine()
    if immediate and engine.dialect.name == "sqlite":
        engine = engine.execution_options(sqlite_immediate=True)  # type: ignore[assignment]
        writers = _sqlite_writers(str(engine.url))
    else:
        writers = nullcontext()
    with writers, Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@dataclass(eq=False)
class _Write(Generic[T]):
    work: Callable[[Session], T]
    done: bool = False
    result: T | None = None
    error: Exception | None = None


class GroupCommit:
    """Writes of concurrent threads, committed together: one transaction (and one fsync) for
    all the writes that queued up while the previous one committed.

    Each write runs in a savepoint of its own, so one that raises leaves the others in; its
    caller gets the exception. If the commit itself fails, every caller of that batch gets the
    error and nothing of the batch is stored. ``run`` returns only once the write is committed:
    an answer never promises what a crash could still lose. The thread that finds no commit
    in progress leads the next batch; the others wait for their result.
    """

    def __init__(self, max_batch: int = 100) -> None:
        self.max_batch = max_batch
        self._turn = threading.Condition()
        self._pending: list[_Write[Any]] = []
        self._leading = False

    def run(self, work: Callable[[Session], T]) -> T:
        write = _Write(work)
        with self._turn:
            self._pending.append(write)
        while True:
            with self._turn:
                while self._leading and not write.done:
                    self._turn.wait()
                if write.done:
                    if write.error is not None:
                        raise write.error
                    return write.result  # type: ignore[return-value]
                self._leading = True
                batch, self._pending = (
                    self._pending[: self.max_batch],
                    self._pending[self.max_batch :],
                )
            try:
                self._commit(batch)
            finally:
                with self._turn:
                    self._leading = False
                    for each in batch:
                        each.done = True
                    self._turn.notify_all()

    @staticmethod
    def _commit(batch: list[_Write[Any]]) -> None:
        try:
            with session_scope(immediate=True) as session:
                for write in batch:
                    try:
                        with session.begin_nested():
                            write.result = write.work(session)
                    except Exception as exc:  # handed to the caller of this write
                        write.error = exc
        except Exception as exc:  # the commit failed, so every write of it did
            for write in batch:
                write.result, write.error = None, exc


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


_up_to_date: set[str] = set()


def ensure_schema(engine: Engine) -> None:
    """Upgrade the database to the newest migration unless this process already saw it there."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _up_to_date:
        return
    with _UPGRADE_LOCK:
        if key not in _up_to_date:
            if current_revision(engine) != head_revision():
                upgrade(engine)
            _up_to_date.add(key)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (concurrent upgrades on PostgreSQL take turns)."""
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK_ID}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite gives timestamps back without their zone; Supplyline stores them in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
