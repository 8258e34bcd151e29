"""render_sdk 0.4.0's type aliases (``render_sdk.client.types``).

The run models are the generated ones from :mod:`render_sdk.models`; the object
storage types come from :mod:`render_sdk.experimental`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from ..experimental._types import (  # not the package: see render_sdk.client's imports
    DownloadResponse,
    ObjectData,
    OwnerID,
    PutObjectResult,
    Region,
    UploadResponse,
)
from ..models import TaskRun, TaskRunDetails, TaskRunStatus
from ._protocol import ListTaskRunsParams

__all__ = [
    "CursorParam",
    "DownloadResponse",
    "LimitParam",
    "ListTaskRunsParams",
    "ObjectData",
    "OwnerID",
    "OwnerIDParam",
    "PutObjectResult",
    "Region",
    "TaskData",
    "TaskIdentifier",
    "TaskRun",
    "TaskRunDetails",
    "TaskRunStatus",
    "TaskRunStatusValues",
    "UploadResponse",
]

TaskIdentifier: TypeAlias = str
"""A task slug (``"workflow/task"``, optionally ``:version``) or a task id."""

TaskData: TypeAlias = list[Any] | dict[str, Any]
"""A run's input: positional arguments (list) or keyword arguments (dict)."""

TaskRunStatusValues: TypeAlias = Literal[
    "pending", "running", "completed", "failed", "canceled", "paused"
]
"""The status strings 0.4.0 documents."""

LimitParam: TypeAlias = int
CursorParam: TypeAlias = str
OwnerIDParam: TypeAlias = str
