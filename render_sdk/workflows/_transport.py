"""HTTP/1.1 over the task server's Unix socket: protocol logic, then two thin shells.

The pure part builds requests, parses responses incrementally, maps statuses to
errors and computes retry delays. :class:`SyncSocketClient` (register mode: no event
loop needed, which keeps registration fast) and :class:`AsyncSocketClient` (run mode:
concurrent subtask calls) only move bytes. The blocking client keeps one connection for
all of its calls; the asyncio client uses a connection per request (``Connection: close``).

Socket and timeout exceptions become ``RenderError`` subclasses here and nowhere else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .. import _errors
from .._version import __version__
from . import _constants as C

if TYPE_CHECKING:
    import asyncio

    import betterproto2

M = TypeVar("M", bound="betterproto2.Message")

__all__ = [
    "AsyncSocketClient",
    "Response",
    "ResponseParser",
    "SyncSocketClient",
    "TransportPolicy",
    "build_request",
    "error_for_response",
    "is_transient",
]


@dataclass(frozen=True)
class TransportPolicy:
    """Retry and wait timings of the socket client (tests inject small values)."""

    max_attempts: int = C.TRANSPORT_MAX_ATTEMPTS
    backoff_base_s: float = C.TRANSPORT_BACKOFF_BASE_S
    backoff_cap_s: float = C.TRANSPORT_BACKOFF_CAP_S
    request_timeout_s: float = C.REQUEST_TIMEOUT_S
    subtask_wait_ms: int = C.SUBTASK_WAIT_MS
    poll_base_s: float = C.POLL_BASE_S
    poll_cap_s: float = C.POLL_CAP_S
    subtask_wait_limit_s: float = C.SUBTASK_WAIT_LIMIT_S

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based)."""
        return min(self.backoff_base_s * 2.0**attempt, self.backoff_cap_s)

    def poll_delay(self, fast_answers: int) -> float:
        """Seconds to wait before re-asking a server that did not long-poll."""
        return min(self.poll_base_s * 2.0**fast_answers, self.poll_cap_s)


def user_agent() -> str:
    """The User-Agent of socket requests, in the client's format.

    Built from ``sys`` and ``os`` rather than ``platform``, which the task process
    would otherwise import on every start.
    """
    machine = os.uname().machine.lower() if hasattr(os, "uname") else "unknown"
    version = ".".join(str(v) for v in sys.version_info[:3])
    return (
        f"render-sdk-python/{__version__} "
        f"({sys.implementation.name}/{version}; {sys.platform}/{machine})"
    )


_USER_AGENT: Final = user_agent()


def build_request(
    method: str, path: str, body: bytes | None = None, *, keep_alive: bool = False
) -> bytes:
    """The bytes of one HTTP/1.1 request on the task socket."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {C.SOCKET_HOST}",
        f"User-Agent: {_USER_AGENT}",
        "Accept: application/json",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + (body or b"")


class ProtocolError(Exception):
    """The server's answer is not valid HTTP/1.1."""


