"""The REST + SSE client for Render Workflows (and the local task server).

Public API::

    from render_sdk.client import Render, RenderSync, ListTaskRunsParams
    from render_sdk.client.errors import RenderError, TaskRunError

``Render`` is asynchronous; ``RenderSync`` is its synchronous twin with the same
methods (``render.workflows.run_task(...)`` returns a handle you ``await`` in one and
``.wait()`` for in the other). render_sdk 0.4.0's names (``Client``, ``TaskData``,
``ObjectData``, ...) are exported here too, so code written for it keeps importing.
"""

from __future__ import annotations

from .._exports import publish

# From the private modules, not the package: render_sdk.experimental imports this
# package first (its clients are built on ._core), so it may still be half-initialized.
from ..experimental._async import (
    ExperimentalService,
    ObjectApi,
    ObjectClient,
    ScopedObjectClient,
    StorageService,
)
from ..experimental._types import (
    DownloadResponse,
    ObjectData,
    OwnerID,
    PutObjectResult,
    Region,
    UploadResponse,
)
from ..models import TaskRun, TaskRunDetails, TaskRunStatus
from ._async import AwaitableTaskRun, Render, WorkflowsService
from ._core import ClientConfig
from ._protocol import ListTaskRunsParams, TaskRunList
from ._sync import RenderSync, TaskRunSync, WorkflowsServiceSync
from .client import Client
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
from .types import CursorParam, LimitParam, OwnerIDParam, TaskData, TaskIdentifier

__all__ = [
    "AwaitableTaskRun",
    "Client",
    "ClientConfig",
    "ClientError",
    "ConfigurationError",
    "CursorParam",
    "DownloadResponse",
    "ExperimentalService",
    "LimitParam",
    "ListTaskRunsParams",
    "ObjectApi",
    "ObjectClient",
    "ObjectData",
    "OwnerID",
    "OwnerIDParam",
    "PutObjectResult",
    "RateLimitError",
    "Region",
    "Render",
    "RenderError",
    "RenderSync",
    "ScopedObjectClient",
    "ServerError",
    "StorageService",
    "TaskData",
    "TaskIdentifier",
    "TaskRun",
    "TaskRunDetails",
    "TaskRunError",
    "TaskRunList",
    "TaskRunStatus",
    "TaskRunSync",
    "TimeoutError",
    "UploadResponse",
    "WireFormatError",
    "WorkflowsService",
    "WorkflowsServiceSync",
]

publish(globals())
