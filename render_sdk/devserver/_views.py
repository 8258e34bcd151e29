"""Store records → REST wire models (TaskRun, TaskRunDetails, Task, Log), without I/O."""

from __future__ import annotations

from typing import Any

from .. import _wire
from .._errors import WireFormatError
from ..models import (
    Log,
    LogLabel,
    Task,
    TaskAttempt,
    TaskAttemptDetails,
    TaskRun,
    TaskRunDetails,
    TaskRunWithCursor,
    TaskWithCursor,
)
from ._protocol import RunStatus, encode_cursor
from ._store import AttemptRecord, LogRecord, RunRecord, TaskRecord


def results_json(output: bytes | None) -> bytes:
    """A stored output as the ``results`` array (Render's encoding wraps non-lists)."""
    if not output:
        return b""
    try:
        value = _wire.decode_json_value(output, what="output")
    except WireFormatError:
        return _wire.encode_json_value([output.decode("utf-8", errors="replace")])
    if isinstance(value, list):
        return output
    return _wire.encode_json_value([value])


def task_model(task: TaskRecord) -> Task:
    """The REST Task."""
    return Task(id=task.id, name=task.name, created_at=task.created_at)


def task_with_cursor(task: TaskRecord) -> TaskWithCursor:
    """A GET /v1/tasks item (the cursor is the task id)."""
    return TaskWithCursor(task=task_model(task), cursor=task.id)


def _attempt_fields(run: RunRecord, a: AttemptRecord) -> dict[str, Any]:
    # The fields TaskAttempt and TaskAttemptDetails share.
    return {
        "attempt": a.attempt,
        "status": a.status,
        "started_at": a.started_at,
        "completed_at": a.completed_at,
        "task_run_id": run.id,
    }


def _run_fields(run: RunRecord, task_id: str) -> dict[str, Any]:
    # The fields TaskRun and TaskRunDetails share.
    return {
        "id": run.id,
        "task_id": task_id,
        "status": run.status,
        "started_at": run.attempts[0].started_at if run.attempts else None,
        "completed_at": run.completed_at,
        "parent_task_run_id": run.parent_id,
        "parent_task_attempt": run.parent_attempt,
        "root_task_run_id": run.root_id,
        "retries": max(0, len(run.attempts) - 1),
    }


def task_run(run: RunRecord, task_id: str) -> TaskRun:
    """The REST TaskRun (list items and the POST /v1/task-runs answer)."""
    return TaskRun(
        **_run_fields(run, task_id),
        attempts=[TaskAttempt(**_attempt_fields(run, a)) for a in run.attempts],
    )


def task_run_details(run: RunRecord, task_id: str) -> TaskRunDetails:
    """The REST TaskRunDetails (GET by id, SSE data)."""
    return TaskRunDetails(
        **_run_fields(run, task_id),
        attempts=[
            TaskAttemptDetails(
                **_attempt_fields(run, a),
                error=a.error,
                results_json=results_json(a.output) if a.status == RunStatus.COMPLETED else None,
            )
            for a in run.attempts
        ],
        results_json=results_json(run.output) if run.status == RunStatus.COMPLETED else b"",
        input_json=run.input,
        error=run.error
        if run.status == RunStatus.FAILED
        else ("canceled" if run.status == RunStatus.CANCELED else None),
    )


def task_run_with_cursor(run: RunRecord, task_id: str) -> TaskRunWithCursor:
    """A GET /v1/task-runs item."""
    return TaskRunWithCursor(cursor=encode_cursor(run.seq), task_run=task_run(run, task_id))


def log_model(log: LogRecord, task_name: str) -> Log:
    """The REST Log of one captured chunk (labels name the run, task and stream)."""
    labels = [LogLabel(name="type", value="app"), LogLabel(name="stream", value=log.stream)]
    labels.append(LogLabel(name="level", value="error" if log.stream == "stderr" else "info"))
    if log.run_id:
        labels.append(LogLabel(name="taskRun", value=log.run_id))
    if task_name:
        labels.append(LogLabel(name="task", value=task_name))
    return Log(id=f"log-{log.seq}", message=log.message, timestamp=log.ts, labels=labels)
