"""The errors the client raises, all under one root::

    RenderError                  anything render_sdk raises on purpose
    ├── ClientError              the server refused the request (HTTP 4xx)
    │   └── RateLimitError       HTTP 429; ``retry_after`` holds the server's hint
    ├── ServerError              HTTP 5xx, or the server could not be reached
    ├── TimeoutError             a request or a wait ran out of time
    ├── TaskRunError             a task run failed or was canceled
    ├── WireFormatError          a payload does not match its schema
    └── ConfigurationError       the client cannot work as configured (also a ValueError)

Each carries ``status_code``, ``error_id`` and ``code`` where the server sent them.
"""

from __future__ import annotations

from .._errors import (
    ClientError,
    ConfigurationError,
    RateLimitError,
    RenderError,
    ServerError,
    TaskRunError,
    TimeoutError,
    WireFormatError,
)

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
