"""The async client's transport to a loopback server: h11 over an asyncio protocol, pooled.

Against the local task server the client's CPU is the benchmark's bottleneck: with 32 runs
in flight, httpx's default transport spent about 0.7 ms per request in httpcore's pool,
anyio and the connection machinery around h11 (``bench_peers`` W2, cProfile), and
httpcore's pool re-examines every kept connection, twice over, on each request and each
closed response. This transport keeps httpx's client (requests, headers, errors, streaming,
timeouts) and h11's HTTP/1.1 state machine, and replaces the rest with what a plain-HTTP
loopback connection needs: an ``asyncio.Protocol`` per connection, one LIFO list of idle
connections per origin, and a bounded number of requests in flight. The client uses it for
loopback base URLs only; a request to any other scheme (``https``) goes through httpx's own
transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar

import h11
import httpx

__all__ = ["AsyncPooledTransport"]

#: Bytes received and not yet read past which the socket is no longer read (back-pressure);
#: also the largest request body written in one piece with its head.
_READ_SIZE = 64 * 1024

_T = TypeVar("_T")


async def _within(awaitable: Awaitable[_T], seconds: float | None) -> _T:
    if seconds is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover (3.10)


class _Stream(asyncio.Protocol):
    """A socket's bytes both ways, with what was received readable after the peer left.

    Unlike asyncio's ``StreamReader``, which raises a connection's error before handing
    out bytes it had already received, a read returns everything received first: a server
    that answers an upload early (413) and resets the connection is still heard.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._error: Exception | None = None
        self._reader: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        self._reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _READ_SIZE and self.transport is not None:
            self.transport.pause_reading()  # the response is read slower than it arrives
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False  # close the transport: HTTP/1.1 has no use for a half-open socket

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake_reader()
        self.resume_writing()  # a waiting drain() wakes and finds the connection gone

    def pause_writing(self) -> None:
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drainer, self._drainer = self._drainer, None
        if drainer is not None and not drainer.done():
            drainer.set_result(None)

    def _wake_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.set_result(None)

    def quiet(self) -> bool:
        """Open, and nothing arrived unasked (an idle connection the server left has EOF)."""
        return not self._eof and not self._buffer

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def write(self, data: bytes) -> None:
        """Queue ``data``.

        Raises:
            ConnectionResetError: The connection is gone.
        """
        if self.transport is None or self.transport.is_closing():
            raise self._error or ConnectionResetError("the connection is closed")
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the socket's send buffer has room again."""
        if self._drainer is not None:
            # Shielded: the future is shared by every drain until writing resumes.
            await asyncio.shield(self._drainer)
        if self.transport is None or self.transport.is_closing():
            raise self._error or ConnectionResetError("the connection is closed")

    async def read(self) -> bytes:
        """The bytes received so far (waiting for some); ``b""`` at the end.

        Raises:
            OSError: The connection failed, and nothing it received is left unread.
        """
        while not self._buffer and not self._eof:
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        if not data and isinstance(self._error, OSError):
            raise self._error
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def get_extra_info(self, name: str) -> Any:
        return None if self.transport is None else self.transport.get_extra_info(name)