@dataclass
class Response:
    """A complete HTTP response."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ResponseParser:
    """Incremental HTTP/1.1 response parser (Content-Length, chunked, or until EOF)."""

    _buf: bytearray = field(default_factory=bytearray)
    _head: tuple[int, str, dict[str, str]] | None = None
    _result: Response | None = None

    def feed(self, data: bytes) -> Response | None:
        """Add bytes read from the socket; returns the response once it is complete."""
        self._buf += data
        return self._advance(eof=False)

    def feed_eof(self) -> Response:
        """The server closed the connection; the response must be complete now."""
        result = self._advance(eof=True)
        if result is None:
            raise ProtocolError("the server closed the connection before the response ended")
        return result

    def _advance(self, *, eof: bool) -> Response | None:
        if self._result is not None:
            return self._result
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > C.MAX_RESPONSE_HEAD_BYTES:
                    raise ProtocolError("response headers are too large")
                return None
            self._head = _parse_head(bytes(self._buf[:end]))
            del self._buf[: end + 4]
        status, reason, headers = self._head
        body: bytes | None
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _dechunk(self._buf)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise ProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
            if length < 0 or length > C.MAX_RESPONSE_BODY_BYTES:
                raise ProtocolError(f"bad Content-Length {length}")
            body = bytes(self._buf[:length]) if len(self._buf) >= length else None
        else:
            body = bytes(self._buf) if eof else None
        if body is None:
            if len(self._buf) > C.MAX_RESPONSE_BODY_BYTES:
                raise ProtocolError("response body is too large")
            return None
        self._result = Response(status, reason, headers, body)
        return self._result


def _parse_head(raw: bytes) -> tuple[int, str, dict[str, str]]:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise ProtocolError("undecodable response head") from None
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _dechunk(buf: bytearray) -> bytes | None:
    out = bytearray()
    pos = 0
    while True:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        size_text = bytes(buf[pos:end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        pos = end + 2
        if size == 0:
            # Trailers (rare) end with an empty line.
            trailer_end = buf.find(b"\r\n", pos)
            while trailer_end >= 0 and trailer_end != pos:
                pos = trailer_end + 2
                trailer_end = buf.find(b"\r\n", pos)
            return bytes(out) if trailer_end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


def _error_message(body: bytes) -> str:
    if not body:
        return "(empty body)"
    from .. import _wire
    from .._gen.render.tasksocket.v1 import ErrorResponse

    try:
        message = _wire.loads(ErrorResponse, body, _wire.SOCKET).message
    except _errors.WireFormatError:
        message = ""
    return message or body[: C.ERROR_BODY_PREFIX_BYTES].decode("utf-8", "replace").strip()


def error_for_response(response: Response, operation: str) -> _errors.RenderError:
    """The error a non-2xx answer stands for (429 and 5xx are transient)."""
    status = response.status
    text = f"{operation} failed with status {status}: {_error_message(response.body)}"
    if status == 429:
        retry_after: float | None
        try:
            retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        return _errors.RateLimitError(text, status_code=status, retry_after=retry_after)
    if status >= 500:
        return _errors.ServerError(text, status_code=status)
    return _errors.ClientError(text, status_code=status)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed request may succeed when sent again."""
    return isinstance(exc, _errors.ServerError | _errors.TimeoutError | _errors.RateLimitError)


def _translate(exc: BaseException, operation: str, socket_path: str) -> _errors.RenderError:
    # builtins.TimeoutError is also socket.timeout and (3.11+) asyncio.TimeoutError.
    if isinstance(exc, TimeoutError):
        return _errors.TimeoutError(f"{operation} timed out on the task socket {socket_path}")
    if isinstance(exc, ProtocolError):
        return _errors.ServerError(f"{operation} failed: malformed HTTP response: {exc}")
    return _errors.ServerError(
        f"{operation} failed: cannot reach the task server at {socket_path}: "
        f"{type(exc).__name__}: {exc}"
    )


def _encode(message: betterproto2.Message | None) -> bytes | None:
    if message is None:
        return None
    from .. import _wire

    return _wire.dumps(message, _wire.SOCKET)


def _decode(response: Response, response_cls: type[M] | None) -> M | None:
    if response_cls is None:
        return None
    from .. import _wire

    return _wire.loads(response_cls, response.body or b"{}", _wire.SOCKET)


def _answer(response: Response, response_cls: type[M] | None, operation: str) -> M | None:
    """The decoded 2xx answer, or the error any other status stands for."""
    if not 200 <= response.status < 300:
        raise error_for_response(response, operation)
    return _decode(response, response_cls)


