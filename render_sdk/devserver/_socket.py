"""The task socket: a small HTTP/1.1 server on one Unix socket per attempt.

Each socket belongs to one process (a registration or one attempt of one run) and
answers only that process's calls; the orchestrator supplies the handler. Requests are
parsed here (request line, headers, Content-Length or chunked bodies, keep-alive) and
bodies are handed over as bytes; the handler returns ``(status, body)``.

A socket acts for one process only. Its name is unguessable (:func:`new_socket_path`), but
any process of the same user can list the directory or read another process's
environment, so the name is not the guard: :meth:`TaskSocketServer.bind` names the
process the socket was made for, and every accepted connection is checked against it
through the kernel's peer credentials (``SO_PEERCRED`` on Linux, ``LOCAL_PEERPID`` on
macOS). A connection from any other process is answered 403 and never reaches the
handler. Where the platform reports no peer process, only the unguessable name remains.

Every connection has deadlines (a request's head, then its body must keep coming), and
the bodies all sockets of a server hold at once share one :class:`BodyBudget`; a body that
does not fit is answered 503 before it is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import struct
import sys
import tempfile
from asyncio.trsock import TransportSocket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._constants import (
    BODY_MIN_BYTES,
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    MAX_SOCKET_BODY_BYTES,
    MAX_SOCKET_BUFFERED_BYTES,
)

Handler = Callable[[str, str, bytes], Awaitable[tuple[int, bytes]]]

_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    403: "Forbidden",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_HEADER_BYTES: Final = 64 * 1024
#: Bytes of a body asked of the stream at once.
_READ_SLICE: Final = 1024 * 1024
#: macOS limits sun_path to 104 bytes; leave room for the file name.
_MAX_DIR_LEN: Final = 80
#: Random bytes in a socket's name: 16 URL-safe characters, within the room left above.
_SOCKET_NAME_BYTES: Final = 12
#: How many parents are followed when checking that a peer descends from the owner.
_MAX_ANCESTRY_DEPTH: Final = 64
#: macOS ``getsockopt`` level and option for the peer's pid (``<sys/un.h>``).
_SOL_LOCAL: Final = 0
_LOCAL_PEERPID: Final = 2


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyBudget:
    """The bytes of request bodies every task socket together holds at once.

    A request reserves its body's size before the body is read and gives it back once it
    has been answered; a body that does not fit is refused with a 503 rather than read, so
    memory stays bounded by ``limit`` however many connections send large bodies.
    """

    def __init__(self, limit: int = MAX_SOCKET_BUFFERED_BYTES) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) when they do not fit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        """Return bytes an earlier :meth:`take` reserved."""
        self.used -= size


@dataclass
class _Hold:
    """What one request reserved of the budget (given back when it is done)."""

    budget: BodyBudget
    size: int = 0

    def take(self, size: int) -> None:
        if not self.budget.take(size):
            raise _BadRequest(
                503,
                f"the task server already holds {self.budget.used} bytes of request bodies "
                f"(at most {self.budget.limit} at once); retry this {size}-byte body shortly",
            )
        self.size += size

    def release(self) -> None:
        self.budget.give_back(self.size)
        self.size = 0


class _Deadline:
    """Closes a connection whose request does not arrive in time (slowloris).

    The head has one timer, which trickled bytes do not push back. The body has windows of
    the same length: each in which at least ``min_bytes`` arrived starts the next, so a
    large body keeps coming at any reasonable rate while one that stalls or trickles is
    cut. When it fires the connection is aborted (a peer that reads nothing cannot hold it
    open); a stalled body first gets a 408 if the socket takes it at once. A late head gets
    none: on an idle keep-alive connection it could pass for the answer to a request the
    client is sending just then.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._timer: asyncio.TimerHandle | None = None
        self._seconds = 0.0
        self._min_bytes: int | None = None
        self._window_bytes = 0
        self.expired = False

    def arm(self, seconds: float, *, min_bytes: int | None = None) -> None:
        """Expire in ``seconds`` (a head), or unless ``min_bytes`` arrive per ``seconds``."""
        self.disarm()
        self._seconds = seconds
        self._min_bytes = min_bytes
        self._window_bytes = 0
        self._timer = asyncio.get_running_loop().call_later(seconds, self._tick)

    def progress(self, size: int) -> None:
        """``size`` more bytes of the body arrived."""
        self._window_bytes += size

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if self._min_bytes is not None and self._window_bytes >= self._min_bytes:
            self._window_bytes = 0
            self._timer = asyncio.get_running_loop().call_later(self._seconds, self._tick)
            return
        self.expired = True
        transport = self._writer.transport
        if transport.is_closing():
            return
        if self._min_bytes is not None:
            message = (
                f"request body stalled: less than {self._min_bytes} bytes arrived "
                f"in {self._seconds:g}s"
            )
            with contextlib.suppress(Exception):
                transport.write(_response_bytes(408, error_body(message), close=True))
        transport.abort()


