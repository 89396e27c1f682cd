from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(autouse=True)
def supplyline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own SUPPLYLINE_HOME."""
    from supplyline.settings import get_settings

    home = tmp_path / "home"
    monkeypatch.setenv("SUPPLYLINE_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One ephemeral Prefect API for the whole session (it takes a while to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# --- databases ------------------------------------------------------------------------------

POSTGRES_ADMIN_URL = os.environ.get(
    "SUPPLYLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _postgres_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


def _postgres_url(database: str) -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database that each test's database is copied from."""
    from models.db import engine_for, upgrade

    name = f"supplyline_test_template_{uuid.uuid4().hex[:10]}"
    _postgres_admin(f"CREATE DATABASE {name}")
    engine = engine_for(_postgres_url(name))
    upgrade(engine)
    engine.dispose()
    engine_for.cache_clear()
    yield name
    _postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, supplyline_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """SUPPLYLINE_DATABASE_URL for one test: a new SQLite file, or a new PostgreSQL database."""
    from models.db import engine_for
    from supplyline.settings import get_settings

    name = None
    if request.param == "sqlite":
        supplyline_home.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{supplyline_home / 'test.db'}"
    else:
        template = request.getfixturevalue("postgres_template")
        name = f"supplyline_test_{uuid.uuid4().hex[:12]}"
        _postgres_admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        url = _postgres_url(name)
    monkeypatch.setenv("SUPPLYLINE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    engine_for(url).dispose()
    engine_for.cache_clear()
    if name:
        _postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- SFTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sshd() -> Iterator[object]:
    """A real OpenSSH sshd on a loopback port, for the whole session."""
    from sandbox.openssh import OpenSshServer, OpenSshUnavailable

    try:
        server = OpenSshServer()
    except OpenSshUnavailable as exc:
        pytest.skip(f"no OpenSSH server for the SFTP tests: {exc}")
    with server:
        yield server
