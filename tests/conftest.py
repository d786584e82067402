"""Databases for the ledger tests: a fresh SQLite file, and a fresh database on the real
PostgreSQL server (127.0.0.1:5432, or $TOKENMALL_TEST_PG). When CI=true an unreachable server
fails the PostgreSQL tests instead of skipping them."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

# The page tests' fixtures: a server with staff accounts, Chromium, watched visits.
pytest_plugins = ["tests.support.web"]

PG_ADMIN_URL = os.environ.get("TOKENMALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {PG_ADMIN_URL} is needed for this test: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"tokenmall_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as error:
        _pg_unavailable(str(error).strip().splitlines()[0])
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on both backends."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url
