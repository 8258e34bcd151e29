"""The console's run transition lines, shared by ``render-workflows dev`` and ``start``.

One format, derived from a run's wire status, so the server's console, the ``start``
command, the API and the dashboard all name a state with the same word.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from .models import TERMINAL_STATUSES, TaskRunDetails, TaskRunStatus, status_text

__all__ = ["STATUS_OUTPUT_MAX", "StatusLine", "format_duration", "status_line_of"]

#: Status lines cut the printed input, output and error after this many characters.
STATUS_OUTPUT_MAX: Final = 500


def format_duration(seconds: float) -> str:
    """A duration as the Render CLI prints it: ``1.23s`` from 1 s up, else ``12ms``."""
    if seconds >= 60:
        minutes, rest = divmod(round(seconds, 2), 60)
        return f"{int(minutes)}m{rest:.2f}s"
    if seconds >= 1:
        return f"{seconds:.2f}s"
    return f"{round(seconds * 1000)}ms"


def _compact(raw: bytes | None, default: str) -> str:
    if not raw:
        return default
    text = raw.decode("utf-8", errors="replace")
    if len(text) > STATUS_OUTPUT_MAX:
        return text[:STATUS_OUTPUT_MAX] + "... (truncated)"
    return text


@dataclasses.dataclass(frozen=True)
class StatusLine:
    """One run transition as the console prints it.

    Every line has one shape, derived from the run's status after the transition::

        Task <status>: <run id> (<task>)[ ↳ Subtask (parent: <task>)] input=<json>
            [attempt=<n>] [output=<json>] [retry_in=<d>] [duration=<d>] [error=<text>]

    ``<status>`` is the run's wire status (``pending``, ``running``, ``completed``,
    ``failed``, ``canceled``), the word the API, SSE events and ``runs list`` show. A
    failed attempt that will be retried leaves the run ``pending``, with ``attempt``
    (the one that failed), ``retry_in`` and its ``error``. Every field after the run is
    ``key=value``; ``error`` comes last since its text has spaces.
    """

    status: TaskRunStatus
    run_id: str
    task_name: str
    depth: int = 0
    parent_task_name: str = ""
    input_json: bytes = b""
    output_json: bytes | None = None
    error: str | None = None
    duration_s: float | None = None
    #: 1-based number of the attempt this line is about (shown from the second on).
    attempt: int = 1
    retry_in_ms: float | None = None

    def render(self) -> str:
        """The line, indented two spaces per subtask level."""
        who = f"{self.run_id} ({self.task_name})"
        if self.depth:
            who += f" \u21b3 Subtask (parent: {self.parent_task_name})"
        parts = [
            f"{'  ' * self.depth}Task {status_text(self.status)}: {who}",
            f"input={_compact(self.input_json, '[]')}",
        ]
        retrying = self.retry_in_ms is not None
        if self.attempt > 1 or retrying:
            parts.append(f"attempt={self.attempt}")
        if self.status == TaskRunStatus.COMPLETED:
            parts.append(f"output={_compact(self.output_json, 'null')}")
        if self.retry_in_ms is not None:
            parts.append(f"retry_in={format_duration(self.retry_in_ms / 1000)}")
        if self.duration_s is not None and (self.status in TERMINAL_STATUSES or retrying):
            parts.append(f"duration={format_duration(self.duration_s)}")
        if self.error:
            parts.append(f"error={' '.join(self.error.split())[:STATUS_OUTPUT_MAX]}")
        return " ".join(parts)


def status_line_of(details: TaskRunDetails, task_name: str) -> StatusLine:
    """The line of a run as a client sees it (``render-workflows start``'s events)."""
    duration = None
    if details.started_at is not None and details.completed_at is not None:
        duration = max(0.0, (details.completed_at - details.started_at).total_seconds())
    return StatusLine(
        status=details.status,
        run_id=details.id,
        task_name=task_name,
        input_json=details.input_json,
        output_json=details.results_json or None,
        error=details.error if details.status == TaskRunStatus.FAILED else None,
        duration_s=duration,
        attempt=max(1, len(details.attempts)),
    )
