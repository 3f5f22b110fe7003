"""Store relay: one process owns the embedded ClickHouse (chdb) and serves it to the others.

chdb opens a data directory in one process only. The relay is that process:
``python -m pipeline.store.relay --data-dir DIR [--host 127.0.0.1] [--port 0]`` opens
:class:`EmbeddedStore` on ``DIR``, serves it over HTTP and prints
``relay listening on http://HOST:PORT (data dir DIR)`` once ready. Other processes (stream
workers, the ``invoice``/``finance`` CLI) set ``PIPELINE_CLICKHOUSE_URL=relay://HOST:PORT`` and
get a :class:`RelayStore`.

There is no authentication: anyone who can reach the port can run any SQL. The relay therefore
listens on loopback only, unless ``--allow-remote`` is given explicitly.

Wire protocol (HTTP/1.1, keep-alive): ``GET /ping``; ``POST /command`` (body: SQL);
``POST /query`` (body: JSON ``{sql, params}`` with params already rendered by
:func:`codec.param_text`; answer: the engine's raw ``JSONCompact`` payload, decoded by the
client with :func:`codec.decode_result`, so values are exactly what ``EmbeddedStore.query``
returns in-process); ``POST /insert?table=..&columns=..&dedup_token=..`` (body:
JSONCompactColumns in that column order, or JSONEachRow without ``columns``, from
:func:`codec.plan_insert`). Failures answer 4xx/5xx with JSON ``{error, sql, fields}``, which
the client raises as :class:`StoreError` with the same message. SIGTERM/SIGINT: stop
accepting, let in-flight calls finish, close the store.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, cast
from urllib.parse import parse_qs, quote, urlsplit

import orjson

from pipeline.errors import ConfigError, PipelineError, StoreError
from pipeline.store import codec
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.inserts import PlannedInserts

ENGINE = "relay"
SCHEME = "relay"
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_TIMEOUT_S = 120.0

# --- server ----------------------------------------------------------------------------------


class _Relay:
    """The served store and the in-flight bookkeeping that lets shutdown drain calls."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self._state = threading.Condition()
        self._in_flight = 0
        self._stopping = False

    def begin(self) -> bool:
        with self._state:
            if self._stopping:
                return False
            self._in_flight += 1
            return True

    def end(self) -> None:
        with self._state:
            self._in_flight -= 1
            self._state.notify_all()

    def stop_and_drain(self) -> None:
        with self._state:
            self._stopping = True
            self._state.wait_for(lambda: self._in_flight == 0)

    # The engine calls. They use EmbeddedStore's session guard (its lock and error mapping)
    # directly, because the relay passes encoded payloads through without decoding them.

    def command(self, body: bytes, _: Mapping[str, list[str]]) -> bytes:
        self.store.command(body.decode())
        return b"{}"

    def query(self, body: bytes, _: Mapping[str, list[str]]) -> bytes:
        request = orjson.loads(body)
        sql: str = request["sql"]
        params: dict[str, str] = request.get("params") or {}
        with self.store._session(sql) as session:
            return bytes(session.query(sql, codec.RESULT_FORMAT, params=params).bytes())

    def insert(self, body: bytes, args: Mapping[str, list[str]]) -> bytes:
        table = args["table"][0]
        settings: dict[str, str | int] = dict(codec.INSERT_SETTINGS)
        if "dedup_token" in args:
            settings["insert_deduplication_token"] = args["dedup_token"][0]
        columns = codec.column_list(args["columns"][0].split(",")) if "columns" in args else ()
        plan = codec.InsertPlan(codec.qualified_table(table), settings, body, columns)
        with self.store._session(plan.statement) as session:
            inserter = session.send_insert(plan.statement, plan.format)
            try:
                inserter.append(plan.payload)
                inserter.finish()
            except BaseException:
                inserter.cancel()
                raise
        return b"{}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], relay: _Relay) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.relay = relay
        super().__init__(address, _Handler)


