"""The loopback connection pool (``render_sdk.client._pool``) against a real HTTP/1.1 server.

The server is a small asyncio one on 127.0.0.1, in the test's own event loop, so each test
sees exactly which TCP connections the client opened (by the client's port), which
requests each carried and when each was closed. Slow requests wait on gates the test
opens, so every ordering is decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

import render_sdk
from render_sdk.client._core import pool_limits
from render_sdk.client._pool import AsyncPooledTransport, _ConnectionPool
from render_sdk.client._pool import _Connection as _PooledConnection

# Generous: only a broken pool makes a test wait this long.
WAIT = 10.0


@dataclass
class _Connection:
    port: int
    writer: asyncio.StreamWriter
    paths: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class _Server:
    """HTTP/1.1 with keep-alive on 127.0.0.1; records each connection by the client's port.

    Paths: ``/`` answers with the client's port (so a response tells which connection
    carried it); ``/gate/<name>`` answers once the test opens that gate; ``/hang`` never
    answers; ``/big`` sends 4 MiB; ``/truncated`` promises 100 bytes, sends 10 and closes;
    ``/chunked`` answers in three chunks; ``/close`` answers with ``Connection: close``;
    ``/echo`` answers with the request body (sent with a length or chunked); ``/reject``
    answers 413 without reading the body and closes. A ``HEAD`` gets the head only.
    """

    def __init__(self) -> None:
        self.connections: dict[int, _Connection] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for gate in self._gates.values():
            gate.set()
        for connection in self.connections.values():
            connection.writer.close()
        # Each handler ends on its own once its connection is closed; waiting for them
        # (rather than leaving them to be cancelled with the loop) keeps teardown quiet.
        if self._handlers:
            await asyncio.wait_for(asyncio.gather(*self._handlers), WAIT)
        await self._server.wait_closed()

    def gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    def waiting_at(self, name: str) -> int:
        """Requests now held at gate ``name``."""
        return self._waiting.get(name, 0)

    @property
    def ports(self) -> list[int]:
        """The client ports of every connection accepted, in order."""
        return list(self.connections)

    def open_ports(self) -> list[int]:
        return [c.port for c in self.connections.values() if not c.closed.is_set()]

    async def drop(self, port: int) -> None:
        """Close connection ``port`` from the server's side (as a keep-alive timeout would)."""
        connection = self.connections[port]
        connection.writer.close()
        await asyncio.wait_for(connection.closed.wait(), WAIT)

    async def closed(self, port: int) -> None:
        """Wait until the client closed connection ``port``."""
        await asyncio.wait_for(self.connections[port].closed.wait(), WAIT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        port = writer.get_extra_info("peername")[1]
        connection = self.connections[port] = _Connection(port, writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return  # the client closed the connection
                method, path, _ = request_line.decode().split()
                length, chunked = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                    if name.strip().lower() == "transfer-encoding":
                        chunked = value.strip().lower() == "chunked"
                connection.paths.append(path)
                if path == "/reject":
                    writer.write(
                        b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n"
                        b"Connection: close\r\n\r\nbig!"
                    )
                    await writer.drain()
                    return
                body = await (_read_chunked(reader) if chunked else reader.readexactly(length))
                if path == "/echo":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                    writer.write(body)
                    await writer.drain()
                    continue
                if method == "HEAD":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: Head\r\n\r\n")
                    await writer.drain()
                    continue
                if not await self._respond(path, port, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request or mid-response
        finally:
            writer.close()
            connection.closed.set()

    async def _respond(
        self, path: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection is to be closed."""
        if path.startswith("/gate/"):
            name = path.removeprefix("/gate/")
            self._waiting[name] = self._waiting.get(name, 0) + 1
            try:
                await self.gate(name).wait()
            finally:
                self._waiting[name] -= 1
        elif path == "/hang":
            await reader.read()  # until the client (or the server's stop) closes it
            return False
        elif path == "/big":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n")
            for _ in range(64):
                writer.write(b"x" * 65536)
                await writer.drain()
            return True
        elif path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"one ", b"two ", b"three"):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        elif path == "/close":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye")
            await writer.drain()
            return False
        elif path == "/truncated":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 10)
            await writer.drain()
            return False
        body = str(port).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        return True


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while size := int((await reader.readline()).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readline()  # the blank line after the last chunk
    return body


@pytest.fixture
async def server() -> AsyncIterator[_Server]:
    srv = _Server()
    await srv.start()
    yield srv
    await srv.stop()


@contextlib.asynccontextmanager
async def _client(
    server: _Server,
    *,
    max_connections: int | None = 10,
    max_keepalive_connections: int | None = None,
    keepalive_expiry: float | None = 5.0,
    timeout: httpx.Timeout | float = WAIT,
) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
    )
    async with httpx.AsyncClient(
        base_url=server.url, transport=AsyncPooledTransport(limits=limits), timeout=timeout
    ) as client:
        yield client


def _local_port(connection: _PooledConnection) -> int:
    """The client port of a kept connection (the server's key for it)."""
    port: int = connection.stream.get_extra_info("sockname")[1]
    return port


def _pool(client: httpx.AsyncClient) -> _ConnectionPool:
    transport = client._transport
    assert isinstance(transport, AsyncPooledTransport)
    pool = transport._pool
    assert isinstance(pool, _ConnectionPool)
    return pool


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (polling the loop) until ``condition()`` holds; fail after ``WAIT`` seconds."""

    async def poll() -> None:
        # Polled: the pool's waiter list has no event to wait on, and no test should need one.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), WAIT)


async def _at_gate(server: _Server, name: str, count: int) -> None:
    await _until(lambda: server.waiting_at(name) == count)


async def _waiters(pool: _ConnectionPool, count: int) -> None:
    await _until(lambda: len(pool._slot_waiters) == count)


async def _port_of(response: Awaitable[httpx.Response]) -> int:
    """The client port of the connection that carried ``response`` (the server's answer)."""
    done = await response
    assert done.status_code == 200
    return int(done.text)


# 1. Reuse, concurrency, LIFO


async def test_sequential_requests_share_one_connection(server: _Server) -> None:
    async with _client(server) as client:
        ports = [await _port_of(client.get("/")) for _ in range(5)]
        assert len(set(ports)) == 1
        assert server.ports == ports[:1]
        assert server.connections[ports[0]].paths == ["/"] * 5
        assert len(_pool(client).connections) == 1
        assert _pool(client)._in_flight == 0


async def test_concurrent_requests_open_several_then_the_last_returned_is_reused(
    server: _Server,
) -> None:
    async with _client(server) as client:
        names = ["a", "b", "c"]
        tasks = {name: asyncio.create_task(_port_of(client.get(f"/gate/{name}"))) for name in names}
        # All three are at the server at once, so each has its own connection.
        await _until(lambda: all(server.waiting_at(name) == 1 for name in names))
        assert len(server.ports) == 3
        # Finish them one by one, so the pool gets them back in the order a, b, c.
        ports = {}
        for name in names:
            server.gate(name).set()
            ports[name] = await tasks[name]
        assert len(set(ports.values())) == 3
        assert len(_pool(client).connections) == 3

        # LIFO: the most recently returned connection (c's) carries the next requests.
        assert await _port_of(client.get("/")) == ports["c"]
        assert await _port_of(client.get("/")) == ports["c"]
        # Two at once: c's, then b's (the next most recent); no new connection.
        server.gate("d").set()
        pair = await asyncio.gather(
            _port_of(client.get("/gate/d")), _port_of(client.get("/gate/d"))
        )
        assert sorted(pair) == sorted([ports["c"], ports["b"]])
        assert len(server.ports) == 3
        assert server.open_ports() == server.ports


async def test_connections_are_kept_per_origin(server: _Server) -> None:
    other = _Server()
    await other.start()
    try:
        async with _client(server) as client:
            here = await _port_of(client.get("/"))
            there = await _port_of(client.get(f"{other.url}/"))
            assert await _port_of(client.get("/")) == here
            assert await _port_of(client.get(f"{other.url}/")) == there
            assert server.ports == [here]
            assert other.ports == [there]
            assert len(_pool(client).connections) == 2
    finally:
        await other.stop()


async def test_an_expired_connection_is_closed_not_reused(server: _Server) -> None:
    async with _client(server, keepalive_expiry=0.01) as client:
        first = await _port_of(client.get("/"))
        await asyncio.sleep(0.1)  # past the keep-alive expiry (a lower bound, not a race)
        second = await _port_of(client.get("/"))
        assert second != first
        await server.closed(first)
        assert server.open_ports() == [second]


# 2. max_connections bounds requests in flight


async def test_a_request_beyond_max_connections_waits_for_a_slot(server: _Server) -> None:
    async with _client(server, max_connections=2) as client:
        tasks = [asyncio.create_task(client.get(f"/gate/{name}")) for name in ("a", "b", "c")]
        pool = _pool(client)
        await _until(lambda: len(pool._slot_waiters) == 1)
        await _until(lambda: server.waiting_at("a") + server.waiting_at("b") == 2)
        # The third is queued in the pool: it never reached the server.
        assert server.waiting_at("c") == 0
        assert sum(len(c.paths) for c in server.connections.values()) == 2
        assert pool._in_flight == 2
        assert not tasks[2].done()

        server.gate("c").set()
        server.gate("a").set()  # a's slot passes to the waiting request
        await asyncio.wait_for(asyncio.gather(tasks[0], tasks[2]), WAIT)
        assert not tasks[1].done()
        # c went out on a's connection, which a had given back: still two connections.
        assert len(server.ports) == 2
        server.gate("b").set()
        await asyncio.wait_for(tasks[1], WAIT)
        assert pool._in_flight == 0
        assert pool._slot_waiters == []


async def test_no_slot_within_the_pool_timeout_raises_pool_timeout(server: _Server) -> None:
    async with _client(server, max_connections=1) as client:
        held = asyncio.create_task(client.get("/gate/a"))
        await _until(lambda: server.waiting_at("a") == 1)
        with pytest.raises(httpx.PoolTimeout, match="no connection slot"):
            await client.get("/", timeout=httpx.Timeout(WAIT, pool=0.05))
        pool = _pool(client)
        assert pool._slot_waiters == []
        assert pool._in_flight == 1

        server.gate("a").set()
        assert (await asyncio.wait_for(held, WAIT)).status_code == 200
        assert pool._in_flight == 0
        # The timed-out waiter left nothing behind: the one slot serves the next request.
        assert await _port_of(client.get("/", timeout=httpx.Timeout(WAIT, pool=0.05))) > 0
        assert len(server.ports) == 1


async def _assert_limit_requests_run_at_once(
    client: httpx.AsyncClient, server: _Server, limit: int, gate: str
) -> None:
    """``limit`` requests reach the server together; one more waits for a slot."""
    pool = _pool(client)
    assert pool._in_flight == 0
    tasks = [asyncio.create_task(client.get(f"/gate/{gate}")) for _ in range(limit + 1)]
    await _until(lambda: server.waiting_at(gate) == limit and len(pool._slot_waiters) == 1)
    server.gate(gate).set()
    for response in await asyncio.wait_for(asyncio.gather(*tasks), WAIT):
        assert response.status_code == 200
    assert pool._in_flight == 0
    assert pool._slot_waiters == []


@pytest.mark.parametrize("how", ["cancel", "wait_for"])
async def test_a_cancelled_waiter_does_not_leak_a_slot(server: _Server, how: str) -> None:
    async with _client(server, max_connections=2) as client:
        pool = _pool(client)
        held = [asyncio.create_task(client.get("/gate/a")) for _ in range(2)]
        await _until(lambda: server.waiting_at("a") == 2)
        if how == "cancel":
            waiter = asyncio.create_task(client.get("/"))
            await _until(lambda: len(pool._slot_waiters) == 1)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        else:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.get("/"), 0.05)
        assert pool._slot_waiters == []
        assert pool._in_flight == 2

        server.gate("a").set()
        await asyncio.wait_for(asyncio.gather(*held), WAIT)
        await _assert_limit_requests_run_at_once(client, server, 2, "b")


async def test_a_waiter_cancelled_as_its_slot_is_granted_stays_cancelled(
    server: _Server,
) -> None:
    # Before Python 3.12, asyncio.wait_for around the slot wait returned normally here,
    # swallowing the cancel, and the request went on to the server.
    async with _client(server, max_connections=1) as client:
        pool = _pool(client)
        held = await client.send(client.build_request("GET", "/"), stream=True)
        waiter = asyncio.create_task(client.get("/"))
        await _waiters(pool, 1)
        # Closing the held response grants its slot to the waiter; cancel the waiter
        # before (or, if closing yielded to the loop, after) it resumes.
        await held.aclose()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool._in_flight == 0
        await _assert_limit_requests_run_at_once(client, server, 1, "b")


async def test_a_slot_granted_to_a_waiter_as_it_is_cancelled_is_handed_on() -> None:
    # The pool alone, so nothing yields between the grant and the cancel.
    pool = _ConnectionPool(
        max_connections=1,
        max_keepalive=1,
        keepalive_expiry=None,
    )
    await pool._acquire_slot(None)
    cancelled = asyncio.create_task(pool._acquire_slot(None))
    second = asyncio.create_task(pool._acquire_slot(None))
    await _waiters(pool, 2)
    pool._release_slot()  # granted to `cancelled`, which has not run since
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    # Its slot went on to the next waiter rather than being lost or counted twice.
    await asyncio.wait_for(second, WAIT)
    assert pool._in_flight == 1
    assert pool._slot_waiters == []
    pool._release_slot()
    assert pool._in_flight == 0


async def test_waiters_are_served_in_order(server: _Server) -> None:
    async with _client(server, max_connections=1) as client:
        pool = _pool(client)
        held = asyncio.create_task(client.get("/gate/first"))
        await _until(lambda: server.waiting_at("first") == 1)
        queued = []
        for count, name in enumerate(("w1", "w2", "w3"), start=1):
            queued.append(asyncio.create_task(client.get(f"/gate/{name}")))
            await _waiters(pool, count)
        server.gate("first").set()
        await asyncio.wait_for(held, WAIT)
        for name, task in zip(("w1", "w2", "w3"), queued, strict=True):
            await _at_gate(server, name, 1)
            server.gate(name).set()
            await asyncio.wait_for(task, WAIT)
        assert server.connections[server.ports[0]].paths == [
            "/gate/first",
            "/gate/w1",
            "/gate/w2",
            "/gate/w3",
        ]


# 3. A connection the server closed while idle


async def test_a_connection_the_server_closed_while_idle_is_not_reused(server: _Server) -> None:
    async with _client(server) as client:
        first = await _port_of(client.get("/"))
        await server.drop(first)
        second = await _port_of(client.get("/"))
        assert second != first
        assert server.ports == [first, second]
        assert [_local_port(c) for c in _pool(client).connections] == [second]


async def test_only_the_dropped_connection_is_replaced(server: _Server) -> None:
    async with _client(server) as client:
        server.gate("a").set()
        ports = await asyncio.gather(*(_port_of(client.get("/gate/a")) for _ in range(2)))
        assert len(set(ports)) == 2
        # Drop whichever connection the pool would hand out next (the last returned).
        newest = await _port_of(client.get("/"))
        await server.drop(newest)
        (survivor,) = set(ports) - {newest}
        assert await _port_of(client.get("/")) == survivor
        assert len(server.ports) == 2


# 4. A streamed response closed before its end


async def test_a_response_closed_before_its_end_closes_its_connection(server: _Server) -> None:
    async with _client(server) as client:
        async with client.stream("GET", "/big") as response:
            async for chunk in response.aiter_raw():
                assert chunk
                break
        pool = _pool(client)
        assert pool.connections == []
        assert pool._in_flight == 0
        (big,) = server.ports
        await server.closed(big)

        after = await _port_of(client.get("/"))
        assert after != big
        assert server.open_ports() == [after]


async def test_a_response_read_to_its_end_gives_its_connection_back(server: _Server) -> None:
    async with _client(server) as client:
        async with client.stream("GET", "/big") as response:
            size = sum([len(chunk) async for chunk in response.aiter_raw()])
        assert size == 4 * 1024 * 1024
        (big,) = server.ports
        assert await _port_of(client.get("/")) == big


async def test_a_response_cut_short_by_the_server_raises_and_releases(server: _Server) -> None:
    async with _client(server, max_connections=1) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/truncated")
        pool = _pool(client)
        assert pool._in_flight == 0
        assert pool.connections == []
        assert await _port_of(client.get("/")) != server.ports[0]


# 5. max_keepalive_connections bounds the idle list


async def test_max_keepalive_connections_bounds_the_idle_list(server: _Server) -> None:
    async with _client(server, max_connections=10, max_keepalive_connections=2) as client:
        names = ["a", "b", "c", "d"]
        tasks = {name: asyncio.create_task(_port_of(client.get(f"/gate/{name}"))) for name in names}
        await _until(lambda: all(server.waiting_at(name) == 1 for name in names))
        ports = {}
        for name in names:
            server.gate(name).set()
            ports[name] = await tasks[name]
        # a and b were kept; c and d came back to a full idle list and were closed.
        pool = _pool(client)
        assert len(pool.connections) == 2
        assert pool._idle_count == 2
        await server.closed(ports["c"])
        await server.closed(ports["d"])
        assert sorted(server.open_ports()) == sorted([ports["a"], ports["b"]])
        assert await _port_of(client.get("/")) == ports["b"]


async def test_zero_keepalive_connections_keeps_none(server: _Server) -> None:
    async with _client(server, max_keepalive_connections=0) as client:
        first = await _port_of(client.get("/"))
        second = await _port_of(client.get("/"))
        assert first != second
        assert _pool(client).connections == []
        await server.closed(first)
        await server.closed(second)


# 6. Errors are httpx's, and release the slot


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_connect_error_and_releases_the_slot() -> None:
    url = f"http://127.0.0.1:{_free_port()}/"
    transport = AsyncPooledTransport(limits=httpx.Limits(max_connections=1))
    async with httpx.AsyncClient(transport=transport, timeout=WAIT) as client:
        for _ in range(3):  # a leaked slot would make the second attempt a PoolTimeout
            with pytest.raises(httpx.ConnectError):
                await client.get(url, timeout=httpx.Timeout(WAIT, pool=1.0))
        pool = _pool(client)
        assert pool._in_flight == 0
        assert pool.connections == []


async def test_read_timeout_is_read_timeout_and_releases_the_slot(server: _Server) -> None:
    async with _client(server, max_connections=1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/hang", timeout=httpx.Timeout(WAIT, read=0.1))
        pool = _pool(client)
        assert pool._in_flight == 0
        assert pool.connections == []
        (hung,) = server.ports
        await server.closed(hung)
        # The one slot is free again, and a new connection carries the next request.
        assert await _port_of(client.get("/", timeout=httpx.Timeout(WAIT, pool=1.0))) != hung


# 7. aclose


async def test_aclose_closes_idle_connections_and_later_requests_fail(server: _Server) -> None:
    transport = AsyncPooledTransport(limits=httpx.Limits(max_connections=10))
    client = httpx.AsyncClient(base_url=server.url, transport=transport, timeout=WAIT)
    server.gate("a").set()
    ports = await asyncio.gather(*(_port_of(client.get("/gate/a")) for _ in range(3)))
    assert len(set(ports)) == 3
    await client.aclose()
    for port in ports:
        await server.closed(port)
    assert _pool(client).connections == []

    with pytest.raises(httpx.ConnectError, match="connection pool is closed"):
        await transport.handle_async_request(httpx.Request("GET", f"{server.url}/"))
    assert len(server.ports) == 3


async def test_aclose_also_closes_the_connection_of_a_response_still_open(
    server: _Server,
) -> None:
    # As httpcore's pool: closing the client cuts what is still streaming.
    transport = AsyncPooledTransport(limits=httpx.Limits(max_connections=10))
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        response = await client.send(client.build_request("GET", "/big"), stream=True)
        chunks = response.aiter_raw()
        assert await chunks.__anext__()
        await transport.aclose()
        await server.closed(server.ports[0])
        with pytest.raises(httpx.TransportError):
            async for _ in chunks:
                pass
        await response.aclose()
        assert _pool(client).connections == []
        assert _pool(client)._in_flight == 0


# 8. Which clients use the pool


async def test_render_uses_the_pool_for_a_loopback_base_url(server: _Server) -> None:
    render = render_sdk.Render(base_url=server.url)
    try:
        http = render._http.client()
        assert isinstance(http._transport, AsyncPooledTransport)
        limits = pool_limits()
        pool = _pool(http)
        assert pool._max_connections == limits.max_connections
        assert pool._max_keepalive == limits.max_keepalive_connections
        for _ in range(3):
            response = await render._http.request("GET", "/ping", operation="ping")
            assert response.status_code == 200
        (port,) = server.ports
        assert server.connections[port].paths == ["/v1/ping"] * 3
    finally:
        await render.aclose()
    await server.closed(port)


async def test_render_keeps_httpx_transport_for_other_hosts() -> None:
    render = render_sdk.Render(token="x", base_url="https://example.com")
    try:
        transport = render._http.client()._transport
        assert isinstance(transport, httpx.AsyncHTTPTransport)
        assert not isinstance(transport, AsyncPooledTransport)
    finally:
        await render.aclose()


# 9. HTTP/1.1 on the wire (h11 over asyncio streams)


async def test_a_chunked_response_streams_its_parts_and_keeps_the_connection(
    server: _Server,
) -> None:
    async with _client(server) as client:
        async with client.stream("GET", "/chunked") as response:
            parts = [part async for part in response.aiter_raw()]
        assert b"".join(parts) == b"one two three"
        port = await _port_of(client.get("/"))
        assert server.ports == [port]


async def test_a_connection_close_response_is_not_kept(server: _Server) -> None:
    async with _client(server) as client:
        response = await client.get("/close")
        assert response.text == "bye"
        assert _pool(client).connections == []
        await _port_of(client.get("/"))
        assert len(server.ports) == 2


async def test_request_bodies_with_a_length_or_streamed_chunked_arrive_whole(
    server: _Server,
) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(50):
            yield bytes([65 + i % 26]) * 10_000

    async with _client(server) as client:
        sized = await client.post("/echo", content=b"payload" * 1000)
        assert sized.content == b"payload" * 1000
        large = bytes(range(256)) * 8192  # 2 MiB: written as it is, not copied into one frame
        assert (await client.post("/echo", content=large)).content == large
        streamed = await client.post("/echo", content=parts())
        assert streamed.content == b"".join([bytes([65 + i % 26]) * 10_000 for i in range(50)])
        assert len(server.ports) == 1  # both on one kept connection


async def test_an_answer_before_the_whole_body_was_sent_is_returned(server: _Server) -> None:
    # The server refuses an upload from its headers (as the task server's 413) and closes:
    # the client sees that answer, not a write error.
    async with _client(server) as client:
        response = await client.post("/reject", content=b"x" * (16 * 1024 * 1024))
        assert response.status_code == 413
        assert response.content == b"big!"
        assert _pool(client)._in_flight == 0
        assert _pool(client).connections == []


async def test_head_has_no_body_and_header_names_keep_their_case(server: _Server) -> None:
    async with _client(server) as client:
        response = await client.head("/")
        assert response.status_code == 200
        assert response.content == b""
        assert ("X-Kind", "Head") in response.headers.multi_items() or response.headers.raw[-1] == (
            b"X-Kind",
            b"Head",
        )
        assert response.headers["x-kind"] == "Head"
        assert response.http_version == "HTTP/1.1"
        await _port_of(client.get("/"))
        assert len(server.ports) == 1


async def test_other_schemes_go_through_httpxs_own_transport(server: _Server) -> None:
    transport = AsyncPooledTransport(limits=pool_limits())
    async with httpx.AsyncClient(transport=transport) as client:
        # TLS to a port nobody listens on: httpx's transport tries, and cannot connect.
        with pytest.raises(httpx.ConnectError):
            await client.get("https://127.0.0.1:1/")
        assert isinstance(transport._other, httpx.AsyncHTTPTransport)
        assert _pool(client)._in_flight == 0
        await _port_of(client.get(f"{server.url}/"))  # plain http still on the pool
        assert len(_pool(client).connections) == 1
