"""The wire models: dataclasses generated from ``proto/`` by betterproto2.

Apps import them from here::

    from render_sdk.models import TaskRunDetails, TaskRunStatus

Every class is the generated dataclass itself, or (for the messages that carry task
inputs and results as JSON bytes) a thin subclass adding read-only accessors that
decode that JSON: ``TaskRunDetails.results``, ``TaskRunDetails.input``,
``TaskAttemptDetails.results`` and ``RunTaskRequest.input``. The raw bytes stay in the
``*_json`` fields, exactly as they travel.

The same schemas serve other languages: see the ``proto/`` buf module.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

import betterproto2 as _betterproto2

from .. import _wire
from .._errors import WireFormatError
from .._exports import publish
from .._gen.enums import TaskRunStatus
from .._gen.render.objects.v1 import (
    GetObjectOutput,
    ListObjectsRequest,
    ListObjectsResponse,
    ObjectMetadata,
    ObjectPath,
    ObjectWithCursor,
    PresignedObjectRequest,
    PutObjectInput,
    PutObjectOutput,
    PutObjectRequest,
)
from .._gen.render.workflows import v1 as _wf
from .._gen.render.workflows.v1 import (
    Error,
    GetTaskRequest,
    ListLogsRequest,
    ListLogsResponse,
    ListTaskRunsRequest,
    ListTaskRunsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Log,
    LogLabel,
    Task,
    TaskRunEvent,
    TaskRunEventsRequest,
    TaskRunPath,
    TaskRunWithCursor,
    TaskWithCursor,
)

__all__ = [
    "TERMINAL_STATUSES",
    "Error",
    "GetObjectOutput",
    "GetTaskRequest",
    "ListLogsRequest",
    "ListLogsResponse",
    "ListObjectsRequest",
    "ListObjectsResponse",
    "ListTaskRunsRequest",
    "ListTaskRunsResponse",
    "ListTasksRequest",
    "ListTasksResponse",
    "Log",
    "LogLabel",
    "ObjectMetadata",
    "ObjectPath",
    "ObjectWithCursor",
    "PresignedObjectRequest",
    "PutObjectInput",
    "PutObjectOutput",
    "PutObjectRequest",
    "RunTaskRequest",
    "Task",
    "TaskAttempt",
    "TaskAttemptDetails",
    "TaskRun",
    "TaskRunDetails",
    "TaskRunEvent",
    "TaskRunEventsRequest",
    "TaskRunPath",
    "TaskRunStatus",
    "TaskRunWithCursor",
    "TaskWithCursor",
    "status_text",
    "tasksocket",
]

from . import tasksocket  # the submodule is part of the public face

#: The task-socket envelopes that render_sdk.models exported before they moved to
#: render_sdk.models.tasksocket; still importable from here, with a DeprecationWarning.
_MOVED_TO_TASKSOCKET: Final = frozenset(tasksocket.__all__)


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_TASKSOCKET:
        warnings.warn(
            f"render_sdk.models.{name} moved to render_sdk.models.tasksocket.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(tasksocket, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Statuses after which a run never changes again.
TERMINAL_STATUSES: frozenset[TaskRunStatus] = frozenset(
    {
        TaskRunStatus.COMPLETED,
        TaskRunStatus.SUCCEEDED,
        TaskRunStatus.FAILED,
        TaskRunStatus.CANCELED,
    }
)


def status_text(status: TaskRunStatus, unknown_status: str = "") -> str:
    """Return a status as the wire spells it: ``"completed"``, or the unknown raw string."""
    if status == TaskRunStatus.UNSPECIFIED and unknown_status:
        return unknown_status
    return str(status)


def _repr_decoded(msg: _betterproto2.Message) -> str:
    """betterproto2's repr (fields that differ from their default), with each inline-JSON
    field shown under its wire key as its decoded JSON value (``results=[25]``, not
    ``results_json=b'[25]'``)."""
    parts = []
    meta: Any = msg._betterproto  # type: ignore[arg-type]  # classproperty typing
    inline = _wire.inline_json_fields(type(msg))
    for name in meta.sorted_field_names:
        value = getattr(msg, name)
        if value == meta.default_gen[name]():
            continue
        if name in inline and isinstance(value, bytes):
            try:
                decoded = _wire.decode_json_value(value, what=name)
            except WireFormatError:  # not JSON: show the bytes as they are
                pass
            else:
                parts.append(f"{inline[name]}={decoded!r}")
                continue
        parts.append(f"{name}={value!r}")
    return f"{type(msg).__name__}({', '.join(parts)})"


class TaskAttempt(_wf.TaskAttempt):
    """One attempt of a task run (see the generated base for fields)."""

    _betterproto_meta = _wf.TaskAttempt._betterproto  # type: ignore[arg-type]

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        return _wf.TaskAttempt._type_hints()


class TaskRun(_wf.TaskRun):
    """A task run as lists carry it (see the generated base for fields)."""

    _betterproto_meta = _wf.TaskRun._betterproto  # type: ignore[arg-type]

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        return _wf.TaskRun._type_hints()


class TaskAttemptDetails(_wf.TaskAttemptDetails):
    """One attempt of a task run with its outcome (see the generated base for fields)."""

    # betterproto2 keys its field metadata and type hints by class and module; share
    # the generated class's so that the subclass encodes and parses identically.
    _betterproto_meta = _wf.TaskAttemptDetails._betterproto  # type: ignore[arg-type]
    __repr__ = _repr_decoded

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        return _wf.TaskAttemptDetails._type_hints()

    @property
    def results(self) -> list[Any] | None:
        """The attempt's results decoded from ``results_json`` (None when it has none)."""
        if self.results_json is None:
            return None
        value: list[Any] | None = _wire.decode_json_value(self.results_json, what="results")
        return value


