"""The ClickHouse store port: one small interface, one adapter.

:class:`pipeline.store.server.ServerStore` reaches ClickHouse through its own HTTP interface
with clickhouse-connect: a production server or cluster, or in development and tests the local
server that ``python -m pipeline clickhouse start`` runs (``pipeline/devstack``). Every process
uses it; there is no in-process engine and no other path.

Rows go in as JSONCompactColumns (JSONEachRow for rows with differing keys) and results come
back as typed JSONCompact through :mod:`pipeline.store.codec`, so ``Decimal`` stays ``Decimal``
and date-times come back UTC-aware. Parameters use ClickHouse's server-side ``{name:Type}``
placeholders (``SELECT ... WHERE tenant = {tenant:String}``).

All calls are blocking: asyncio callers run them in a thread executor. Every failure surfaces as
:class:`pipeline.errors.StoreError` with ``sql`` and ``engine`` fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.settings import Settings

__all__ = ["Store", "open_store"]


@runtime_checkable
class Store(Protocol):
    """What the pipeline needs from ClickHouse. Implementations are safe to share across threads."""

    @property
    def engine(self) -> str:
        """What answers (``"server"``; test doubles name themselves): for messages only."""
        ...

    def command(self, sql: str) -> None:
        """Run one statement that returns no rows (DDL, ``INSERT ... SELECT``, ``OPTIMIZE``)."""
        ...

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        """Run a ``SELECT``; rows as dicts in column order. ``params`` fill ``{name:Type}``."""
        ...

    def insert_rows(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """Insert ``rows`` (as one block) into ``table`` (``db.table``); missing keys take defaults.

        ``dedup_token`` sets ``insert_deduplication_token``: a retried insert with the same token
        is dropped by the engine. It only acts on Replicated*MergeTree tables, or on plain
        MergeTree-family tables created with ``SETTINGS non_replicated_deduplication_window = N``
        (N > 0); elsewhere it is ignored. Idempotence by key (ReplacingMergeTree) comes first.
        """
        ...

    def insert_columns(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """:meth:`insert_rows` for rows given as value lists in ``columns`` order (no dict per
        row: the stream worker's inserts)."""
        ...

    def close(self) -> None:
        """Release the engine or connection. Idempotent."""
        ...


def open_store(settings: Settings) -> Store:
    """The store on the server named by ``PIPELINE_CLICKHOUSE_URL``.

    Production never starts a server by itself: with no URL this is a :class:`ConfigError`
    that names the setting and the local launcher.
    """
    if settings.clickhouse_url is None:
        raise ConfigError(
            "PIPELINE_CLICKHOUSE_URL is not set: name the ClickHouse server, "
            "http(s)://user:password@host:port. For a local one, run "
            "`python -m pipeline clickhouse start`: it prints the line to export",
            setting="PIPELINE_CLICKHOUSE_URL",
        )
    from pipeline.store.server import ServerStore

    return ServerStore.connect(settings.clickhouse_url.get_secret_value())
