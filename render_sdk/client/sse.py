"""render_sdk 0.4.0's ``render_sdk.client.sse`` module: decode a task run events stream.

:meth:`WorkflowsService.task_run_events` is the way to follow runs (it reconnects,
resumes with ``Last-Event-ID`` and stops once every run is terminal); this keeps 0.4.0's
lower-level :func:`parse_stream` for code that reads the stream's bytes itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator

import httpx
from httpx_sse import EventSource

from .._errors import WireFormatError
from ..models import TaskRunDetails
from . import _protocol as P

__all__ = ["parse_stream"]

logger = logging.getLogger(__name__)

#: The event every terminal state is sent as (its data says which outcome).
_TERMINAL_EVENT = "task.completed"


async def parse_stream(bytes_iter: AsyncIterable[bytes]) -> AsyncIterator[TaskRunDetails]:
    """Yield the :class:`~render_sdk.models.TaskRunDetails` of each ``task.completed`` event.

    As in 0.4.0, only ``task.completed`` events are yielded (Render sends every terminal
    state under that name; ``status`` and ``error`` say which), an event whose data does
    not parse is logged and skipped, and an incomplete event at the end is dropped.
    Unlike 0.4.0, the decoding follows the SSE specification (a UTF-8 character split
    across chunks and multi-line ``data`` survive).

    Args:
        bytes_iter: The response body, in chunks (``response.aiter_bytes()``).
    """
    response = httpx.Response(
        200, headers={"Content-Type": "text/event-stream"}, content=_bytes_of(bytes_iter)
    )
    async for sse in EventSource(response).aiter_sse():
        if sse.event != _TERMINAL_EVENT or not sse.data:
            continue
        try:
            yield P.parse_details(sse.data)
        except WireFormatError as exc:
            logger.error("Error parsing event: %s", exc)


async def _bytes_of(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk
