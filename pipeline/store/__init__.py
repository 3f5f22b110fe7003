"""The ClickHouse store port: one small interface, two adapters sharing the same SQL.

* :class:`pipeline.store.embedded.EmbeddedStore`: chdb, in-process, on ``clickhouse_data_dir``
  (the default when no server URL is set). One process owns a data directory.
* :class:`pipeline.store.server.ServerStore`: a ClickHouse server through clickhouse-connect.
* :class:`pipeline.store.relay.RelayStore`: an embedded store owned by another process, through
  ``python -m pipeline.store.relay`` (``clickhouse_url`` = ``relay://HOST:PORT``).

Both adapters send rows as JSONCompactColumns (JSONEachRow for rows with differing keys) and
read results as typed JSONCompact through
:mod:`pipeline.store.codec`, so ``Decimal`` stays ``Decimal`` and date-times come back
UTC-aware whichever engine answers. Parameters use ClickHouse's server-side ``{name:Type}``
placeholders in both (``SELECT ... WHERE tenant = {tenant:String}``).

All calls are blocking: asyncio callers run them in a thread executor. Every engine failure
surfaces as :class:`pipeline.errors.StoreError` with ``sql`` and ``engine`` fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pipeline.settings import Settings

__all__ = ["Store", "open_store"]


@runtime_checkable
class Store(Protocol):
    """What the pipeline needs from ClickHouse. Implementations are safe to share across threads."""

    @property
    def engine(self) -> str:
        """``"chdb"``, ``"server"`` or ``"relay"``: for messages and metrics, not to branch SQL."""
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
    """The server adapter when ``settings.clickhouse_url`` is set, else the embedded one.

    A ``relay://HOST:PORT`` URL selects the relay client (the embedded store of another process).
    """
    if settings.clickhouse_url is not None:
        url = settings.clickhouse_url.get_secret_value()
        if url.lower().startswith("relay://"):
            from pipeline.store.relay import RelayStore

            return RelayStore.connect(url)
        from pipeline.store.server import ServerStore

        return ServerStore.connect(url)
    from pipeline.store.embedded import EmbeddedStore

    return EmbeddedStore.open(settings.clickhouse_data_dir)
