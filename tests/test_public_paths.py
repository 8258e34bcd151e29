"""Exported names report their public module, never a ``_private`` one (STYLE.md habit 1)."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import subprocess
import sys
import typing
from types import FunctionType, ModuleType

import pytest

import render_sdk
import render_sdk.models
import render_sdk.models.tasksocket
from render_sdk.client import errors

# Public modules are found by walking the package, so a new one is covered without
# editing this list; the list only guards against the walk silently finding nothing.
KNOWN_PUBLIC = {
    "render_sdk",
    "render_sdk.client",
    "render_sdk.client.client",
    "render_sdk.client.errors",
    "render_sdk.client.types",
    "render_sdk.client.workflows",
    "render_sdk.experimental",
    "render_sdk.experimental.object",
    "render_sdk.models",
    "render_sdk.render",
    "render_sdk.testing",
    "render_sdk.version",
    "render_sdk.workflows",
    "render_sdk.workflows.task",
}


def _is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def _public_modules() -> list[ModuleType]:
    names = ["render_sdk"]
    for info in pkgutil.walk_packages(render_sdk.__path__, "render_sdk."):
        if not _is_private(info.name):
            names.append(info.name)
    return [importlib.import_module(name) for name in sorted(names)]


PUBLIC = {module.__name__: module for module in _public_modules() if hasattr(module, "__all__")}


def _exports() -> list[tuple[str, str, object]]:
    found: list[tuple[str, str, object]] = []
    for module_name, module in sorted(PUBLIC.items()):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type | FunctionType):
                found.append((module_name, name, value))
    return found


EXPORTS = _exports()
IDS = [f"{module}.{name}" for module, name, _ in EXPORTS]


def test_every_public_module_is_walked() -> None:
    assert set(PUBLIC) >= KNOWN_PUBLIC
    assert len(EXPORTS) > 100


@pytest.mark.parametrize(("module", "name", "value"), EXPORTS, ids=IDS)
def test_export_reports_a_public_path(module: str, name: str, value: object) -> None:
    reported = value.__module__  # type: ignore[attr-defined]
    assert not _is_private(reported), f"{module}.{name} reports {reported}"
    # The reported path is importable and gives back the same object: pickle, copy and
    # error messages that say "render_sdk.workflows.Options" point somewhere real.
    assert getattr(importlib.import_module(reported), value.__qualname__) is value  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (render_sdk.Options, "render_sdk.workflows.Options"),
        (render_sdk.Render, "render_sdk.client.Render"),
        (render_sdk.RenderSync, "render_sdk.client.RenderSync"),
        (render_sdk.task, "render_sdk.task"),
        (errors.ConfigurationError, "render_sdk.client.errors.ConfigurationError"),
        (render_sdk.workflows.TaskRunError, "render_sdk.client.errors.TaskRunError"),
        (render_sdk.client.ObjectClient, "render_sdk.experimental.ObjectClient"),
        (render_sdk.client.ListTaskRunsParams, "render_sdk.client.ListTaskRunsParams"),
        (render_sdk.models.TaskRunStatus, "render_sdk.models.TaskRunStatus"),
        (render_sdk.models.TaskRunDetails, "render_sdk.models.TaskRunDetails"),
        (render_sdk.models.TaskRun, "render_sdk.models.TaskRun"),
        (render_sdk.models.TaskRunWithCursor, "render_sdk.models.TaskRunWithCursor"),
        (render_sdk.models.ObjectMetadata, "render_sdk.models.ObjectMetadata"),
        (
            render_sdk.models.tasksocket.CallbackRequest,
            "render_sdk.models.tasksocket.CallbackRequest",
        ),
    ],
)
def test_canonical_path(value: type | FunctionType, path: str) -> None:
    assert f"{value.__module__}.{value.__qualname__}" == path


def test_repr_names_the_public_path() -> None:
    assert repr(render_sdk.Options) == "<class 'render_sdk.workflows.Options'>"
    assert repr(errors.ConfigurationError) == (
        "<class 'render_sdk.client.errors.ConfigurationError'>"
    )


def test_model_repr_names_the_public_path() -> None:
    assert repr(render_sdk.models.Task) == "<class 'render_sdk.models.Task'>"
    assert repr(render_sdk.models.tasksocket.TaskComplete) == (
        "<class 'render_sdk.models.tasksocket.TaskComplete'>"
    )


def test_traceback_names_the_public_path() -> None:
    # A task process imports only render_sdk.workflows; its tracebacks still say
    # render_sdk.client.errors.TaskRunError, without loading the REST client.
    code = (
        "import sys\n"
        "from render_sdk.workflows import TaskRunError\n"
        "assert 'render_sdk.client' not in sys.modules\n"
        "raise TaskRunError('boom')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.rstrip().endswith("render_sdk.client.errors.TaskRunError: boom")


ERRORS = sorted(
    {v for _, _, v in EXPORTS if isinstance(v, type) and issubclass(v, BaseException)},
    key=lambda cls: f"{cls.__module__}.{cls.__qualname__}",
)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__qualname__)
def test_errors_still_pickle(cls: type[BaseException]) -> None:
    original = cls("boom")
    error = pickle.loads(pickle.dumps(original))
    assert type(error) is cls
    assert str(error) == str(original)
    assert "boom" in str(error)


@pytest.mark.parametrize(("module", "name", "value"), EXPORTS, ids=IDS)
def test_type_hints_still_resolve(module: str, name: str, value: object) -> None:
    # get_type_hints evaluates annotations in sys.modules[cls.__module__]: the rename must
    # not leave strings that only the private module could resolve.
    typing.get_type_hints(value, include_extras=True)


MODELS = [
    value
    for module, _, value in EXPORTS
    if module.startswith("render_sdk.models")
    and isinstance(value, type)
    and hasattr(value, "_betterproto")
]


def test_models_are_covered() -> None:
    names = {cls.__qualname__ for cls in MODELS}
    assert {"Task", "TaskRunDetails", "ListTaskRunsResponse", "CallbackRequest"} <= names


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_models_still_pickle_and_round_trip(cls: type) -> None:
    # The renamed class is what pickle finds by name, and betterproto2 still resolves its
    # fields (nested messages, timestamps) for binary and JSON after the rename.
    message = cls()
    assert pickle.loads(pickle.dumps(message)) == message
    assert type(cls.parse(bytes(message))) is cls  # type: ignore[attr-defined]
    assert type(cls.from_dict(message.to_dict())) is cls  # type: ignore[attr-defined]


def test_nested_models_survive_pickle_and_binary() -> None:
    from datetime import datetime, timezone

    from render_sdk.models import ListTaskRunsResponse, TaskRun, TaskRunWithCursor

    started = datetime(2024, 1, 1, tzinfo=timezone.utc)
    original = ListTaskRunsResponse(
        items=[TaskRunWithCursor(cursor="c", task_run=TaskRun(id="trn-1", started_at=started))]
    )
    for copy in (pickle.loads(pickle.dumps(original)), ListTaskRunsResponse.parse(bytes(original))):
        assert copy == original
        run = copy.items[0].task_run
        assert type(run) is TaskRun
        assert run.started_at == started


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_each_public_module_imports_first(module: str) -> None:
    # Import cycles (render_sdk.client <-> render_sdk.experimental) only show when a
    # module is the first one a fresh interpreter imports.
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
