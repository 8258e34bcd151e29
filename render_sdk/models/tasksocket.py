"""The task-socket envelopes: what a task process and its task server exchange.

These are the messages of ``proto/render/tasksocket/v1`` (snake_case JSON over HTTP/1.1
on the Unix socket at ``RENDER_SDK_SOCKET_PATH``). Apps rarely need them: the runner
(:mod:`render_sdk.workflows`) speaks the socket for them. They are public for SDKs
and tools that implement either side::

    from render_sdk.models.tasksocket import CallbackRequest, TaskComplete
"""

from __future__ import annotations

from .._exports import publish
from .._gen.render.tasksocket.v1 import (
    CallbackRequest,
    ErrorResponse,
    GetInputResponse,
    GetSubtaskResultRequest,
    GetSubtaskResultResponse,
    RegisterTasksRequest,
    RetryConfig,
    RunSubtaskRequest,
    RunSubtaskResponse,
    TaskComplete,
    TaskDefinition,
    TaskError,
    TaskOptions,
    TaskParameter,
)

__all__ = [
    "CallbackRequest",
    "ErrorResponse",
    "GetInputResponse",
    "GetSubtaskResultRequest",
    "GetSubtaskResultResponse",
    "RegisterTasksRequest",
    "RetryConfig",
    "RunSubtaskRequest",
    "RunSubtaskResponse",
    "TaskComplete",
    "TaskDefinition",
    "TaskError",
    "TaskOptions",
    "TaskParameter",
]

# Reprs, tracebacks and pickles name render_sdk.models.tasksocket.CallbackRequest.
publish(globals(), claim=("render_sdk._gen.render.tasksocket.v1",))
