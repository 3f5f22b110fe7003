"""ClickHouse server adapter (clickhouse-connect over HTTP): thin on purpose.

It speaks the same wire format as the embedded adapter (:mod:`pipeline.store.codec`):
``raw_query`` with ``JSONCompact`` and ``raw_insert`` with ``JSONEachRow``, with the same
settings, so both return identical Python values for the same SQL. Parameters are bound
server-side (``{name:Type}``) by clickhouse-connect after :func:`codec.normalize_param`.

The client is created without an HTTP session id: ClickHouse locks a session to one query at a
time, and this store is shared across threads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import StoreError
from pipeline.store import codec
from pipeline.store.inserts import PlannedInserts

ENGINE = "server"


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` without user or password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class ServerStore(PlannedInserts):
    """A :class:`pipeline.store.Store` on a ClickHouse server (a clickhouse-connect client)."""

    ENGINE = ENGINE

    @property
    def engine(self) -> str:
        return ENGINE

    def __init__(self, client: Any, *, target: str = "the ClickHouse server") -> None:
        self._client: Any = client
        self.target = target

    @classmethod
    def connect(cls, url: str) -> ServerStore:
        """Connect to ``http(s)://user:password@host:port``; fails fast if it does not answer."""
        import clickhouse_connect

        address = redact_url(url)
        target = f"the ClickHouse server at {address}"
        try:
            client = clickhouse_connect.get_client(
                dsn=url, autogenerate_session_id=False, compress="lz4"
            )
        except Exception as error:
            raise StoreError(
                f"cannot connect to {target}: {error}. Check "
                "PIPELINE_CLICKHOUSE_URL (http(s)://user:password@host:port) and that the "
                "server is up",
                engine=ENGINE,
                target=address,
                sql=None,
            ) from error
        return cls(client, target=target)

    @contextmanager
    def _client_for(self, sql: str) -> Iterator[Any]:
        client = self._client
        if client is None:
            raise StoreError(
                f"the store for {self.target} is closed", engine=ENGINE, sql=codec.excerpt(sql)
            )
        try:
            yield client
        except StoreError:
            raise
        except Exception as error:
            raise StoreError(
                f"{self.target} failed: {error}",
                engine=ENGINE,
                sql=codec.excerpt(sql),
            ) from error

    def command(self, sql: str) -> None:
        with self._client_for(sql) as client:
            client.command(sql)

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        bound = codec.bind_params(params, codec.normalize_param, sql=sql, engine=ENGINE)
        with self._client_for(sql) as client:
            payload = client.raw_query(
                sql,
                parameters=bound or None,
                settings=dict(codec.RESULT_SETTINGS),
                fmt=codec.RESULT_FORMAT,
            )
            return codec.decode_result(payload)

    def _insert(self, table: str, plan: codec.InsertPlan) -> None:
        with self._client_for(plan.statement) as client:
            client.raw_insert(
                plan.table_sql,
                column_names=list(plan.columns) or None,
                insert_block=plan.payload,
                settings=dict(plan.settings),
                fmt=plan.format,
            )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
