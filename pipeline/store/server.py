"""The ClickHouse store: clickhouse-connect over ClickHouse's own HTTP interface.

Every process reaches ClickHouse this one way: a server or cluster in production, the local
server of ``python -m pipeline clickhouse start`` in development and tests. Reads go through
``raw_query`` as ``JSONCompact`` and inserts through ``raw_insert`` as ``JSONCompactColumns``,
both encoded and decoded by :mod:`pipeline.store.codec`, so ``Decimal`` stays ``Decimal`` and
date-times come back UTC-aware. Parameters are bound server-side (``{name:Type}``).

Why JSONCompactColumns and not clickhouse-connect's native column insert: on the worker's
20,000-event batches against the local server the native insert cost the client about twice the
CPU per event (it serialises every value in Python), and the client is the worker's busy thread;
the server's extra parsing runs in its own process (measured in docs/benchmarks.md).

The client is created without an HTTP session id: ClickHouse locks a session to one query at a
time, and this store is shared across threads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from pipeline.errors import ConfigError, StoreError
from pipeline.store import codec

ENGINE = "server"
URL_SETTING = "PIPELINE_CLICKHOUSE_URL"
#: ClickHouse's error code for a refused user or password
AUTHENTICATION_FAILED = 516
CONNECT_TIMEOUT_S = 10
SEND_RECEIVE_TIMEOUT_S = 300


@dataclass(frozen=True)
class ServerAddress:
    """A parsed ``http(s)://user:password@host:port[/database]``; ``redacted`` is safe to print."""

    secure: bool
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def redacted(self) -> str:
        scheme = "https" if self.secure else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = f"/{self.database}" if self.database else ""
        return f"{scheme}://{host}:{self.port}{path}"


def parse_url(url: str) -> ServerAddress:
    """Split a ClickHouse URL without ever putting its password in an error.

    The user information ends at the *last* ``@`` before the host, so a password holding ``@``,
    ``/``, ``?`` or ``#`` still parses (percent-encoding it, e.g. ``%2F``, is the standard way
    and is decoded). Errors name only the scheme or the host part.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        raise ConfigError(
            f"{URL_SETTING} must look like http(s)://user:password@host:port "
            f"(ClickHouse's HTTP interface); it does not start with http:// or https://",
            setting=URL_SETTING,
        )
    userinfo, _at, location = rest.rpartition("@")
    hostport, _slash, path = location.partition("/")
    hostport = hostport.split("?", 1)[0].split("#", 1)[0]
    database = unquote(path.split("?", 1)[0].split("#", 1)[0].strip("/"))
    if hostport.startswith("["):
        host, _close, port_text = hostport[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _colon, port_text = hostport.partition(":")
    secure = scheme.lower() == "https"
    if not host:
        raise ConfigError(f"{URL_SETTING} names no host", setting=URL_SETTING)
    if port_text and not port_text.isdigit():
        raise ConfigError(
            f"{URL_SETTING}: the port after host {host!r} is not a number",
            setting=URL_SETTING,
        )
    port = int(port_text) if port_text else (8443 if secure else 8123)
    user, _colon, password = userinfo.partition(":")
    return ServerAddress(
        secure=secure,
        host=host,
        port=port,
        user=unquote(user) or "default",
        password=unquote(password),
        database=database,
    )


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` without user or password, for messages."""
    try:
        return parse_url(url).redacted
    except ConfigError:
        return "(an unparsable ClickHouse URL)"


_CODE = re.compile(r"\bcode: (\d+)", re.IGNORECASE)


def error_code(error: BaseException) -> int | None:
    """ClickHouse's numeric error code of a client error, None when it has none (connection
    refused or reset, timeouts). clickhouse-connect sets ``code`` on its errors; older
    versions only say ``code: NNN`` in the message."""
    code = getattr(error, "code", None)
    if isinstance(code, int):
        return code
    found = _CODE.search(str(error))
    return int(found.group(1)) if found else None


def _without(secret: str, text: str) -> str:
    return text.replace(secret, "***") if secret else text


class ServerStore:
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
        """Connect to ``http(s)://user:password@host:port``; fails fast if it does not answer
        or refuses the credentials (the message names the server, never the password)."""
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import DatabaseError

        address = parse_url(url)
        target = f"the ClickHouse server at {address.redacted}"
        try:
            client = clickhouse_connect.get_client(
                host=address.host,
                port=address.port,
                username=address.user,
                password=address.password,
                database=address.database or None,
                secure=address.secure,
                autogenerate_session_id=False,
                compress="lz4",
                connect_timeout=CONNECT_TIMEOUT_S,
                send_receive_timeout=SEND_RECEIVE_TIMEOUT_S,
            )
        except Exception as error:
            detail = _without(address.password, str(error))
            if isinstance(error, DatabaseError) and f"code: {AUTHENTICATION_FAILED}" in detail:
                raise StoreError(
                    f"{target} refused user {address.user!r}: the password is wrong or the user "
                    f"does not exist there. Check the user and password in {URL_SETTING}",
                    engine=ENGINE,
                    target=address.redacted,
                    user=address.user,
                    code=AUTHENTICATION_FAILED,
                    sql=None,
                ) from None
            raise StoreError(
                f"cannot connect to {target}: {detail}. Check {URL_SETTING} "
                "(http(s)://user:password@host:port) and that the server is up",
                engine=ENGINE,
                target=address.redacted,
                sql=None,
            ) from None
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
            # ``code``: ClickHouse's error code, when the server gave one (the worker's sink
            # tells a refused row from an outage by it: pipeline/worker/poison.py)
            code = error_code(error)
            raise StoreError(
                f"{self.target} failed: {error}",
                engine=ENGINE,
                sql=codec.excerpt(sql),
                **({} if code is None else {"code": code}),
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

    def insert_rows(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        if rows:
            self._insert(codec.plan_insert(table, rows, dedup_token, engine=ENGINE))

    def insert_columns(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        if rows:
            plan = codec.plan_columns_insert(table, columns, rows, dedup_token, engine=ENGINE)
            self._insert(plan)

    def _insert(self, plan: codec.InsertPlan) -> None:
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
