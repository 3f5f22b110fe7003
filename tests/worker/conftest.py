"""Fixtures of the worker tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.store import Store
from tests.worker.support import Stack, database_for


@pytest.fixture
def stack(
    kafka_bootstrap: str, clickhouse_url: str, store: Store, unique_name: str, tmp_path: Path
) -> Iterator[Stack]:
    """Workers and the test share the run's ClickHouse server, in a database of this test."""
    stack = Stack(kafka_bootstrap, unique_name, clickhouse_url, database_for(unique_name), tmp_path)
    try:
        yield stack
    finally:
        store.command(f"DROP DATABASE IF EXISTS {stack.database}")
