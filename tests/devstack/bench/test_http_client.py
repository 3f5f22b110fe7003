"""The bench's keep-alive HTTP client against a tiny scripted asyncio server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.devstack.bench.http_client import (
    HttpProtocolError,
    HttpTarget,
    KeepAliveConnection,
    parse_response_head,
    post_request,
)
from pipeline.errors import ConfigError

TARGET_PATH = "/v1/ingest"
HEADERS = {"Authorization": "Bearer k1", "Content-Encoding": "lz4"}
Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request on the server side; False: close the connection after it."""


def answer(status: int, body: bytes, *extra: str, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", *extra]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def send(data: bytes, keep: bool = True) -> Reply:
    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return reply


async def drop(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    return False  # read the request, close without a word


async def stall(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(30)
    return False


@dataclass
class ScriptedServer:
    """Answers the n-th request (over all connections) with ``replies[n]``."""

    replies: list[Reply]
    requests: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    """(connection number, request head, body) of every request read."""
    connections: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> HttpTarget:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return HttpTarget.from_url(f"http://127.0.0.1:{port}{TARGET_PATH}")

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests.append((number, head, body))
                if not await self.replies[len(self.requests) - 1](reader, writer):
                    return
        finally:
            writer.close()


def run(replies: list[Reply], scenario: Callable[[HttpTarget], Awaitable[None]]) -> ScriptedServer:
    server = ScriptedServer(replies)

    async def main() -> None:
        target = await server.start()
        try:
            await asyncio.wait_for(scenario(target), 10)  # a hang fails, it does not block
        finally:
            await server.stop()

    asyncio.run(main())
    return server


def test_target_from_url_and_request_bytes() -> None:
    target = HttpTarget.from_url("http://127.0.0.1:8080/v1/ingest?x=1")
    assert target == HttpTarget("127.0.0.1", 8080, "/v1/ingest?x=1")
    assert HttpTarget.from_url("http://edge").path == "/"
    assert HttpTarget.from_url("http://edge/a").host_header == "edge"
    assert HttpTarget.from_url("http://[::1]:81/").host_header == "[::1]:81"
    assert post_request(target, b"xyz", HEADERS) == (
        b"POST /v1/ingest?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer k1\r\n"
        b"Content-Encoding: lz4\r\nContent-Length: 3\r\n\r\nxyz"
    )


@pytest.mark.parametrize("url", ["https://edge/v1", "edge:80/v1", "http:///v1", "http://e:x/"])
def test_target_refuses_what_it_cannot_reach(url: str) -> None:
    with pytest.raises(ConfigError):
        HttpTarget.from_url(url)


@pytest.mark.parametrize(
    "headers", [{"Content-Length": "1"}, {"Host": "x"}, {"X-A": "1\r\nX-B: 2"}, {"X-É": "1"}]
)
def test_request_refuses_headers_it_sets_or_that_break_the_framing(
    headers: dict[str, str],
) -> None:
    with pytest.raises(ConfigError):
        post_request(HttpTarget("h", 80, "/"), b"", headers)


@given(
    status=st.integers(100, 599),
    length=st.none() | st.integers(0, 10**9),
    chunked=st.booleans(),
    connection=st.sampled_from(["", "close", "keep-alive", "Keep-Alive, Upgrade", "CLOSE"]),
    http10=st.booleans(),
    upper=st.booleans(),
)
def test_response_head_framing(
    status: int, length: int | None, chunked: bool, connection: str, http10: bool, upper: bool
) -> None:
    lines = [f"HTTP/1.{0 if http10 else 1} {status} Some reason", "Server: x:y"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: gzip, chunked")
    if connection:
        lines.append(f"Connection: {connection}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    head = parse_response_head((text.upper() if upper else text).encode())
    tokens = {t.strip() for t in connection.lower().split(",")}
    close = "close" in tokens or (http10 and "keep-alive" not in tokens)
    assert head == (status, length, chunked, close)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
)
def test_response_head_refuses_what_it_cannot_frame(head: bytes) -> None:
    with pytest.raises(HttpProtocolError):
        parse_response_head(head)


def test_keep_alive_reuses_one_connection_and_reads_every_answer() -> None:
    accepted = orjson.dumps({"accepted": 100, "rejected": 0})
    got: list[tuple[int, bytes]] = []
    connection: KeepAliveConnection | None = None

    async def scenario(target: HttpTarget) -> None:
        nonlocal connection
        connection = KeepAliveConnection(target)
        for body in (b"one", b"two" * 5000, b"three"):
            got.append(await connection.exchange(post_request(target, body, HEADERS)))
        await connection.close()

    server = run(
        [
            send(answer(202, accepted, "Content-Type: application/json")),
            send(answer(401, b'{"error":"unauthorized"}', "WWW-Authenticate: Bearer")),
            send(answer(503, b"")),
        ],
        scenario,
    )
    assert got == [(202, accepted), (401, b'{"error":"unauthorized"}'), (503, b"")]
    assert connection is not None and connection.connects == 1
    assert [(n, body) for n, _, body in server.requests] == [
        (1, b"one"),
        (1, b"two" * 5000),
        (1, b"three"),
    ]
    head = server.requests[0][1]
    assert head.startswith(b"POST /v1/ingest HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAuthorization: Bearer k1\r\n" in head and b"\r\nContent-Length: 3\r\n" in head


def test_connection_close_answer_or_a_drop_reconnects_for_the_next_request() -> None:
    got: list[tuple[int, bytes]] = []
    connection: KeepAliveConnection | None = None

    async def scenario(target: HttpTarget) -> None:
        nonlocal connection
        connection = KeepAliveConnection(target)
        for number in range(4):
            got.append(await connection.exchange(post_request(target, b"%d" % number, {})))
        await connection.close()

    server = run(
        [
            send(answer(202, b"{}", "Connection: close"), keep=True),  # the client must close
            drop,  # dropped without an answer: status 0
            send(answer(200, b"ok")),
            send(answer(200, b"again")),
        ],
        scenario,
    )
    assert got == [(202, b"{}"), (0, b""), (200, b"ok"), (200, b"again")]
    assert connection is not None and connection.connects == 3
    assert [n for n, _, _ in server.requests] == [1, 2, 3, 3]


def test_a_connection_the_server_closed_while_idle_is_reopened_before_writing() -> None:
    got: list[tuple[int, bytes]] = []

    async def scenario(target: HttpTarget) -> None:
        connection = KeepAliveConnection(target)
        got.append(await connection.exchange(post_request(target, b"a", {})))
        await asyncio.sleep(0.05)  # the server's close (after answering) reaches the client
        got.append(await connection.exchange(post_request(target, b"b", {})))
        assert connection.connects == 2
        await connection.close()

    # the server closes after answering, without saying so: the idle-timeout case
    server = run([send(answer(200, b"1"), keep=False), send(answer(200, b"2"))], scenario)
    assert got == [(200, b"1"), (200, b"2")]  # not a lost request
    assert [n for n, _, _ in server.requests] == [1, 2]


def test_an_answer_framed_by_the_end_of_the_stream_and_one_without_a_body() -> None:
    got: list[tuple[int, bytes]] = []

    async def scenario(target: HttpTarget) -> None:
        connection = KeepAliveConnection(target)
        for _ in range(3):
            got.append(await connection.exchange(post_request(target, b"x", {})))
        await connection.close()

    interim = answer(100, b"", length=False)
    run(
        [
            send(answer(200, b"to the end", "Connection: close", length=False), keep=False),
            send(answer(204, b"", length=False)),
            send(interim + answer(202, b"after 100")),
        ],
        scenario,
    )
    assert got == [(200, b"to the end"), (204, b""), (202, b"after 100")]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (answer(202, b"5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked", length=False),
         "chunked body"),
        (answer(202, b"", length=False), "without Content-Length"),  # kept alive, no length
        (b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n", "64 KiB"),
    ],
)  # fmt: skip
def test_an_answer_it_cannot_frame_is_a_clear_error_and_drops_the_connection(
    data: bytes, says: str
) -> None:
    async def scenario(target: HttpTarget) -> None:
        connection = KeepAliveConnection(target)
        with pytest.raises(HttpProtocolError) as caught:
            await connection.exchange(post_request(target, b"x", {}))
        assert "127.0.0.1" in str(caught.value) and says in str(caught.value)
        assert await connection.exchange(post_request(target, b"y", {})) == (200, b"fine")
        assert connection.connects == 2
        await connection.close()

    run([send(data), send(answer(200, b"fine"))], scenario)


def test_a_refused_connection_is_status_0_at_once_and_a_later_server_is_reached() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens there once closed

    async def main() -> None:
        target = HttpTarget("127.0.0.1", port, "/")
        connection = KeepAliveConnection(target)
        request = post_request(target, b"x", {})
        assert await asyncio.wait_for(connection.exchange(request), 5) == (0, b"")
        assert await asyncio.wait_for(connection.exchange(request), 5) == (0, b"")
        assert connection.connects == 0
        await connection.close()

    asyncio.run(main())


def test_no_answer_within_the_timeout_is_status_0_and_a_fresh_connection_next() -> None:
    async def scenario(target: HttpTarget) -> None:
        connection = KeepAliveConnection(target, timeout_s=0.2)
        assert await connection.exchange(post_request(target, b"x", {})) == (0, b"")
        assert await connection.exchange(post_request(target, b"y", {})) == (200, b"ok")
        assert connection.connects == 2
        await connection.close()

    run([stall, send(answer(200, b"ok"))], scenario)