def _error_body(message: str, sql: str | None, fields: Mapping[str, Any]) -> bytes:
    return orjson.dumps({"error": message, "sql": sql, "fields": fields}, default=str)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per call would drown the worker's logs; errors travel to the client

    def _reply(self, status: int, body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        relay = cast(_Server, self.server).relay
        if urlsplit(self.path).path != "/ping":
            self._reply(404, _error_body(f"no such relay endpoint: GET {self.path}", None, {}))
            return
        status = {"status": "ok", "engine": relay.store.engine, "path": str(relay.store.path)}
        self._reply(200, orjson.dumps(status))

    def do_POST(self) -> None:
        relay = cast(_Server, self.server).relay
        target = urlsplit(self.path)
        routes = {"/command": relay.command, "/query": relay.query, "/insert": relay.insert}
        route = routes.get(target.path)
        length = self.headers.get("Content-Length")
        if route is None or length is None:
            problem = "Content-Length is required" if route else f"no endpoint {target.path}"
            self._reply(400, _error_body(f"bad relay request: {problem}", None, {}), close=True)
            return
        body = self.rfile.read(int(length))
        if not relay.begin():
            message = "the ClickHouse relay is shutting down"
            self._reply(503, _error_body(message, None, {}), close=True)
            return
        try:
            answer = route(body, parse_qs(target.query))
        except StoreError as error:
            fields = dict(error.fields)
            self._reply(500, _error_body(error.message, fields.pop("sql", None), fields))
        except (ValueError, KeyError, TypeError) as error:  # malformed request or table name
            self._reply(400, _error_body(f"bad relay request: {error!r}", None, {}))
        except Exception as error:
            self._reply(500, _error_body(f"the ClickHouse relay failed: {error!r}", None, {}))
        else:
            self._reply(200, answer)
        finally:
            relay.end()


def _check_host(host: str, allow_remote: bool) -> None:
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"the store relay has no authentication, so it listens on loopback only; {host!r} "
            "is not a loopback address. Use 127.0.0.1, or pass --allow-remote on a trusted "
            "network",
            host=host,
        )


