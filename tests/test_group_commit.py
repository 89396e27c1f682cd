"""Writes of concurrent threads committed together (models.db.GroupCommit), on SQLite and
PostgreSQL: each write is in or out on its own, and a caller hears back only once committed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from models.catalog import utcnow
from models.db import GroupCommit, get_engine, session_scope
from models.relationships import Retailer

pytestmark = pytest.mark.usefixtures("database")


def add_retailer(code: str, *, fail: bool = False) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        session.execute(
            sa.insert(Retailer).values(code=code, name=code.title(), created_at=utcnow())
        )
        if fail:
            raise ValueError(f"{code} changed its mind")
        return code

    return work


def queued_behind_a_held_commit(
    group: GroupCommit, pool: ThreadPoolExecutor, writes: list[Callable[[Session], object]]
) -> tuple[Future[object], list[Future[object]]]:
    """Hold the group's commit open with a first write (retailer ``first``), queue ``writes``
    behind it, then let the commit go: the queued writes share the next commit."""
    first_started, release_first = threading.Event(), threading.Event()

    def slow_first(session: Session) -> str:
        first_started.set()
        release_first.wait(10)
        return add_retailer("first")(session)

    first = pool.submit(group.run, slow_first)
    assert first_started.wait(10)
    queued = [pool.submit(group.run, write) for write in writes]
    while len(group._pending) < len(writes):  # every one waits behind the first commit
        threading.Event().wait(0.01)
    release_first.set()
    return first, queued


def stored_codes() -> set[str]:
    with session_scope() as session:
        return set(session.execute(sa.select(Retailer.code)).scalars())


def test_writes_queued_behind_a_commit_share_the_next_one() -> None:
    group = GroupCommit()
    commits: list[int] = []
    sa.event.listen(get_engine(), "commit", lambda _conn: commits.append(1))
    with ThreadPoolExecutor(8) as pool:
        first, queued = queued_behind_a_held_commit(
            group, pool, [add_retailer(f"r{n}", fail=n == 3) for n in range(6)]
        )
        assert first.result(10) == "first"
        results = []
        for n, future in enumerate(queued):
            if n == 3:
                with pytest.raises(ValueError, match="r3 changed its mind"):
                    future.result(10)
            else:
                results.append(future.result(10))
    assert results == ["r0", "r1", "r2", "r4", "r5"]
    # Two commits rather than seven; the failed write left nothing, the others are stored.
    assert len(commits) == 2
    assert stored_codes() == {"first", "r0", "r1", "r2", "r4", "r5"}


def test_a_write_is_committed_when_run_returns() -> None:
    group = GroupCommit()
    with ThreadPoolExecutor(4) as pool:
        for code in pool.map(lambda n: group.run(add_retailer(f"c{n}")), range(20)):
            with session_scope() as session:  # another connection sees it at once
                assert session.execute(
                    sa.select(Retailer.id).where(Retailer.code == code)
                ).scalar_one()
    assert stored_codes() == {f"c{n}" for n in range(20)}


def break_the_commit(session: Session) -> None:
    """Leave a violation that the database finds only at COMMIT (a deferred check)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        connection.exec_driver_sql(
            "INSERT INTO lookup_entry (table_id, key, value) VALUES (999999, 'k', 'v')"
        )
    else:
        connection.exec_driver_sql(
            "CREATE TEMPORARY TABLE once (n int UNIQUE DEFERRABLE INITIALLY DEFERRED)"
        )
        connection.exec_driver_sql("INSERT INTO once VALUES (1), (1)")


def test_a_failed_commit_fails_every_write_of_its_batch() -> None:
    group = GroupCommit()
    with ThreadPoolExecutor(4) as pool:
        first, batch = queued_behind_a_held_commit(
            group, pool, [add_retailer("kept-out"), break_the_commit]
        )
        assert first.result(10) == "first"
        for future in batch:
            with pytest.raises(sa.exc.IntegrityError):
                future.result(10)
    assert stored_codes() == {"first"}
    assert group.run(add_retailer("after")) == "after"
    assert stored_codes() == {"first", "after"}
