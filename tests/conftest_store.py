"""Pytest plugin: the ClickHouse server for the test run (wired in with ``pytest_plugins``).

The server is picked once per test process, in this order (as Kafka is, tests/conftest_kafka.py):

(a) ``PIPELINE_CLICKHOUSE_URL`` is set: that server;
(b) a Docker engine answers: a throwaway ``clickhouse/clickhouse-server`` container
    (testcontainers);
(c) otherwise: the project's local server (``pipeline.devstack.clickhouse_launcher``, the path
    ``dev`` and ``python -m pipeline clickhouse start`` use), in a session temp directory, stopped
    at the end of the run.

Every test talks ClickHouse's own HTTP protocol through clickhouse-connect (``ServerStore``).
Tests isolate themselves by database name: ``fresh_database`` gives each test its own migrated
database. A test that must stop or kill a server starts its own (``ClickHouseLauncher`` on a
``tmp_path``), never the shared one.

Fixtures: ``clickhouse_url`` (session: the URL, a secret), ``clickhouse_settings`` (session:
Settings pointing at it), ``store`` (session: a ServerStore), ``fresh_database`` (function:
``(store, database_name)``, migrated, dropped afterwards).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from pipeline.devstack.clickhouse_launcher import ClickHouseLauncher
from pipeline.settings import Settings, load_settings
from pipeline.store import Store, open_store
from pipeline.store.migrate import migrate

CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"


def _docker_available() -> bool:
    """A Docker engine answers a ping (testcontainers' own client); never raises."""
    try:
        from testcontainers.core.docker_client import DockerClient

        return bool(DockerClient(timeout=5).client.ping())
    except Exception:
        return False


def _start_container() -> tuple[object, str]:
    """A ClickHouse server container and its HTTP URL (with credentials)."""
    try:
        from testcontainers.community.clickhouse import ClickHouseContainer
    except ImportError:  # older testcontainers layout
        from testcontainers.clickhouse import ClickHouseContainer

    container = ClickHouseContainer(CLICKHOUSE_IMAGE)
    container.start()
    host = container.get_container_host_ip()
    port = container.get_exposed_port(8123)
    return container, f"http://{container.username}:{container.password}@{host}:{port}"


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of this test run's ClickHouse server (see module docstring)."""
    from_env = load_settings()
    if from_env.clickhouse_url is not None:
        yield from_env.clickhouse_url.get_secret_value()
        return
    if _docker_available():
        container, url = _start_container()
        try:
            yield url
        finally:
            container.stop()  # type: ignore[attr-defined]
        return
    launcher = ClickHouseLauncher(tmp_path_factory.mktemp("clickhouse"), say=print)
    info = launcher.start()
    try:
        yield info.url
    finally:
        launcher.stop()


@pytest.fixture(scope="session")
def clickhouse_settings(clickhouse_url: str) -> Settings:
    """Settings whose ClickHouse target is this test run's server."""
    return Settings(clickhouse_url=SecretStr(clickhouse_url))


@pytest.fixture(scope="session")
def store(clickhouse_settings: Settings) -> Iterator[Store]:
    """The test process's one Store on the run's server."""
    opened = open_store(clickhouse_settings)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def fresh_database(store: Store) -> Iterator[tuple[Store, str]]:
    """A unique database, migrated to the current schema, dropped after the test."""
    database = f"test_{uuid.uuid4().hex[:16]}"
    migrate(store, database)
    try:
        yield store, database
    finally:
        store.command(f"DROP DATABASE IF EXISTS {database}")