def _delay_before_retry(
    exc: _errors.RenderError, attempt: int, policy: TransportPolicy, operation: str
) -> float:
    """Seconds to wait before sending again after failed ``attempt``; says so on stderr.

    Raises:
        RenderError: ``exc`` itself, when it is not transient or no attempt is left.
    """
    if not is_transient(exc) or attempt + 1 >= policy.max_attempts:
        raise exc
    delay = policy.retry_delay(attempt)
    if isinstance(exc, _errors.RateLimitError) and exc.retry_after is not None:
        # Honour the server's hint, within the same cap.
        delay = min(max(delay, exc.retry_after), policy.backoff_cap_s)
    sys.stderr.write(
        f"render_sdk: {operation}: attempt {attempt + 1}/{policy.max_attempts} failed, "
        f"retrying in {delay:g}s: {exc}\n"
    )
    sys.stderr.flush()
    return delay


_EXCHANGE_ERRORS: Final = (OSError, ProtocolError)
#: A send that fails so may still have an answer waiting: the server answered (413, 503)
#: and closed before reading the whole request.
_BROKEN_SEND: Final = (BrokenPipeError, ConnectionResetError)


def answer_at_eof(parser: ResponseParser, send_error: OSError | None) -> Response:
    """The response once the server closed the connection.

    Raises:
        OSError: ``send_error`` when the request could not be sent and no whole answer
            came back (the server went away rather than refused the request).
        ProtocolError: The answer ends early.
    """
    try:
        return parser.feed_eof()
    except ProtocolError:
        if send_error is not None:
            raise send_error from None
        raise


def _send_failed(sending: asyncio.Task[None]) -> OSError | None:
    if not sending.done() or sending.cancelled():
        return None
    exc = sending.exception()
    return exc if isinstance(exc, OSError) else None


class _StaleConnection(Exception):
    """A kept connection was closed by the server before it answered anything."""


