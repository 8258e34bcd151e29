"""The REST + SSE client for Render Workflows (and the local task server).

Public API::

    from render_sdk.client import Render, RenderSync, ListTaskRunsParams
    from render_sdk.client.errors import RenderError, TaskRunError

``Render`` is asynchronous; ``RenderSync`` is its synchronous twin with the same
methods (``render.workflows.run_task(...)`` returns a handle you ``await`` in one and
``.wait()`` for in the other).
"""

from __future__ import annotations

from ..models import TaskRun, TaskRunDetails, TaskRunStatus
from ._async import AwaitableTaskRun, Render, WorkflowsService
from ._core import ClientConfig
from ._protocol import ListTaskRunsParams, TaskRunList
from ._sync import RenderSync, TaskRunSync, WorkflowsServiceSync
from .errors import (
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
    "AwaitableTaskRun",
    "ClientConfig",
    "ClientError",
    "ConfigurationError",
    "ListTaskRunsParams",
    "RateLimitError",
    "Render",
    "RenderError",
    "RenderSync",
    "ServerError",
    "TaskRun",
    "TaskRunDetails",
    "TaskRunError",
    "TaskRunList",
    "TaskRunStatus",
    "TaskRunSync",
    "TimeoutError",
    "WireFormatError",
    "WorkflowsService",
    "WorkflowsServiceSync",
]
