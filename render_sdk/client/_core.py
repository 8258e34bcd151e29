"""Client core shared by the REST client and object storage: configuration, transport, errors.

Everything here except :class:`AsyncHTTP` / :class:`SyncHTTP` is pure (no I/O), so the
async and the sync clients share it:

* :func:`resolve_config` turns constructor arguments and ``RENDER_*`` variables into a
  :class:`ClientConfig` (API base ending in ``/v1``, token, owner/region defaults, headers).
* :func:`error_from_response` maps a non-2xx response (body already read) to the
  :class:`~render_sdk.client.errors.RenderError` tree.
* :func:`map_transport_errors` is the one place httpx exceptions are translated.
* :func:`retry_delay` / :func:`parse_retry_after` / :func:`is_retryable_status` are the
  backoff policy.

:class:`AsyncHTTP` and :class:`SyncHTTP` own the pooled ``httpx.AsyncClient`` /
``httpx.Client`` and send API requests with those rules applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import email.utils
import os
import platform
import random
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import _wire
from .._errors import (
    ClientError,
    ConfigurationError,
    RateLimitError,
    RenderError,
    ServerError,
    TimeoutError,
    WireFormatError,
)
from .._version import __version__
from ..models import Error
from . import _constants as C
from ._pool import AsyncPooledTransport

__all__ = [
    "AsyncHTTP",
    "ClientConfig",
    "ConfigurationError",
    "QueryParams",
    "SyncHTTP",
    "error_for_status",
    "error_from_response",
    "is_retryable_status",
    "map_transport_errors",
    "parse_retry_after",
    "query_params",
    "resolve_config",
    "retry_delay",
    "transport_error",
    "user_agent",
]

#: Query parameters as httpx takes them: repeated keys are lists.
QueryParams = dict[str, str | int | list[str]]


# --------------------------------------------------------------------------- configuration


def user_agent() -> str:
    """The User-Agent sent on every API request.

    ``render-sdk-python/<version> (<implementation>/<python version>; <os>/<arch>)``, for
    example ``render-sdk-python/0.5.0 (cpython/3.12.3; linux/x86_64)``.
    """
    impl = platform.python_implementation().lower()
    return (
        f"render-sdk-python/{__version__} ({impl}/{platform.python_version()}; "
        f"{platform.system().lower()}/{platform.machine().lower()})"
    )


@dataclass(frozen=True)
class ClientConfig:
    """The resolved configuration of a client.

    Attributes:
        base_url: The server's URL without ``/v1`` and without a trailing slash.
        api_base: ``base_url`` + ``/v1``; every API path is relative to it.
        token: The API key, or None (only allowed against a local server).
        owner_id: Default workspace (owner) id for object storage, or None.
        region: Default region for object storage, or None.
        local: True when talking to a local task server (token optional).
        timeout: Per-request timeouts.
        max_retries: Retries of idempotent requests after transient failures.
        headers: Headers for API requests: User-Agent, Accept, and Authorization only
            when there is a token. Not for presigned object-storage URLs.
    """

    base_url: str
    api_base: str
    token: str | None
    owner_id: str | None
    region: str | None
    local: bool
    timeout: httpx.Timeout
    max_retries: int
    headers: Mapping[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``/task-runs``."""
        return self.api_base + path


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _normalize_base_url(url: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        url = "https://" + url
    url = url.rstrip("/")
    if url.endswith(C.API_PREFIX):
        url = url[: -len(C.API_PREFIX)]
    return url


def resolve_config(
    *,
    token: str | None = None,
    base_url: str = C.DEFAULT_BASE_URL,
    owner_id: str | None = None,
    region: str | None = None,
    timeout: float | httpx.Timeout | None = C.DEFAULT_TIMEOUT,
    max_retries: int = C.DEFAULT_MAX_RETRIES,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Resolve constructor arguments and ``RENDER_*`` environment variables.

    Base URL: an explicitly passed ``base_url`` (anything but the default) wins; else
    ``RENDER_LOCAL_DEV_URL`` when set; else ``http://localhost:8120`` when
    ``RENDER_USE_LOCAL_DEV`` is one of ``1 t T true TRUE True``; else Render's API.
    A missing scheme means ``https://``; ``/v1`` is appended.

    Token: ``token``, else ``RENDER_API_KEY``. Required against Render; optional in
    local mode (the local-dev variables, or a loopback base URL), where no
    ``Authorization`` header is sent without one.

    Raises:
        ConfigurationError: No token against Render, or a negative ``max_retries``.
    """
    env = os.environ if environ is None else environ
    local_url = _env(env, C.ENV_LOCAL_DEV_URL)
    use_local = env.get(C.ENV_USE_LOCAL_DEV, "").strip() in C.TRUTHY_VALUES
    if base_url != C.DEFAULT_BASE_URL:
        chosen = base_url
    elif local_url is not None:
        chosen = local_url
    elif use_local:
        chosen = C.DEFAULT_LOCAL_DEV_URL
    else:
        chosen = base_url
    root = _normalize_base_url(chosen)
    host = (urlsplit(root).hostname or "").lower()
    local = local_url is not None or use_local or host in C.LOOPBACK_HOSTS

    resolved_token = token if token is not None else _env(env, C.ENV_API_KEY)
    if not resolved_token:
        resolved_token = None
        if not local:
            raise ConfigurationError(
                "Either provide a token or set the RENDER_API_KEY environment variable "
                "(a token is optional only against a local task server: set "
                "RENDER_USE_LOCAL_DEV=true or RENDER_LOCAL_DEV_URL)"
            )
    if max_retries < 0:
        raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}")

    if isinstance(timeout, httpx.Timeout):
        resolved_timeout = timeout
    else:
        resolved_timeout = httpx.Timeout(timeout, connect=C.DEFAULT_CONNECT_TIMEOUT)

    headers = {"User-Agent": user_agent(), "Accept": "application/json"}
    if resolved_token:
        headers["Authorization"] = f"Bearer {resolved_token}"
    return ClientConfig(
        base_url=root,
        api_base=root + C.API_PREFIX,
        token=resolved_token,
        owner_id=owner_id or _env(env, C.ENV_WORKSPACE_ID),
        region=region or _env(env, C.ENV_REGION),
        local=local,
        timeout=resolved_timeout,
        max_retries=max_retries,
        headers=headers,
    )


def query_params(data: Mapping[str, Any]) -> QueryParams:
    """Query parameters from a message's REST dict: lists repeat the key, empty/None dropped."""
    params: QueryParams = {}
    for key, value in data.items():
        if value is None or value == [] or value == "":
            continue
        if isinstance(value, list):
            params[key] = [str(v) for v in value]
        elif isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif isinstance(value, int):
            params[key] = value
        else:
            params[key] = str(value)
    return params


# --------------------------------------------------------------------------- errors


def _body_prefix(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    if len(text) > C.ERROR_BODY_PREFIX:
        return text[: C.ERROR_BODY_PREFIX] + f"... ({len(text)} characters)"
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns None when the header is absent or unparsable; never a negative number.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        current = time.time() if now is None else now
        seconds = when.timestamp() - current
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_from_response(response: httpx.Response, operation: str) -> RenderError:
    """Map a non-2xx response whose body has been read to a :class:`RenderError`.

    429 is :class:`RateLimitError` (``retry_after`` from ``Retry-After``), other 4xx
    :class:`ClientError`, everything else :class:`ServerError`. The message, id and code
    come from the ``{"id", "message", "code"}`` error body; a body that is not such JSON
    gives a message quoting (a bounded prefix of) it.
    """
    status = response.status_code
    message: str | None = None
    error_id: str | None = None
    code: str | None = None
    raw = b""
    with contextlib.suppress(httpx.ResponseNotRead):
        raw = response.content
    if raw.strip():
        try:
            data = _wire.parse_json(raw)
        except WireFormatError:
            message = f"server returned a non-JSON response: {_body_prefix(raw)}"
        else:
            try:
                err = _wire.from_dict(Error, data, _wire.REST)
            except WireFormatError:
                message = f"server returned an unexpected error body: {_body_prefix(raw)}"
            else:
                message, error_id, code = err.message, err.id, err.code
                if not message and isinstance(data, dict):
                    # Some endpoints answer {"error": "..."} instead of the documented shape.
                    alt = data.get("error")
                    if isinstance(alt, str) and alt:
                        message = alt
                if not message:
                    message = (
                        f"server returned an error body without a message: {_body_prefix(raw)}"
                    )
    if not message:
        message = response.reason_phrase or "no error details"
    text = f"{operation} failed with status {status}: {message}"
    if error_id:
        text += f" (ID: {error_id})"
    return error_for_status(response, text, error_id=error_id, code=code)


def error_for_status(
    response: httpx.Response,
    text: str,
    *,
    error_id: str | None = None,
    code: str | None = None,
) -> RenderError:
    """The error class a failed response's status stands for, carrying ``text``.

    429 is :class:`RateLimitError` (``retry_after`` from ``Retry-After``), other 4xx
    :class:`ClientError`, everything else :class:`ServerError`; ``status_code`` is set.
    """
    status = response.status_code
    if status == 429:
        return RateLimitError(
            text,
            status_code=status,
            error_id=error_id,
            code=code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if 400 <= status < 500:
        return ClientError(text, status_code=status, error_id=error_id, code=code)
    return ServerError(text, status_code=status, error_id=error_id, code=code)


def transport_error(exc: Exception, operation: str) -> RenderError:
    """Translate an httpx exception into the :class:`RenderError` tree (not raised here)."""
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError(f"{operation} timed out: {exc or type(exc).__name__}")
    if isinstance(exc, httpx.TransportError | httpx.StreamError):
        # Connection refused/reset, DNS failure, a connection dropped mid-response:
        # the server (or the path to it) failed, so these count as transient.
        detail = str(exc) or type(exc).__name__
        return ServerError(f"{operation} failed: network error: {detail}")
    return RenderError(f"{operation} failed with unexpected error: {exc}")


@contextlib.contextmanager
def map_transport_errors(operation: str) -> Iterator[None]:
    """The one place httpx exceptions become render_sdk errors (chained ``from exc``)."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise transport_error(exc, operation) from exc
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"{operation} failed: invalid URL: {exc}") from exc


# --------------------------------------------------------------------------- backoff policy


def is_retryable_status(status: int) -> bool:
    """Whether an idempotent request that got ``status`` may be sent again."""
    return status in C.RETRYABLE_STATUSES


def retry_delay(
    attempt: int,
    *,
    retry_after: float | None = None,
    initial: float = C.INITIAL_RETRY_DELAY,
    maximum: float = C.MAX_RETRY_DELAY,
    jitter: float = C.RETRY_JITTER,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    The server's ``Retry-After`` wins when it is given and not longer than
    ``MAX_RETRY_AFTER``; otherwise exponential backoff ``initial * 2**attempt`` capped
    at ``maximum``, minus up to ``jitter`` of it at random.
    """
    if retry_after is not None and 0 <= retry_after <= C.MAX_RETRY_AFTER:
        return retry_after
    base: float = min(initial * (2.0**attempt), maximum)
    return base * (1.0 - jitter * rand())


def _may_retry(error: RenderError, *, idempotent: bool) -> bool:
    if isinstance(error, RateLimitError):
        # 429 means the request was refused, so even a POST was not acted upon.
        return error.retry_after is None or error.retry_after <= C.MAX_RETRY_AFTER
    if not idempotent:
        # A POST is retried only when it provably never reached the server: the
        # httpx exception that map_transport_errors chained says whether it connected.
        return isinstance(error.__cause__, httpx.ConnectError | httpx.ConnectTimeout)
    if error.status_code is not None:
        return is_retryable_status(error.status_code)
    return isinstance(error, ServerError | TimeoutError)


# --------------------------------------------------------------------------- transports


@dataclass
class _Plan:
    """One API request, prepared once and sent one or more times."""

    method: str
    url: str
    operation: str
    params: QueryParams | None
    content: bytes | None
    headers: dict[str, str]
    idempotent: bool
    max_retries: int

    def failure(self, response: httpx.Response) -> tuple[RenderError, float | None]:
        """The error a non-2xx answer stands for, and the server's ``Retry-After``."""
        error = error_from_response(response, self.operation)
        return error, parse_retry_after(response.headers.get("Retry-After"))

    def delay_before_retry(
        self, attempt: int, error: RenderError, retry_after: float | None
    ) -> float:
        """Seconds to wait before sending again after failed ``attempt`` (0-based).

        Raises:
            RenderError: ``error`` itself, when the request must not be sent again.
        """
        if attempt >= self.max_retries or not _may_retry(error, idempotent=self.idempotent):
            raise error
        return retry_delay(attempt, retry_after=retry_after)


def _plan(
    config: ClientConfig,
    method: str,
    path: str,
    *,
    operation: str,
    params: QueryParams | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    idempotent: bool | None = None,
    max_retries: int | None = None,
) -> _Plan:
    merged = dict(config.headers)
    if content is not None:
        merged["Content-Type"] = "application/json"
    if headers:
        merged.update(headers)
    method = method.upper()
    return _Plan(
        method=method,
        url=path if path.startswith(("http://", "https://")) else config.url(path),
        operation=operation,
        params=params,
        content=content,
        headers=merged,
        idempotent=method in C.IDEMPOTENT_METHODS if idempotent is None else idempotent,
        max_retries=config.max_retries if max_retries is None else max_retries,
    )


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is a loopback name or address."""
    return (urlsplit(url).hostname or "") in C.LOOPBACK_HOSTS


def pool_limits() -> httpx.Limits:
    """The connection pool's limits (``MAX_CONNECTIONS``, all of them kept alive)."""
    return httpx.Limits(
        max_connections=C.MAX_CONNECTIONS, max_keepalive_connections=C.MAX_KEEPALIVE_CONNECTIONS
    )


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    # Parked at its yield for the life of the loop: asyncio.run() (and asyncio.Runner)
    # close every live async generator before closing the loop, which runs this
    # `finally` on that loop. Without it, a pool left behind by a finished
    # asyncio.run() would leak its sockets (ResourceWarning: unclosed transport).
    try:
        yield
    finally:
        await client.aclose()


class AsyncHTTP:
    """The pooled ``httpx.AsyncClient`` of one client, plus API requests with retries.

    The pool is created on first use in the running event loop. When a later call runs in
    a different loop (a second ``asyncio.run``), a fresh pool is made for it, because
    httpx connections are bound to the loop that opened them; each pool is closed by
    :meth:`aclose` or, at the latest, when its loop shuts down.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self._client = http_client
        self._owned = http_client is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: AsyncGenerator[None, None] | None = None
        self._sleep = sleep or asyncio.sleep

    def client(self) -> httpx.AsyncClient:
        """The pooled client for the running event loop (created on first use)."""
        if not self._owned:
            assert self._client is not None
            return self._client
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._loop is not loop:
            if is_loopback(self.config.base_url):
                # Many runs in flight keep many connections; httpcore's pool costs CPU per
                # kept connection on every request (see _pool). Only for loopback, where no
                # proxy applies: a custom transport turns off httpx's proxy variables.
                client = httpx.AsyncClient(
                    timeout=self.config.timeout,
                    follow_redirects=False,
                    transport=AsyncPooledTransport(limits=pool_limits()),
                )
            else:
                client = httpx.AsyncClient(
                    timeout=self.config.timeout, follow_redirects=False, limits=pool_limits()
                )
            closer = _close_with_loop(client)
            # Run the generator to its `yield` now; this registers it with the loop.
            step = closer.__anext__()
            with contextlib.suppress(StopIteration):
                step.send(None)
            self._client, self._loop, self._closer = client, loop, closer
        return self._client

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running loop (injectable for tests)."""
        await self._sleep(seconds)

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: QueryParams | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        max_retries: int | None = None,
    ) -> httpx.Response:
        """Send an API request; return the 2xx response (body read) or raise.

        Idempotent requests are retried on transient failures with jittered backoff
        honouring ``Retry-After``; others only when they never reached the server.

        Raises:
            RenderError: ClientError / RateLimitError / ServerError / TimeoutError.
        """
        plan = _plan(
            self.config,
            method,
            path,
            operation=operation,
            params=params,
            content=content,
            headers=headers,
            idempotent=idempotent,
            max_retries=max_retries,
        )
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                with map_transport_errors(plan.operation):
                    response = await self.client().request(
                        plan.method,
                        plan.url,
                        params=plan.params,
                        content=plan.content,
                        headers=plan.headers,
                    )
                if response.is_success:
                    return response
                error, retry_after = plan.failure(response)
            except RenderError as exc:
                error = exc
            await self.sleep(plan.delay_before_retry(attempt, error, retry_after))
            attempt += 1

    async def aclose(self) -> None:
        """Close the pool (when this object created it). Safe to call twice."""
        if not self._owned or self._client is None:
            return
        closer = self._closer
        self._client = self._closer = None
        if self._loop is asyncio.get_running_loop() and closer is not None:
            await closer.aclose()
        else:
            # The pool's loop is gone; it was closed when that loop shut down.
            self._loop = None


class SyncHTTP:
    """The pooled ``httpx.Client`` of a synchronous client, plus API requests with retries."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self._client = http_client
        self._owned = http_client is None
        self._sleep = sleep or time.sleep
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def client(self) -> httpx.Client:
        """The pooled client (created on first use)."""
        if self._client is None or (self._owned and self._client.is_closed):
            if self._finalizer is not None:
                self._finalizer.detach()  # the previous pool is closed; let it go
            self._client = httpx.Client(
                timeout=self.config.timeout, follow_redirects=False, limits=pool_limits()
            )
            # A client dropped without close() still closes its sockets.
            self._finalizer = weakref.finalize(self, self._client.close)
        return self._client

    def sleep(self, seconds: float) -> None:
        """Sleep (injectable for tests)."""
        self._sleep(seconds)

    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: QueryParams | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        max_retries: int | None = None,
    ) -> httpx.Response:
        """Send an API request; see :meth:`AsyncHTTP.request`."""
        plan = _plan(
            self.config,
            method,
            path,
            operation=operation,
            params=params,
            content=content,
            headers=headers,
            idempotent=idempotent,
            max_retries=max_retries,
        )
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                with map_transport_errors(plan.operation):
                    response = self.client().request(
                        plan.method,
                        plan.url,
                        params=plan.params,
                        content=plan.content,
                        headers=plan.headers,
                    )
                if response.is_success:
                    return response
                error, retry_after = plan.failure(response)
            except RenderError as exc:
                error = exc
            self.sleep(plan.delay_before_retry(attempt, error, retry_after))
            attempt += 1

    def close(self) -> None:
        """Close the pool (when this object created it). Safe to call twice."""
        if self._owned and self._client is not None:
            client, self._client = self._client, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            client.close()