class TaskRunDetails(_wf.TaskRunDetails):
    """A task run with its input, results and error (see the generated base for fields)."""

    _betterproto_meta = _wf.TaskRunDetails._betterproto  # type: ignore[arg-type]
    __repr__ = _repr_decoded

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        return _wf.TaskRunDetails._type_hints()

    @property
    def results(self) -> list[Any] | None:
        """The run's results decoded from ``results_json``: a list, or None while it has none.

        Render's encoding: a task returning a list yields that list; any other value ``v``
        yields ``[v]``.
        """
        value: list[Any] | None = _wire.decode_json_value(self.results_json, what="results")
        return value

    @property
    def input(self) -> list[Any] | dict[str, Any] | None:
        """The run's input decoded from ``input_json``: positional list or keyword dict."""
        value: list[Any] | dict[str, Any] | None = _wire.decode_json_value(
            self.input_json, what="input"
        )
        return value

    @property
    def status_text(self) -> str:
        """The status as the wire spells it (``"completed"``), unknown values included."""
        return status_text(self.status, self.unknown_status)

    @property
    def is_terminal(self) -> bool:
        """True once the run can no longer change (completed, succeeded, failed, canceled)."""
        return self.status in TERMINAL_STATUSES


class RunTaskRequest(_wf.RunTaskRequest):
    """The body of POST /task-runs (see the generated base for fields)."""

    _betterproto_meta = _wf.RunTaskRequest._betterproto  # type: ignore[arg-type]
    __repr__ = _repr_decoded

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        return _wf.RunTaskRequest._type_hints()

    @property
    def input(self) -> list[Any] | dict[str, Any] | None:
        """The input decoded from ``input_json``."""
        value: list[Any] | dict[str, Any] | None = _wire.decode_json_value(
            self.input_json, what="input"
        )
        return value


for _public in (TaskAttempt, TaskRun, TaskAttemptDetails, TaskRunDetails, RunTaskRequest):
    _wire.register_model(_public.__mro__[1], _public)
del _public


def _parse_into_public_models() -> None:
    # betterproto2 builds nested messages from each class's field metadata (shared with
    # the public subclasses above); point it at the public classes so that binary parsing
    # yields the same types, with their accessors, as JSON decoding does.
    from .._gen.render.objects import v1 as objects_v1
    from .._gen.render.tasksocket import v1 as tasksocket_v1

    public = {
        cls.__mro__[1]: cls
        for cls in (TaskAttempt, TaskRun, TaskAttemptDetails, TaskRunDetails, RunTaskRequest)
    }
    for module in (_wf, objects_v1, tasksocket_v1):
        for name in module.__all__:
            generated = getattr(module, name)
            if isinstance(generated, type) and issubclass(generated, _betterproto2.Message):
                meta: Any = generated._betterproto  # type: ignore[arg-type]  # classproperty typing
                by_field = meta.cls_by_field
                for attr, sub in list(by_field.items()):
                    if sub in public:
                        by_field[attr] = public[sub]


_parse_into_public_models()

# Reprs, tracebacks and pickles name render_sdk.models.Task, not the generated module.
publish(
    globals(), claim=("render_sdk._gen.render.workflows.v1", "render_sdk._gen.render.objects.v1")
)
