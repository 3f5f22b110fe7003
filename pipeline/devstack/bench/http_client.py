"""A minimal keep-alive HTTP/1.1 client on asyncio streams: the bench's load generator.

The bench's clients share the machine with the edge they measure, so a client must cost as
little CPU as possible (as ``wrk`` does): requests are built once as bytes
(:func:`post_request`), and a :class:`KeepAliveConnection` writes them on one persistent
connection and reads the answer with ``readuntil`` + ``readexactly``, no header objects, no
cookie jar, no pool. Only what the ingest edge answers is supported: bodies framed by
``Content-Length`` (or, with ``Connection: close``, by the end of the stream); a chunked answer
raises :class:`HttpProtocolError`. No TLS, no redirects, no proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from pipeline.errors import ConfigError, InfrastructureError

REQUEST_TIMEOUT_S = 300.0
"""Default limit for one exchange (connect, write, whole answer), as aiohttp's default total."""
_NO_BODY_STATUSES = frozenset({204, 304})
_BUILT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class HttpProtocolError(InfrastructureError):
    """The server answered in a form this client does not read (e.g. a chunked body)."""


@dataclass(frozen=True)
class HttpTarget:
    """Where requests go: an ``http://`` URL split into host, port and request target."""

    host: str
    port: int
    path: str

    @classmethod
    def from_url(cls, url: str) -> HttpTarget:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(
                f"the bench's HTTP client needs an http://host[:port]/path URL, not {url!r} "
                "(no TLS)",
                url=url,
            )
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ConfigError(f"bad port in URL {url!r}: {exc}", url=url) from exc
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, path)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"


def post_request(target: HttpTarget, body: bytes, headers: Mapping[str, str]) -> bytes:
    """The bytes of one ``POST`` to ``target``: request line, ``Host``, ``headers``,
    ``Content-Length``, then ``body``. Build them once, send them with
    :meth:`KeepAliveConnection.exchange` as often as needed."""
    for name, value in headers.items():
        if name.lower() in _BUILT_HEADERS:
            raise ConfigError(f"header {name!r} is set by post_request itself", header=name)
        if any(c in f"{name}{value}" for c in "\r\n") or ":" in name:
            raise ConfigError(f"header {name!r} has a line break or colon", header=name)
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {target.host_header}",
        *(f"{name}: {value}" for name, value in headers.items()),
        f"Content-Length: {len(body)}",
    ]
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"request headers must be ASCII: {exc}", path=target.path) from exc
    return head + body


class ResponseHead(NamedTuple):
    status: int
    content_length: int | None
    chunked: bool
    close: bool
    """The server will close the connection after this answer."""


def parse_response_head(head: bytes) -> ResponseHead:
    """Status line and the framing headers of one answer (``head`` ends with CRLF CRLF)."""
    status_line, *header_lines = head.rstrip(b"\r\n").split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HttpProtocolError(
            f"not an HTTP/1.x status line: {status_line[:80]!r}", status_line=status_line[:80]
        )
    length: int | None = None
    chunked = False
    connection = b""
    for line in header_lines:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise HttpProtocolError(
                    f"bad Content-Length {value[:40]!r}", content_length=value[:40]
                )
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = chunked or value.lower() != b"identity"
        elif name == b"connection":
            connection += b"," + value.lower()
    tokens = {token.strip() for token in connection.split(b",")}
    close = b"close" in tokens or (version == b"HTTP/1.0" and b"keep-alive" not in tokens)
    return ResponseHead(int(code), length, chunked, close)


class KeepAliveConnection:
    """One persistent connection to ``target``, opened on first use and reopened after the
    server closed it (``Connection: close``, an idle close, a reset) or an exchange failed.

    One exchange at a time: a connection is not shared by concurrent tasks.
    """

    def __init__(self, target: HttpTarget, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.connects = 0
        """Connections opened so far (1 for any number of exchanges while kept alive)."""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request`` (from :func:`post_request`) and read the whole answer:
        ``(status, body)``, or ``(0, b"")`` when there was no complete HTTP answer (connection
        refused, dropped, or no answer within ``timeout_s``). Raises
        :class:`HttpProtocolError` for an answer it cannot frame."""
        done = False
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await self._connected()
                writer.write(request)
                await writer.drain()
                head = await self._read_head(reader)
                while 100 <= head.status < 200:  # interim answers (never asked for): skip
                    head = await self._read_head(reader)
                body = await self._read_body(reader, head)
            done = not head.close
            return head.status, body
        except (OSError, EOFError, TimeoutError):  # EOFError: asyncio.IncompleteReadError
            return 0, b""
        finally:
            if not done:
                self._drop()

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _connected(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or reader.at_eof() or writer.is_closing():
            self._drop()
            reader, writer = await asyncio.open_connection(self.target.host, self.target.port)
            self._reader, self._writer = reader, writer
            self.connects += 1
        return reader, writer

    async def _read_head(self, reader: asyncio.StreamReader) -> ResponseHead:
        try:
            return parse_response_head(await reader.readuntil(b"\r\n\r\n"))
        except asyncio.LimitOverrunError as exc:
            raise HttpProtocolError(
                f"response headers from {self.target.host_header} longer than the reader's "
                "limit (64 KiB)",
                host=self.target.host_header,
            ) from exc

    async def _read_body(self, reader: asyncio.StreamReader, head: ResponseHead) -> bytes:
        if head.status in _NO_BODY_STATUSES:
            return b""
        if head.chunked:
            raise HttpProtocolError(
                f"{self.target.host_header} answered {head.status} with a chunked body; this "
                "client reads only Content-Length bodies",
                status=head.status,
            )
        if head.content_length is not None:
            return await reader.readexactly(head.content_length)
        if head.close:
            return await reader.read()  # framed by the end of the stream
        raise HttpProtocolError(
            f"{self.target.host_header} answered {head.status} on a kept-alive connection "
            "without Content-Length; the body cannot be framed",
            status=head.status,
        )

    def _drop(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