def serve_relay(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ready: Callable[[int], None] | None = None,
    allow_remote: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Serve the embedded store on ``data_dir`` until SIGTERM/SIGINT (or ``stop`` is set).

    ``ready(port)`` is called once the socket listens. Signal handlers are installed only when
    called from the main thread. On stop: no new calls, in-flight calls finish, store closed.
    """
    _check_host(host, allow_remote)
    stop = stop or threading.Event()
    store = EmbeddedStore.open(data_dir)
    try:
        relay = _Relay(store)
        try:
            server = _Server((host, port), relay)
        except OSError as error:
            raise StoreError(
                f"the ClickHouse relay cannot listen on {host}:{port}: {error}",
                engine=ENGINE,
                host=host,
                port=port,
                sql=None,
            ) from error
        signalled: list[int] = []
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, _: FrameType | None) -> None:
                signalled.append(signum)  # no locks in a signal handler: the loop below polls

            for stop_signal in (signal.SIGTERM, signal.SIGINT):
                previous[stop_signal] = signal.signal(stop_signal, on_signal)
        serving = threading.Thread(target=server.serve_forever, name="relay-http", daemon=True)
        serving.start()
        try:
            if ready is not None:
                ready(server.server_address[1])
            while not signalled and not stop.wait(0.2):
                pass
        finally:
            server.shutdown()  # stop accepting connections
            server.server_close()
            relay.stop_and_drain()  # open connections get 503; in-flight calls finish
            for stop_signal, handler in previous.items():
                signal.signal(stop_signal, handler)
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.store.relay",
        description="Serve one embedded ClickHouse data directory to other processes "
        "(clients use PIPELINE_CLICKHOUSE_URL=relay://HOST:PORT). No authentication.",
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--allow-remote", action="store_true", help="listen on a non-loopback address"
    )
    args = parser.parse_args(argv)
    shown_host = f"[{args.host}]" if ":" in args.host else args.host

    def announce(port: int) -> None:
        data_dir = Path(args.data_dir).resolve()
        print(f"relay listening on http://{shown_host}:{port} (data dir {data_dir})", flush=True)

    try:
        serve_relay(
            args.data_dir, args.host, args.port, ready=announce, allow_remote=args.allow_remote
        )
    except PipelineError as error:
        print(f"relay: {error}", file=sys.stderr, flush=True)
        return 2 if isinstance(error, ConfigError) else 1
    return 0


# --- client ----------------------------------------------------------------------------------


class RelayStore(PlannedInserts):
    """A :class:`pipeline.store.Store` on a relay: one keep-alive HTTP connection per thread.

    Calls never hang on a dead relay: connecting is bounded by ``connect_timeout_s``, answers by
    ``timeout_s``, and every transport failure is a :class:`StoreError`. The next call
    reconnects, so a relay that comes back is used again by the same object.
    """

    ENGINE = ENGINE

    @property
    def engine(self) -> str:
        return ENGINE

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.host, self.port = host, port
        self.url = f"{SCHEME}://{f'[{host}]' if ':' in host else host}:{port}"
        self.connect_timeout_s, self.timeout_s = connect_timeout_s, timeout_s
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def connect(cls, url: str) -> RelayStore:
        """``relay://HOST:PORT[?connect_timeout=S&timeout=S]``; connects lazily, on first call."""
        parts = urlsplit(url)
        options: dict[str, float] = {}
        try:
            port = parts.port
            for key, values in parse_qs(parts.query, strict_parsing=bool(parts.query)).items():
                if key not in ("connect_timeout", "timeout"):
                    raise ValueError(f"unknown option {key!r}")
                options[key] = float(values[-1])
                if not options[key] > 0:
                    raise ValueError(f"{key} must be a positive number of seconds")
        except ValueError as error:
            problem: str | None = str(error)
        else:
            problem = None if parts.hostname and port is not None else "host and port required"
        if parts.scheme != SCHEME or problem is not None:
            raise ConfigError(
                f"invalid store relay URL {url!r} ({problem or 'scheme must be relay'}): "
                "expected relay://HOST:PORT[?connect_timeout=SECONDS&timeout=SECONDS], the "
                "address `python -m pipeline.store.relay` prints",
                url=url,
            )
        assert parts.hostname is not None and port is not None
        return cls(
            parts.hostname,
            port,
            connect_timeout_s=options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S),
            timeout_s=options.get("timeout", DEFAULT_TIMEOUT_S),
        )

    def command(self, sql: str) -> None:
        self._call("/command", sql.encode(), sql)

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        bound = codec.bind_params(params, codec.param_text, sql=sql, engine=ENGINE)
        payload = self._call("/query", orjson.dumps({"sql": sql, "params": bound}), sql)
        return codec.decode_result(payload)

    def _insert(self, table: str, plan: codec.InsertPlan) -> None:
        dedup_token = plan.settings.get("insert_deduplication_token")
        path = f"/insert?table={quote(table, safe='')}"
        if plan.columns:
            path += f"&columns={quote(','.join(plan.columns), safe=',')}"
        if dedup_token is not None:
            path += f"&dedup_token={quote(str(dedup_token), safe='')}"
        self._call(path, plan.payload, plan.statement)

    def ping(self) -> dict[str, Any]:
        """The relay's status (``{"status": "ok", "engine": "chdb", "path": ...}``)."""
        answer: dict[str, Any] = orjson.loads(self._call("/ping", None, None, method="GET"))
        return answer

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    # -- transport --

    def _connection(self, sql: str | None) -> tuple[http.client.HTTPConnection, bool]:
        if self._closed:
            raise StoreError(
                f"the store for the ClickHouse relay at {self.url} is closed",
                engine=ENGINE,
                relay=self.url,
                sql=_excerpt(sql),
            )
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, False
        connection = http.client.HTTPConnection(self.host, self.port, self.connect_timeout_s)
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise self._unreachable(error, sql) from error
        if connection.sock is not None:
            connection.sock.settimeout(self.timeout_s)
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection, True

    def _drop(self) -> None:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._lock:
                self._open.discard(connection)
            connection.close()

    def _call(self, path: str, body: bytes | None, sql: str | None, method: str = "POST") -> bytes:
        for attempt in (1, 2):
            connection, fresh = self._connection(sql)
            try:
                connection.request(method, path, body=body)
                response = connection.getresponse()
                payload = response.read()
            except TimeoutError as error:
                self._drop()
                raise StoreError(
                    f"the ClickHouse relay at {self.url} did not answer within "
                    f"{self.timeout_s:g} s ({error}); the call may still complete there",
                    engine=ENGINE,
                    relay=self.url,
                    sql=_excerpt(sql),
                ) from error
            except (OSError, http.client.HTTPException) as error:
                self._drop()
                # A kept-alive connection the relay closed (it restarted, or idled us out):
                # the request never reached a live relay, so one retry on a new connection.
                if not fresh and attempt == 1 and isinstance(error, ConnectionError):
                    continue
                raise self._unreachable(error, sql) from error
            if response.will_close:
                self._drop()
            if response.status == 200:
                return payload
            raise self._answer_error(response.status, payload, sql)
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, error: BaseException, sql: str | None) -> StoreError:
        return StoreError(
            f"ClickHouse relay at {self.url} is unreachable: {error!r}; is "
            "`python -m pipeline.store.relay` running?",
            engine=ENGINE,
            relay=self.url,
            sql=_excerpt(sql),
        )

    def _answer_error(self, status: int, payload: bytes, sql: str | None) -> StoreError:
        try:
            answer = orjson.loads(payload)
            message, fields = str(answer["error"]), dict(answer.get("fields") or {})
            sent_sql = answer.get("sql")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message, fields, sent_sql = f"HTTP {status}: {payload[:500]!r}", {}, None
        fields.update(engine=ENGINE, relay=self.url, status=status)
        return StoreError(message, **{**fields, "sql": sent_sql or _excerpt(sql)})


def _excerpt(sql: str | None) -> str | None:
    return None if sql is None else codec.excerpt(sql)


if __name__ == "__main__":
    sys.exit(main())
