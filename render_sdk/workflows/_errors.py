"""Errors raised by the task-definition API and the runner (all under ``RenderError``)."""

from __future__ import annotations

from .._errors import RenderError

__all__ = ["RunnerError", "TaskContextError", "TaskDefinitionError"]


class TaskDefinitionError(RenderError, ValueError):
    """A task or app definition is invalid (raised at decoration time).

    The message names the task and says what to change. It is also a ``ValueError``,
    so code written against earlier SDKs that catches ``ValueError`` keeps working.
    """


class TaskContextError(RenderError, RuntimeError):
    """A task was called where it cannot run as a subtask.

    Calling a task (``await square(3)``) starts a subtask of the task run that is
    executing; outside a running async task there is no such run.
    """


class RunnerError(RenderError, ValueError):
    """The task process cannot do its job: its environment is missing or wrong
    (``RENDER_SDK_MODE``, ``RENDER_SDK_SOCKET_PATH``), or the server's input is unusable.
    """
