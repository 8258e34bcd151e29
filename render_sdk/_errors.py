"""The error hierarchy shared by every part of render_sdk.

All errors the SDK raises derive from one root::

    RenderError                  anything render_sdk raises on purpose
    ├── ClientError              the server refused the request (HTTP 4xx)
    │   └── RateLimitError       HTTP 429; ``retry_after`` holds the server's hint
    ├── ServerError              HTTP 5xx, or the server could not be reached
    ├── TimeoutError             a request or a wait ran out of time
    ├── TaskRunError             a task run (or a subtask) failed or was canceled
    ├── WireFormatError          a payload does not match its schema (names the field)
    ├── ConfigurationError       the client cannot work as configured (also a ValueError)
    ├── workflows.TaskDefinitionError, TaskContextError, RunnerError   (task side)
    ├── devserver LaunchError    a task process could not be started
    └── testing.LocalServerError the local server did not start in a test
        └── testing.AppRegistrationError   the app did not register (has its error)

Transport, socket and SQLite exceptions are translated into these at one boundary per
layer and chained with ``raise ... from exc``. This module imports nothing heavy: the
task worker imports it too.
"""

from __future__ import annotations

from ._exports import publish

__all__ = [
    "ClientError",
    "ConfigurationError",
    "RateLimitError",
    "RenderError",
    "ServerError",
    "TaskRunError",
    "TimeoutError",
    "WireFormatError",
]


class RenderError(Exception):
    """The root of every error render_sdk raises.

    Attributes:
        message: A human-readable description.
        status_code: The HTTP status of the response that caused it, if any.
        error_id: The server's error id, if it sent one.
        code: The server's error code, if it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_id: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_id = error_id
        self.code = code

    def __str__(self) -> str:
        return self.message


class ClientError(RenderError):
    """The request was refused by the server (HTTP 4xx)."""


class RateLimitError(ClientError):
    """The server asked us to slow down (HTTP 429).

    Attributes:
        retry_after: Seconds the server asked to wait (from ``Retry-After``), if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 429,
        error_id: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, error_id=error_id, code=code)
        self.retry_after = retry_after


class ServerError(RenderError):
    """The server failed (HTTP 5xx) or could not be reached at all."""


class TimeoutError(RenderError):
    """A request, or a wait for a task run, did not finish in time."""


class TaskRunError(RenderError):
    """A task run or subtask ended as failed or canceled.

    Attributes:
        task_run_id: The id of the run that failed, when known.
        details: The error the task reported (exception type and message).
        stack_trace: The task's traceback, when the runner sent one.
        status: The terminal status ("failed", "canceled"), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        task_run_id: str | None = None,
        details: str | None = None,
        stack_trace: str | None = None,
        status: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.task_run_id = task_run_id
        self.details = details
        self.stack_trace = stack_trace
        self.status = status


class ConfigurationError(RenderError, ValueError):
    """The client was configured in a way that cannot work (for example, no API key).

    Also a ``ValueError``, which is what the configuration checks of earlier SDK
    versions raised.
    """


class WireFormatError(RenderError):
    """A payload could not be encoded or decoded: malformed JSON, a wrong type,
    invalid base64, truncated protobuf bytes, NaN, ...

    Attributes:
        field: The path of the offending field (for example ``attempts[0].startedAt``),
            or ``None`` when the payload as a whole is malformed.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


# The errors' public home is render_sdk.client.errors (the seed's import path); it is
# named here because the task worker imports this module without the REST client.
publish(globals(), home="render_sdk.client.errors")