class SyncSocketClient:
    """Blocking client of the task socket (used where no event loop is needed).

    One connection is kept for all of a process's calls (``/input`` then ``/callback``),
    so each attempt connects, and is admitted by the server, once. A kept connection the
    server closed while idle is replaced transparently: nothing was read from it, so the
    request is sent again on a new one.
    """

    def __init__(
        self,
        socket_path: str,
        *,
        policy: TransportPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        import time

        self.socket_path = socket_path
        self.policy = policy or TransportPolicy()
        self._sleep = sleep or time.sleep
        self._sock: Any = None

    def close(self) -> None:
        """Close the kept connection (idempotent); the next call opens a new one."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _exchange(self, request: bytes) -> Response:
        import time

        deadline = time.monotonic() + self.policy.request_timeout_s
        if self._sock is not None:
            try:
                response = self._exchange_on(self._sock, request, deadline, reused=True)
            except _StaleConnection:
                # The server closed the kept connection while it was idle (before reading
                # this request): send it again on a new one.
                self.close()
            except BaseException:
                self.close()
                raise
            else:
                return self._keep_or_close(response)
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.policy.request_timeout_s)
            sock.connect(self.socket_path)
            response = self._exchange_on(sock, request, deadline, reused=False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        return self._keep_or_close(response)

    def _keep_or_close(self, response: Response) -> Response:
        if "close" in response.headers.get("connection", "").lower():
            self.close()
        return response

    @staticmethod
    def _exchange_on(sock: Any, request: bytes, deadline: float, *, reused: bool) -> Response:
        import time

        parser = ResponseParser()
        received = False
        send_error: OSError | None = None
        try:
            sock.sendall(request)
        except _BROKEN_SEND as exc:
            send_error = exc  # the server may have answered before it stopped reading
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(C.READ_SIZE)
            except ConnectionResetError:
                if reused and not received:
                    raise _StaleConnection from None
                if send_error is None:
                    raise
                chunk = b""
            if not chunk:
                if reused and not received:
                    # Nothing came back on a connection the server had closed while it was
                    # idle: it never read this request.
                    raise _StaleConnection
                return answer_at_eof(parser, send_error)
            received = True
            done = parser.feed(chunk)
            if done is not None:
                return done

    def call(
        self,
        method: str,
        path: str,
        message: betterproto2.Message | None,
        response_cls: type[M] | None,
        *,
        operation: str,
    ) -> M | None:
        """Send one request, retrying transient failures; decode the 2xx answer.

        Raises:
            ClientError: A 4xx answer (other than 429): not retried.
            ServerError, TimeoutError, RateLimitError: Still failing after every attempt.
            WireFormatError: The answer does not match ``response_cls``.
        """
        request = build_request(method, path, _encode(message), keep_alive=True)
        for attempt in range(self.policy.max_attempts):
            try:
                try:
                    response = self._exchange(request)
                except _EXCHANGE_ERRORS as exc:
                    raise _translate(exc, operation, self.socket_path) from exc
                return _answer(response, response_cls, operation)
            except _errors.RenderError as exc:
                self._sleep(_delay_before_retry(exc, attempt, self.policy, operation))
        raise AssertionError("unreachable")  # pragma: no cover


class AsyncSocketClient:
    """asyncio client of the task socket; concurrent calls use separate connections."""

    def __init__(
        self,
        socket_path: str,
        *,
        policy: TransportPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        import asyncio

        self.socket_path = socket_path
        self.policy = policy or TransportPolicy()
        self._sleep = sleep or asyncio.sleep
        # The wait for a connection slot is not part of a request's timeout.
        self._slots = asyncio.Semaphore(C.MAX_CONCURRENT_REQUESTS)

    async def _exchange(self, request: bytes, timeout: float) -> Response:
        import asyncio
        import socket

        async def exchange() -> Response:
            # Raw socket calls rather than streams: a stream whose write failed raises
            # that error on every read, hiding the answer the server sent before it
            # stopped reading (a 413 or 503 for a large body). The request is sent while
            # the answer is read, so an early answer ends the exchange at once.
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, self.socket_path)
                sending = loop.create_task(loop.sock_sendall(sock, request))
                parser = ResponseParser()
                try:
                    while True:
                        try:
                            chunk = await loop.sock_recv(sock, C.READ_SIZE)
                        except ConnectionResetError:
                            if not _send_failed(sending):
                                raise
                            chunk = b""
                        if not chunk:
                            send_error = _send_failed(sending)
                            return answer_at_eof(parser, send_error)
                        done = parser.feed(chunk)
                        if done is not None:
                            return done
                finally:
                    if not sending.done():
                        sending.cancel()
                    # Waited for, not awaited: its own error is read below, and a
                    # cancellation of this exchange still propagates.
                    await asyncio.wait([sending])
                    if not sending.cancelled():
                        sending.exception()

        try:
            return await asyncio.wait_for(exchange(), timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise TimeoutError from None

    async def call(
        self,
        method: str,
        path: str,
        message: betterproto2.Message | None,
        response_cls: type[M] | None,
        *,
        operation: str,
        timeout: float | None = None,
    ) -> M | None:
        """Send one request, retrying transient failures; decode the 2xx answer.

        Raises:
            ClientError: A 4xx answer (other than 429): not retried.
            ServerError, TimeoutError, RateLimitError: Still failing after every attempt.
            WireFormatError: The answer does not match ``response_cls``.
        """
        request = build_request(method, path, _encode(message))
        limit = timeout if timeout is not None else self.policy.request_timeout_s
        for attempt in range(self.policy.max_attempts):
            try:
                try:
                    async with self._slots:
                        response = await self._exchange(request, limit)
                except _EXCHANGE_ERRORS as exc:
                    raise _translate(exc, operation, self.socket_path) from exc
                return _answer(response, response_cls, operation)
            except _errors.RenderError as exc:
                await self._sleep(_delay_before_retry(exc, attempt, self.policy, operation))
        raise AssertionError("unreachable")  # pragma: no cover
