"""Pytest plugin: the ClickHouse engine for the test run (wired in with ``pytest_plugins``).

The engine is picked once per test process, in this order:

(a) ``PIPELINE_CLICKHOUSE_URL`` is set: that server, through the server adapter;
(b) a Docker engine answers: a throwaway ``clickhouse/clickhouse-server`` container
    (testcontainers), through the server adapter;
(c) otherwise: embedded chdb in a session temp directory.

chdb serves one data directory per process (a different directory cannot be opened while one
is open), so the whole pytest process shares one session-scoped ``store`` and tests isolate
themselves by database name: ``fresh_database`` gives each test its own migrated database.
Tests must not open an embedded store on another directory in-process; code under test that
calls ``open_store`` should be given ``clickhouse_settings`` (same directory: it joins the
open engine). A subprocess cannot open the embedded directory while this process holds it.

Fixtures: ``clickhouse_settings`` (session: Settings pointing at the chosen engine), ``store``
(session: the Store), ``fresh_database`` (function: ``(store, database_name)``, migrated, dropped
afterwards), ``embedded_store`` (session: an EmbeddedStore, the same object as ``store`` in
case (c)), ``server_store`` (session: a ServerStore; in case (c) a clickhouse-connect client on
the embedded engine, which exercises the server adapter's code without an HTTP server).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import Settings, load_settings
from pipeline.store import Store, open_store
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.migrate import migrate
from pipeline.store.server import ServerStore

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
def clickhouse_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose ClickHouse target is this test run's engine (see module docstring)."""
    from_env = load_settings()
    if from_env.clickhouse_url is not None:
        yield from_env
        return
    if _docker_available():
        container, url = _start_container()
        try:
            yield Settings(clickhouse_url=url)
        finally:
            container.stop()  # type: ignore[attr-defined]
        return
    data_dir = tmp_path_factory.mktemp("clickhouse")
    yield Settings(clickhouse_url=None, clickhouse_data_dir=data_dir)


@pytest.fixture(scope="session")
def store(clickhouse_settings: Settings) -> Iterator[Store]:
    """The test process's one Store (server or embedded)."""
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


@pytest.fixture(scope="session")
def embedded_store(
    store: Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStore]:
    """An embedded store: ``store`` itself when the run is embedded, else one in a temp dir."""
    if isinstance(store, EmbeddedStore):
        yield store
        return
    opened = EmbeddedStore.open(Path(tmp_path_factory.mktemp("chdb")))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="session")
def server_store(store: Store, request: pytest.FixtureRequest) -> Iterator[ServerStore]:
    """A server adapter: ``store`` when the run has a server, else one on the embedded engine."""
    if isinstance(store, ServerStore):
        yield store
        return
    import clickhouse_connect

    embedded_store: EmbeddedStore = request.getfixturevalue("embedded_store")

    client = clickhouse_connect.get_client(interface="chdb", path=str(embedded_store.path))
    adapter = ServerStore(client, target="clickhouse-connect on the embedded engine")
    try:
        yield adapter
    finally:
        adapter.close()
