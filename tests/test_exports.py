"""The public API's names, as the seed README and our docs promise them."""

from __future__ import annotations

import importlib

import pytest

import render_sdk

EXPECTED = {
    "render_sdk": [
        "Options",
        "Render",
        "RenderSync",
        "Retry",
        "Workflows",
        "__version__",
        "start",
        "task",
    ],
    "render_sdk.client.client": ["Client"],
    "render_sdk.client.workflows": ["AwaitableTaskRun", "WorkflowsService"],
    "render_sdk.experimental.object": ["ObjectClient", "ObjectData", "ScopedObjectClient"],
    "render_sdk.render": ["Render"],
    "render_sdk.version": ["get_user_agent", "get_version"],
    "render_sdk.client.errors": [
        "ClientError",
        "RateLimitError",
        "RenderError",
        "ServerError",
        "TaskRunError",
        "TimeoutError",
        "WireFormatError",
    ],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_exported_names(module: str) -> None:
    mod = importlib.import_module(module)
    exported = list(mod.__all__)
    # Order is enforced by ruff (RUF022, isort-style); here: no duplicates, every name resolves.
    assert len(set(exported)) == len(exported)
    for name in EXPECTED[module]:
        assert name in exported, name
        assert getattr(mod, name) is not None


def test_lazy_names_resolve() -> None:
    for name in render_sdk.__all__:
        assert getattr(render_sdk, name) is not None
    with pytest.raises(AttributeError):
        _ = render_sdk.NoSuchThing  # type: ignore[attr-defined]


def test_models_exports_are_sorted_and_resolve() -> None:
    from render_sdk import models

    assert len(set(models.__all__)) == len(models.__all__)
    for name in models.__all__:
        assert getattr(models, name) is not None


TASK_SOCKET_ENVELOPES = [
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


def test_task_socket_envelopes_live_in_their_own_namespace() -> None:
    from render_sdk import models
    from render_sdk.models import tasksocket

    assert tasksocket.__all__ == TASK_SOCKET_ENVELOPES
    assert not set(TASK_SOCKET_ENVELOPES) & set(models.__all__)
    assert {"TaskRunDetails", "TaskRunStatus", "RunTaskRequest"} <= set(models.__all__)


@pytest.mark.parametrize("name", TASK_SOCKET_ENVELOPES)
def test_old_task_socket_paths_still_import_with_a_deprecation_warning(name: str) -> None:
    from render_sdk import models
    from render_sdk.models import tasksocket

    with pytest.warns(DeprecationWarning, match=f"render_sdk.models.tasksocket.{name}"):
        value = getattr(models, name)
    assert value is getattr(tasksocket, name)
    with pytest.raises(AttributeError):
        _ = models.NoSuchModel  # type: ignore[attr-defined]
