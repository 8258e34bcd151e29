"""The run that is executing in this context, if any (set by the runner).

Kept apart from the runner so that defining tasks never imports asyncio.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Any, Protocol


class SubtaskStarter(Protocol):
    """What a running task's session offers to task calls."""

    def start_subtask(self, name: str, input_value: list[Any] | dict[str, Any]) -> Awaitable[Any]:
        """Start ``name`` as a subtask now; the awaitable resolves to its result."""
        ...


current_session: ContextVar[SubtaskStarter | None] = ContextVar(
    "render_sdk_current_session", default=None
)