def make_socket_dir() -> Path:
    """A private (0700) directory for the sockets, with a short path.

    ``$TMPDIR`` is used when its path is short enough; otherwise ``/tmp``.
    """
    base = tempfile.gettempdir()
    if len(base) > _MAX_DIR_LEN - 16 and os.path.isdir("/tmp"):
        base = "/tmp"
    path = Path(tempfile.mkdtemp(prefix="rsdk-", dir=base))
    path.chmod(0o700)
    return path


def new_socket_path(directory: Path) -> Path:
    """A fresh, unguessable socket path in ``directory``."""
    return directory / f"{secrets.token_urlsafe(_SOCKET_NAME_BYTES)}.sock"


def peer_pid(sock: socket.socket | TransportSocket) -> int | None:
    """The pid of the process that connected ``sock``, or ``None`` where it is not known."""
    try:
        if sys.platform == "linux":
            pid, _uid, _gid = struct.unpack(
                "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            )
        elif sys.platform == "darwin":
            pid = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERPID)
        else:
            return None
    except OSError:
        return None
    # 0: the peer lives in another pid namespace, where its pid means nothing here.
    return int(pid) if pid > 0 else None


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else None


def belongs_to(peer: int, owner: int) -> bool:
    """Whether process ``peer`` is ``owner``, in ``owner``'s session, or descends from it.

    Task processes lead their own session (the launcher starts them so), and a process
    cannot join a session it is not in, so session membership cannot be forged; the
    ancestry walk (Linux ``/proc``) admits descendants that started a session of their own.
    """
    if peer == owner:
        return True
    try:
        if os.getsid(peer) == owner:
            return True
    except OSError:
        return False
    pid = peer
    for _ in range(_MAX_ANCESTRY_DEPTH):
        parent = _parent_pid(pid)
        if parent is None or parent <= 1:
            return False
        if parent == owner:
            return True
        pid = parent
    return False


def error_body(message: str) -> bytes:
    """An ErrorResponse JSON body."""
    from .. import _wire
    from ..models.tasksocket import ErrorResponse

    return _wire.dumps(ErrorResponse(message=message), _wire.SOCKET)


class TaskSocketServer:
    """One Unix socket serving one process; closed (and unlinked) by :meth:`close`.

    Connections wait until :meth:`bind` names the process the socket serves (the process
    may connect before its launcher returns its pid); then each is served only if its peer
    :func:`belongs_to` that process, and answered 403 otherwise.
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        body_timeout_s: float = BODY_TIMEOUT_S,
        budget: BodyBudget | None = None,
    ) -> None:
        """Args:
        path: Where to listen.
        handler: Answers each request.
        header_timeout_s: Seconds a connection has to send a request's head, from
            connecting or from the previous answer.
        body_timeout_s: Windows in which the body must then bring ``BODY_MIN_BYTES``
            (or the rest of it).
        budget: Shared by every socket of a server (bodies held at once, all sockets
            together); a socket made without one has its own.
        """
        self.path = path
        self._handler = handler
        self._header_timeout_s = header_timeout_s
        self._body_timeout_s = body_timeout_s
        self._budget = budget if budget is not None else BodyBudget()
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._owner: asyncio.Future[int] | None = None
        self.refused = 0

    def bind(self, pid: int) -> None:
        """Serve only process ``pid`` (with its session and descendants). Call once."""
        self._owner_future().set_result(pid)

    def _owner_future(self) -> asyncio.Future[int]:
        if self._owner is None:
            self._owner = asyncio.get_running_loop().create_future()
        return self._owner

    async def start(self) -> None:
        """Listen on the socket path."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)

    async def close(self) -> None:
        """Stop listening, drop open connections and remove the socket file."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._conns):
            task.cancel()
        for task in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        deadline = _Deadline(writer)
        hold = _Hold(self._budget)
        try:
            if not await self._admit(reader, writer, deadline, hold):
                return
            while True:
                try:
                    request = await self._read(reader, deadline, hold)
                except _BadRequest as exc:
                    await _respond(writer, exc.status, error_body(str(exc)), close=True)
                    return
                if request is None:
                    return
                method, path, body, keep_alive = request
                try:
                    status, payload = await self._handler(method, path, body)
                except Exception as exc:  # a handler bug must not kill the runner's call
                    status, payload = 500, error_body(f"internal error: {exc}")
                del body
                hold.release()
                await _respond(writer, status, payload, close=not keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # close() cancels open connections. This task is the connection's outermost
            # frame; ending it normally keeps asyncio's stream callback from logging it.
            return
        finally:
            deadline.disarm()
            hold.release()
            if task is not None:
                self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(
        self, reader: asyncio.StreamReader, deadline: _Deadline, hold: _Hold
    ) -> tuple[str, str, bytes, bool] | None:
        """The next request, within the head and body deadlines; None at a clean end."""
        deadline.arm(self._header_timeout_s)
        try:
            return await _read_request(
                reader,
                hold,
                deadline,
                on_head=lambda: deadline.arm(self._body_timeout_s, min_bytes=BODY_MIN_BYTES),
            )
        except (_BadRequest, asyncio.IncompleteReadError, ConnectionError):
            if deadline.expired:
                return None  # already answered 408 and aborted
            raise
        finally:
            deadline.disarm()

    async def _admit(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        deadline: _Deadline,
        hold: _Hold,
    ) -> bool:
        """Whether the peer may use this socket; a refused peer gets 403 (after its request).

        The request is read before answering (within the same deadlines and budget), so
        that the peer sees the 403 rather than a broken pipe while it is still sending.
        """
        owner = await asyncio.shield(self._owner_future())
        peer = peer_pid(writer.get_extra_info("socket"))
        if peer is None and sys.platform not in ("linux", "darwin"):
            return True
        if peer is not None and belongs_to(peer, owner):
            return True
        self.refused += 1
        with contextlib.suppress(
            _BadRequest, asyncio.IncompleteReadError, asyncio.LimitOverrunError
        ):
            await self._read(reader, deadline, hold)
        hold.release()
        if deadline.expired:
            return False
        message = (
            f"this task socket belongs to another task attempt; process {peer} is not part of it"
        )
        await _respond(writer, 403, error_body(message), close=True)
        return False


async def _read_request(
    reader: asyncio.StreamReader,
    hold: _Hold,
    deadline: _Deadline,
    *,
    on_head: Callable[[], None],
) -> tuple[str, str, bytes, bool] | None:
    """One request; its body's bytes are reserved in ``hold`` before they are read, and
    their arrival is reported to ``deadline``."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise _BadRequest(400, "incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise _BadRequest(400, "request head too large") from None
    on_head()
    if len(head) > _MAX_HEADER_BYTES:
        raise _BadRequest(400, "request head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, f"malformed request line {lines[0]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, f"malformed header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, hold, deadline)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest(400, "invalid Content-Length") from None
        if length < 0:
            raise _BadRequest(400, "invalid Content-Length")
        if length > MAX_SOCKET_BODY_BYTES:
            raise _BadRequest(413, f"body larger than {MAX_SOCKET_BODY_BYTES} bytes")
        hold.take(length)
        body = await _read_exactly(reader, length, deadline)
    path = target.split("?", 1)[0]
    return method.upper(), path, body, keep_alive


async def _read_exactly(reader: asyncio.StreamReader, size: int, deadline: _Deadline) -> bytes:
    """``size`` bytes, read in slices so that the deadline sees the body progress."""
    parts: list[bytes] = []
    missing = size
    while missing:
        part = await reader.read(min(missing, _READ_SLICE))
        if not part:
            raise asyncio.IncompleteReadError(b"".join(parts), size)
        deadline.progress(len(part))
        parts.append(part)
        missing -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)  # no copy for one slice


async def _read_chunked(reader: asyncio.StreamReader, hold: _Hold, deadline: _Deadline) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadRequest(400, "malformed chunk size") from None
        if size == 0:
            # Trailers end with an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_SOCKET_BODY_BYTES:
            raise _BadRequest(413, f"body larger than {MAX_SOCKET_BODY_BYTES} bytes")
        # Twice: the chunks, then their join.
        hold.take(2 * size)
        chunks.append(await _read_exactly(reader, size, deadline))
        await reader.readexactly(2)


def _response_bytes(status: int, body: bytes, *, close: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes, *, close: bool) -> None:
    writer.write(_response_bytes(status, body, close=close))
    await writer.drain()
