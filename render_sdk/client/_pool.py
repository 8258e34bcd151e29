"""The async client's connection pool: kept connections in a LIFO list per origin.

httpcore's pool re-examines every connection it holds whenever a request is queued or a
response is closed (and, to count idle connections, every connection again for each), so
a client keeping many connections spends most of its CPU there: with 32 runs in flight
over ~40 kept connections, over a third of the client's CPU per run (``bench_peers`` W2,
cProfile). This pool takes the most recently used idle connection to the request's
origin, checks only that one for expiry, and puts it back when its response is closed.
Each connection is still an ``httpcore.AsyncHTTPConnection`` (connect, TLS, HTTP/1.1),
and the transport around it is httpx's own, so requests, timeouts and errors behave as
with httpx's default transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import httpcore
import httpx

__all__ = ["AsyncPooledTransport"]


class _ConnectionPool:
    """Bounded, per-origin LIFO pool of ``httpcore.AsyncHTTPConnection``.

    At most ``max_connections`` requests are in flight at once; a request beyond that waits
    for a slot up to its ``pool`` timeout (``httpcore.PoolTimeout``, which httpx reports as
    ``httpx.PoolTimeout``). At most ``max_keepalive`` idle connections are kept.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        max_keepalive: int,
        keepalive_expiry: float | None,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        # Keyed by (scheme, host, port): httpcore's Origin is not hashable.
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncHTTPConnection]] = {}
        self._idle_count = 0
        self._in_flight = 0
        self._slot_waiters: list[asyncio.Future[None]] = []
        self._closed = False

    @property
    def connections(self) -> list[httpcore.AsyncHTTPConnection]:
        """The idle connections kept (for tests and ``repr``)."""
        return [c for kept in self._idle.values() for c in kept]

    async def _acquire_slot(self, timeout: float | None) -> None:
        if self._in_flight < self._max_connections and not self._slot_waiters:
            self._in_flight += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            if future.done() and not future.cancelled():
                self._release_slot()  # granted as the wait ran out: hand it on
            raise httpcore.PoolTimeout(
                f"no connection slot freed within {timeout} s "
                f"({self._max_connections} requests in flight)"
            ) from None
        except BaseException:
            if future.done() and not future.cancelled():
                self._release_slot()
            else:
                future.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._slot_waiters.remove(future)

    def _release_slot(self) -> None:
        # A slot passes straight to the next waiter, so in_flight stays counted.
        while self._slot_waiters:
            future = self._slot_waiters.pop(0)
            if not future.done():
                future.set_result(None)
                return
        self._in_flight -= 1

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        kept = self._idle.get(_key(origin))
        while kept:
            connection = kept.pop()
            self._idle_count -= 1
            # has_expired also sees a connection the server closed while it was idle.
            if connection.is_idle() and not connection.has_expired():
                return connection
            await _close_quietly(connection)
        return httpcore.AsyncHTTPConnection(
            origin=origin, ssl_context=self._ssl_context, keepalive_expiry=self._keepalive_expiry
        )

    async def _give_back(
        self, connection: httpcore.AsyncHTTPConnection, origin: httpcore.Origin
    ) -> None:
        self._release_slot()
        if self._closed or not connection.is_idle() or self._idle_count >= self._max_keepalive:
            await _close_quietly(connection)
            return
        self._idle.setdefault(_key(origin), []).append(connection)
        self._idle_count += 1

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send ``request`` on a kept or new connection; the response holds it until closed."""
        if self._closed:
            raise httpcore.ConnectError("the client's connection pool is closed")
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        await self._acquire_slot(timeouts.get("pool"))
        try:
            while True:
                connection = await self._take(request.url.origin)
                try:
                    response = await connection.handle_async_request(request)
                except httpcore.ConnectionNotAvailable:
                    continue  # it stopped taking requests since it was checked: the next one
                except BaseException:
                    await _close_quietly(connection)
                    raise
                break
        except BaseException:
            self._release_slot()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_HeldStream(response.stream, connection, request.url.origin, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every kept connection; later requests fail."""
        self._closed = True
        kept, self._idle, self._idle_count = self._idle, {}, 0
        for connections in kept.values():
            for connection in connections:
                await _close_quietly(connection)

    async def __aenter__(self) -> _ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _HeldStream:
    """A response body that gives its connection back to the pool once closed."""

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        connection: httpcore.AsyncHTTPConnection,
        origin: httpcore.Origin,
        pool: _ConnectionPool,
    ) -> None:
        self._stream = stream
        self._connection = connection
        self._origin = origin
        self._pool = pool
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            closer = getattr(self._stream, "aclose", None)
            if closer is not None:
                await closer()
        finally:
            # A connection whose response was not read to its end is not idle: closed.
            await self._pool._give_back(self._connection, self._origin)


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return (origin.scheme, origin.host, origin.port)


async def _close_quietly(connection: httpcore.AsyncHTTPConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.aclose()


class AsyncPooledTransport(httpx.AsyncHTTPTransport):
    """httpx's async transport over :class:`_ConnectionPool` instead of httpcore's pool.

    Everything but the pool is httpx's: request and response conversion, and the mapping
    of httpcore's errors to httpx's.
    """

    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        # httpx's transport sends through its `_pool` (httpx 0.28); its own is never used.
        self._pool = _ConnectionPool(  # type: ignore[assignment]
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections or 1 << 30,
            max_keepalive=(
                limits.max_keepalive_connections
                if limits.max_keepalive_connections is not None
                else 1 << 30
            ),
            keepalive_expiry=limits.keepalive_expiry,
        )
