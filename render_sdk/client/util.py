"""render_sdk 0.4.0's ``render_sdk.client.util`` module: its error-mapping helpers.

Thin shells over the one place this client maps failures (``render_sdk.client._core``),
with 0.4.0's names and arguments, so that code (and tests) written against them keep
working. They raise the same classes as 0.4.0 (:class:`ClientError` for 4xx,
:class:`RateLimitError` for 429, :class:`ServerError` for 5xx and network errors,
:class:`TimeoutError`), which carry ``status_code`` and the server's error id here.

Differences from 0.4.0: the response is an :class:`httpx.Response` (0.4.0's
``handle_api_error`` took its generated OpenAPI client's response), its body is read
first (0.4.0's SSE errors surfaced as ``httpx.ResponseNotRead``), and the messages are
this client's (``"<operation> failed with status 404: <message>"``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import httpx

from .._errors import RenderError
from ..experimental._protocol import storage_error, storage_error_message
from ._core import error_from_response, transport_error

__all__ = [
    "handle_api_error",
    "handle_http_error",
    "handle_http_errors",
    "handle_httpx_exception",
    "handle_storage_http_error",
    "retry_with_backoff",
    "storage_error_message",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def handle_http_error(response: httpx.Response, operation: str = "API request") -> None:
    """Raise the error a failed (status >= 400) response stands for; else do nothing.

    Raises:
        RateLimitError: 429.
        ClientError: Another 4xx.
        ServerError: 5xx.
    """
    if response.status_code >= 400:
        raise error_from_response(response, operation)


def handle_api_error(response: httpx.Response, operation: str = "API request") -> None:
    """0.4.0's name for :func:`handle_http_error` on an API call's response."""
    handle_http_error(response, operation)


def handle_storage_http_error(response: httpx.Response, operation: str) -> None:
    """Raise for a failed presigned-URL transfer, without the storage's raw body.

    The message is :func:`storage_error_message` of the status (``object not found``,
    ``access denied``, ...), never the XML the storage answered.
    """
    if response.status_code >= 400:
        raise storage_error(response, operation)


def handle_httpx_exception(exc: Exception, operation: str = "HTTP request") -> None:
    """Raise the :class:`RenderError` an httpx exception stands for, chained to it.

    Raises:
        TimeoutError: A timeout.
        ServerError: A network failure (connect, read, protocol).
        RenderError: Anything else.
    """
    raise transport_error(exc, operation) from exc


def handle_http_errors(
    operation: str,
) -> Callable[[Callable[_P, Awaitable[httpx.Response]]], Callable[_P, Awaitable[httpx.Response]]]:
    """Decorate an async call that returns an :class:`httpx.Response` (0.4.0's factory).

    A failed status raises as :func:`handle_http_error`; an httpx exception as
    :func:`handle_httpx_exception`; a :class:`RenderError` passes through; any other
    exception becomes ``RenderError("<operation> failed with unexpected error: ...")``.
    """

    def decorate(
        call: Callable[_P, Awaitable[httpx.Response]],
    ) -> Callable[_P, Awaitable[httpx.Response]]:
        @functools.wraps(call)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> httpx.Response:
            try:
                response = await call(*args, **kwargs)
            except RenderError:
                raise
            except httpx.HTTPError as exc:
                handle_httpx_exception(exc, operation)
                raise  # pragma: no cover - handle_httpx_exception always raises
            except Exception as exc:
                raise RenderError(f"{operation} failed with unexpected error: {exc}") from exc
            handle_http_error(response, operation)
            return response

        return wrapper

    return decorate


async def retry_with_backoff(
    fn: Callable[[], Awaitable[_T | None]],
    max_retries: int = 5,
    poll_interval: float = 1.0,
    backoff_factor: float = 2.0,
    exempted_exceptions: tuple[type[BaseException], ...] = (),
) -> _T | None:
    """Call ``fn`` up to ``max_retries`` times, as 0.4.0 did; return its first non-None result.

    An exception of ``exempted_exceptions`` is raised at once; any other is retried after
    ``poll_interval * backoff_factor ** attempt`` seconds, and the last one is raised. A
    ``None`` result is retried at once; ``None`` comes back when every call returned it.
    """
    for attempt in range(max_retries):
        try:
            result = await fn()
        except exempted_exceptions:
            raise
        except Exception:
            if attempt == max_retries - 1:
                raise
            await asyncio.sleep(poll_interval * backoff_factor**attempt)
            continue
        if result is not None:
            return result
    return None