class _Connection:
    """One HTTP/1.1 connection: its socket and its h11 state."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def usable(self, now: float, expiry: float | None) -> bool:
        """Idle, open, not closed by the server while idle, and not past its expiry."""
        return (
            self.h11.our_state is h11.IDLE
            and not self.stream.is_closing()
            and self.stream.quiet()
            and (expiry is None or now - self.idle_since < expiry)
        )

    def close(self) -> None:
        self.stream.close()

    async def send(self, request: httpx.Request, timeouts: dict[str, Any]) -> h11.Response:
        """Write ``request`` and read up to its response's head."""
        write_timeout = timeouts.get("write")
        head = self.h11.send(
            h11.Request(
                method=request.method, target=request.url.raw_path, headers=request.headers.raw
            )
        )
        write_error: OSError | None = None
        try:
            stream = request.stream
            if isinstance(stream, httpx.ByteStream):
                body = b"".join(stream)
                if len(body) <= _READ_SIZE:
                    # Every API request: head, body and framing in one write (one send).
                    data = self.h11.send(h11.Data(data=body)) if body else b""
                    tail = self.h11.send(h11.EndOfMessage()) or b""
                    self.stream.write(b"".join((head or b"", data or b"", tail)))
                    await _within(self.stream.drain(), write_timeout)
                else:
                    self.stream.write(head or b"")
                    await self._send_body((body,), write_timeout)
            else:
                self.stream.write(head or b"")
                await self._send_body(stream, write_timeout)
        except asyncio.TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "timed out sending the request") from exc
        except OSError as exc:
            # The server may have answered (413, 403) and closed before reading it all:
            # that answer is read below; h11 takes a response before the request's end.
            write_error = exc
        while True:
            try:
                event = await self.next_event(timeouts.get("read"))
            except httpx.TransportError as exc:
                if write_error is not None:
                    message = str(write_error) or type(write_error).__name__
                    raise httpx.WriteError(message) from write_error
                raise exc
            if isinstance(event, h11.Response):
                return event
            if not isinstance(event, h11.InformationalResponse):
                raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} in response")

    async def _send_body(
        self, chunks: AsyncIterable[bytes] | Iterable[bytes], write_timeout: float | None
    ) -> None:
        """Each chunk as h11 frames it, without copying it, then the end of the body."""
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                await self._send_data(chunk, write_timeout)
        else:
            for chunk in chunks:
                await self._send_data(chunk, write_timeout)
        self.stream.write(self.h11.send(h11.EndOfMessage()) or b"")
        await _within(self.stream.drain(), write_timeout)

    async def _send_data(self, chunk: bytes, write_timeout: float | None) -> None:
        if chunk:
            for piece in self.h11.send_with_data_passthrough(h11.Data(data=chunk)) or ():
                self.stream.write(piece)
            await _within(self.stream.drain(), write_timeout)

    async def next_event(self, read_timeout: float | None) -> Any:
        """The next h11 event of the response, reading from the socket as needed."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                return event
            try:
                data = await _within(self.stream.read(), read_timeout)
            except asyncio.TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc) or "timed out reading the response") from exc
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
            self.h11.receive_data(data)


class _ConnectionPool:
    """Idle connections per origin (LIFO) and the slots of requests in flight.

    At most ``max_connections`` requests are in flight at once; a request beyond that waits
    for a slot up to its ``pool`` timeout (``httpx.PoolTimeout``), and slots are handed on
    in the order they were asked for. At most ``max_keepalive`` idle connections are kept,
    each for ``keepalive_expiry`` seconds.
    """

    def __init__(
        self, *, max_connections: int, max_keepalive: int, keepalive_expiry: float | None
    ) -> None:
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._idle_count = 0
        #: Connections carrying a request or a response not yet closed.
        self._busy: set[_Connection] = set()
        self._in_flight = 0
        self._slot_waiters: list[asyncio.Future[None]] = []
        self.closed = False

    @property
    def connections(self) -> list[_Connection]:
        """The idle connections kept."""
        return [c for kept in self._idle.values() for c in kept]

    async def _acquire_slot(self, timeout: float | None) -> None:
        if self._in_flight < self._max_connections and not self._slot_waiters:
            self._in_flight += 1
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._slot_waiters.append(future)
        # A timer rather than asyncio.wait_for: before Python 3.12, wait_for returns the
        # result, swallowing a cancellation, when the slot was granted just before the
        # waiting task was cancelled (https://github.com/python/cpython/issues/86296).
        timer = (
            None if timeout is None else loop.call_later(timeout, self._time_out, future, timeout)
        )
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release_slot()  # granted, but this request is abandoned: hand it on
            raise
        finally:
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(ValueError):
                self._slot_waiters.remove(future)

    def _time_out(self, future: asyncio.Future[None], timeout: float) -> None:
        if not future.done():
            future.set_exception(
                httpx.PoolTimeout(
                    f"no connection slot freed within {timeout} s "
                    f"({self._max_connections} requests in flight)"
                )
            )

    def _release_slot(self) -> None:
        # A slot passes straight to the next waiter, so in_flight stays counted.
        while self._slot_waiters:
            future = self._slot_waiters.pop(0)
            if not future.done():
                future.set_result(None)
                return
        self._in_flight -= 1

    def _take(self, origin: tuple[str, int]) -> _Connection | None:
        kept = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while kept:
            connection = kept.pop()
            self._idle_count -= 1
            if connection.usable(now, self._keepalive_expiry):
                return connection
            connection.close()
        return None

    def _lend(self, connection: _Connection) -> None:
        self._busy.add(connection)

    def _drop(self, connection: _Connection) -> None:
        """A request on ``connection`` failed: close it and free its slot."""
        self._busy.discard(connection)
        connection.close()
        self._release_slot()

    def _give_back(self, connection: _Connection, origin: tuple[str, int]) -> None:
        """The response is done with ``connection``: keep it idle when it can serve again."""
        self._busy.discard(connection)
        self._release_slot()
        h = connection.h11
        if (
            not self.closed
            and h.our_state is h11.DONE
            and h.their_state is h11.DONE
            and self._idle_count < self._max_keepalive
        ):
            h.start_next_cycle()
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(origin, []).append(connection)
            self._idle_count += 1
        else:
            connection.close()

    def _close(self) -> list[_Connection]:
        """Every connection, idle or busy (a response still open then fails to read on)."""
        self.closed = True
        kept, self._idle, self._idle_count = self._idle, {}, 0
        busy, self._busy = self._busy, set()
        return [*(c for connections in kept.values() for c in connections), *busy]


class _Body(httpx.AsyncByteStream):
    """A response body read event by event; gives its connection back once closed."""

    def __init__(
        self,
        connection: _Connection,
        origin: tuple[str, int],
        pool: _ConnectionPool,
        read_timeout: float | None,
    ) -> None:
        self._connection = connection
        self._origin = origin
        self._pool = pool
        self._read_timeout = read_timeout
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while True:
                event = await self._connection.next_event(self._read_timeout)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
        except BaseException:
            self._connection.close()
            await self.aclose()
            raise
        await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # Not read to its end: h11 is not DONE, so the connection is closed, not kept.
            self._pool._give_back(self._connection, self._origin)


class AsyncPooledTransport(httpx.AsyncBaseTransport):
    """httpx transport for plain HTTP/1.1 to loopback servers (see the module docstring).

    Args:
        limits: ``max_connections`` bounds requests in flight, ``max_keepalive_connections``
            the idle connections kept, ``keepalive_expiry`` how long each is kept.
    """

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limits = limits
        self._other: httpx.AsyncHTTPTransport | None = None
        self._pool = _ConnectionPool(
            max_connections=limits.max_connections or sys.maxsize,
            max_keepalive=(
                limits.max_keepalive_connections
                if limits.max_keepalive_connections is not None
                else sys.maxsize
            ),
            keepalive_expiry=limits.keepalive_expiry,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a kept or new connection; the response holds it until closed.

        Raises:
            httpx.TransportError: Connecting, sending or reading failed (httpx's classes:
                ``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``PoolTimeout``, ...).
        """
        url = request.url
        if url.scheme != "http":
            if self._other is None:
                self._other = httpx.AsyncHTTPTransport(limits=self._limits)
            return await self._other.handle_async_request(request)
        pool = self._pool
        if pool.closed:
            raise httpx.ConnectError("the client's connection pool is closed", request=request)
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        origin = (url.host, url.port or 80)
        try:
            await pool._acquire_slot(timeouts.get("pool"))
        except httpx.TransportError as exc:
            exc.request = request
            raise
        connection: _Connection | None = None
        try:
            connection = pool._take(origin) or await self._connect(origin, timeouts.get("connect"))
            pool._lend(connection)
            head = await connection.send(request, timeouts)
        except BaseException as exc:
            if connection is not None:
                pool._drop(connection)
            else:
                pool._release_slot()
            if isinstance(exc, httpx.TransportError):
                exc.request = request
            raise
        return httpx.Response(
            status_code=head.status_code,
            headers=list(head.headers.raw_items()),
            stream=_Body(connection, origin, pool, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(head.reason)},
        )

    @staticmethod
    async def _connect(origin: tuple[str, int], timeout: float | None) -> _Connection:
        try:
            loop = asyncio.get_running_loop()
            _, stream = await _within(loop.create_connection(_Stream, *origin), timeout)
        except asyncio.TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or f"timed out connecting to {origin}") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Connection(stream)

    async def aclose(self) -> None:
        """Close every connection; later requests fail with ``httpx.ConnectError``."""
        for connection in self._pool._close():
            connection.close()
        if self._other is not None:
            await self._other.aclose()
