"""Workflows protocol logic without I/O, shared by the async and the sync client.

Request building (through the generated models and :mod:`render_sdk._wire`), response
parsing (both list shapes, tolerant status parsing), terminal detection and outcome
mapping, and the event-stream state machine (dedup, Last-Event-ID, reconnect backoff,
deadline) live here; :mod:`._async` and :mod:`._sync` only move bytes.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import httpx

from .. import _wire
from .._constants import MAX_INPUT_BYTES, over_limit
from .._errors import (
    ClientError,
    RateLimitError,
    RenderError,
    ServerError,
    TaskRunError,
    TimeoutError,
    WireFormatError,
)
from .._gen.routes import WORKFLOWS_SERVICE
from .._routing import Route, expand
from ..models import (
    TERMINAL_STATUSES,
    ListLogsResponse,
    ListTaskRunsRequest,
    RunTaskRequest,
    Task,
    TaskRun,
    TaskRunDetails,
    TaskRunEventsRequest,
    TaskRunStatus,
    TaskRunWithCursor,
    TaskWithCursor,
    status_text,
)
from . import _constants as C
from ._core import QueryParams, is_retryable_status, query_params, retry_delay

OP_RUN: Final = "run task"
OP_GET: Final = "get task run"
OP_CANCEL: Final = "cancel task run"
OP_LIST: Final = "list task runs"
OP_EVENTS: Final = "task run events"
OP_LIST_TASKS: Final = "list tasks"
OP_LOGS: Final = "list logs"

# The routes of the requests below, from the schema's WorkflowsService (their paths
# are below the base URL, which carries the service's /v1).
RUN_TASK: Final = WORKFLOWS_SERVICE["RunTask"]
GET_TASK_RUN: Final = WORKFLOWS_SERVICE["GetTaskRun"]
CANCEL_TASK_RUN: Final = WORKFLOWS_SERVICE["CancelTaskRun"]
LIST_TASK_RUNS: Final = WORKFLOWS_SERVICE["ListTaskRuns"]
TASK_RUN_EVENTS: Final = WORKFLOWS_SERVICE["StreamTaskRunEvents"]
LIST_TASKS: Final = WORKFLOWS_SERVICE["ListTasks"]
LIST_LOGS: Final = WORKFLOWS_SERVICE["ListLogs"]


def request_line(route: Route, **path: str) -> tuple[str, str]:
    """The method and path (below the base URL) of a request to ``route``.

    Raises:
        ValueError: A path value is empty or would change the path.
    """
    return route.method, expand(route, **path)


# --------------------------------------------------------------------------- requests


@dataclass
class ListTaskRunsParams:
    """Filters and paging of :meth:`WorkflowsService.list_task_runs`.

    Args:
        limit: The page size (the server's default when None).
        cursor: Start after this cursor (from a previous page's ``next_cursor``).
        owner_id: Only runs of this workspace (or these workspaces).
        task_slug: Only runs of this task (or these tasks).
        root_task_run_id: Only runs of this workflow tree (or these trees).
    """

    limit: int | None = None
    cursor: str | None = None
    owner_id: str | Sequence[str] | None = None
    task_slug: str | Sequence[str] | None = None
    root_task_run_id: str | Sequence[str] | None = None

    def to_request(self) -> ListTaskRunsRequest:
        """The generated request message these parameters stand for."""
        if self.limit is not None and (isinstance(self.limit, bool) or self.limit < 1):
            raise ValueError(f"limit must be a positive integer, got {self.limit!r}")
        return ListTaskRunsRequest(
            limit=self.limit,
            cursor=self.cursor or None,
            owner_id=_as_list(self.owner_id, "owner_id"),
            task_slug=_as_list(self.task_slug, "task_slug"),
            root_task_run_id=_as_list(self.root_task_run_id, "root_task_run_id"),
        )


def _as_list(value: str | Sequence[str] | None, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold strings, got {type(item).__name__}")
    return items


def run_task_body(task: str, input: Any) -> bytes:
    """The JSON body of ``POST /task-runs``.

    Raises:
        TypeError: ``task`` is not a non-empty string.
        WireFormatError: ``input`` is not a list/tuple (positional arguments) or a dict
            (keyword arguments), holds a value JSON cannot carry, or encodes to more
            than ``MAX_INPUT_BYTES`` (the message names both sizes).
    """
    if not isinstance(task, str) or not task.strip():
        raise TypeError(f"task must be a task slug such as 'my-workflow/my-task', got {task!r}")
    if isinstance(input, tuple):
        input = list(input)
    if not isinstance(input, list | dict):
        raise WireFormatError(
            "must be a list (positional arguments) or a dict (keyword arguments), "
            f"got {type(input).__name__}",
            field="input",
        )
    input_json = _wire.encode_json_value(input, what="input")
    too_big = over_limit("the input", len(input_json), MAX_INPUT_BYTES)
    if too_big is not None:
        # Refused here rather than by the server after the upload, whichever it is.
        raise WireFormatError(too_big, field="input")
    request = RunTaskRequest(
        task=task,
        input_json=input_json,
        # One key per logical start, carried by every retry of this body, so that a retry
        # after a lost response returns the run the first attempt started (Render's API
        # and the local server deduplicate on it).
        idempotency_key=str(uuid.uuid4()),
    )
    return _wire.dumps(request, _wire.REST)


def run_path(task_run_id: str) -> str:
    """The path of one task run; rejects ids that would change the path."""
    if not isinstance(task_run_id, str) or not task_run_id or "/" in task_run_id:
        raise ValueError(f"not a task run id: {task_run_id!r}")
    return expand(GET_TASK_RUN, task_run_id=task_run_id)


def list_params(params: ListTaskRunsParams | None) -> QueryParams:
    """Query parameters of ``GET /task-runs``."""
    request = (params or ListTaskRunsParams()).to_request()
    return query_params(_wire.to_dict(request, _wire.REST))


def events_params(task_run_ids: Iterable[str]) -> QueryParams:
    """Query parameters of ``GET /task-runs/events`` (``taskRunIds`` repeated)."""
    return query_params(
        _wire.to_dict(TaskRunEventsRequest(task_run_ids=list(task_run_ids)), _wire.REST)
    )


def check_ids(task_run_ids: Iterable[str]) -> list[str]:
    """The distinct run ids, in order; at least one."""
    if isinstance(task_run_ids, str):
        raise TypeError("task_run_ids must be a list of ids, not a single string")
    ids = list(dict.fromkeys(task_run_ids))
    if not ids:
        raise ValueError("task_run_events needs at least one task run id")
    for run_id in ids:
        run_path(run_id)
    return ids


# --------------------------------------------------------------------------- responses


def parse_task_run(raw: bytes) -> TaskRun:
    """A ``TaskRun`` response body."""
    return _wire.loads(TaskRun, raw, _wire.REST)


def parse_details(raw: bytes | str) -> TaskRunDetails:
    """A ``TaskRunDetails`` response body (or SSE data)."""
    return _wire.loads(TaskRunDetails, raw, _wire.REST)


class TaskRunList(list[TaskRun]):
    """One page of task runs: a list, plus the cursor of the next page.

    Attributes:
        next_cursor: Pass as ``ListTaskRunsParams(cursor=...)`` for the next page; None
            when this page is known to be the last.
    """

    next_cursor: str | None

    def __init__(self, runs: Iterable[TaskRun] = (), next_cursor: str | None = None) -> None:
        super().__init__(runs)
        self.next_cursor = next_cursor


def _list_item(cls: type[_wire.M], item: Any, index: int) -> _wire.M:
    try:
        return _wire.from_dict(cls, item, _wire.REST)
    except WireFormatError as exc:
        raise WireFormatError(exc.message, field=f"[{index}]") from None


def parse_task_run_list(raw: bytes, *, limit: int | None = None) -> TaskRunList:
    """A ``GET /task-runs`` body in either shape Render has used.

    ``[TaskRun, ...]`` (older API) or ``[{"cursor": ..., "taskRun": TaskRun}, ...]``
    (current API); an item may also be either shape independently. The next cursor is
    the last item's cursor (or run id); a page shorter than ``limit`` is the last.
    """
    data = _wire.parse_json(raw)
    if isinstance(data, dict):
        # Tolerate an envelope object around the list.
        for key in ("taskRuns", "items", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise WireFormatError(f"expected a JSON array of task runs, got {type(data).__name__}")
    runs: list[TaskRun] = []
    last_cursor: str | None = None
    for i, item in enumerate(data):
        if isinstance(item, dict) and ("taskRun" in item or "task_run" in item):
            wrapped = _list_item(TaskRunWithCursor, item, i)
            if wrapped.task_run is None:
                raise WireFormatError("taskRun is null", field=f"[{i}].taskRun")
            # Parsed into the public TaskRun (models points the field's class at it).
            runs.append(cast(TaskRun, wrapped.task_run))
            last_cursor = wrapped.cursor or wrapped.task_run.id
        else:
            run = _list_item(TaskRun, item, i)
            runs.append(run)
            last_cursor = run.id
    last_page = not runs or (limit is not None and len(runs) < limit)
    return TaskRunList(runs, None if last_page else last_cursor)


class Pages:
    """Where ``iter_task_runs`` is: the parameters of the next page, and the runs seen.

    The shells fetch ``params`` while it is not None and yield what :meth:`take` returns.
    """

    def __init__(self, params: ListTaskRunsParams | None) -> None:
        self.params: ListTaskRunsParams | None = first_page(params)
        self._seen: set[str] = set()

    def take(self, page: TaskRunList) -> list[TaskRun]:
        """The runs of ``page`` not yielded before; moves ``params`` to the next page."""
        assert self.params is not None
        fresh = [run for run in page if run.id not in self._seen]
        self._seen.update(run.id for run in fresh)
        self.params = next_page(self.params, page, fresh=bool(fresh))
        return fresh


def first_page(params: ListTaskRunsParams | None) -> ListTaskRunsParams:
    """The parameters of the first page when iterating (a page size is always set, so
    that a short page is known to be the last)."""
    current = params or ListTaskRunsParams()
    if current.limit is None:
        current = dataclasses.replace(current, limit=C.DEFAULT_PAGE_SIZE)
    return current


def next_page(
    current: ListTaskRunsParams, page: TaskRunList, *, fresh: bool
) -> ListTaskRunsParams | None:
    """The parameters of the page after ``page``, or None when it was the last.

    ``fresh`` says whether the page held runs not seen before: a server that ignores
    the cursor repeats a page, and iteration must stop rather than loop.
    """
    if page.next_cursor is None or not fresh or page.next_cursor == current.cursor:
        return None
    return dataclasses.replace(current, cursor=page.next_cursor)


def parse_task_list(raw: bytes) -> list[Task]:
    """A ``GET /tasks`` body: ``[{"task": Task, "cursor": ...}]`` or a bare ``[Task]``."""
    data = _wire.parse_json(raw)
    if not isinstance(data, list):
        raise WireFormatError(f"expected a JSON array of tasks, got {type(data).__name__}")
    tasks: list[Task] = []
    for item in data:
        if isinstance(item, dict) and "task" in item:
            wrapped = _wire.from_dict(TaskWithCursor, item, _wire.REST)
            if wrapped.task is not None:
                tasks.append(wrapped.task)
        else:
            tasks.append(_wire.from_dict(Task, item, _wire.REST))
    return tasks


def logs_params(task_run_id: str) -> QueryParams:
    """Query of ``GET /logs`` for one run: the local server reads ``taskRunID``, Render's
    public API ``taskRun``; both are sent."""
    run_path(task_run_id)
    return {"taskRunID": task_run_id, "taskRun": [task_run_id]}


def parse_logs(raw: bytes) -> ListLogsResponse:
    """A ``GET /logs`` body."""
    return _wire.loads(ListLogsResponse, raw, _wire.REST)


def status_of(run: TaskRun | TaskRunDetails) -> str:
    """A run's status as the wire spells it, unknown strings included."""
    return status_text(run.status, run.unknown_status)


MISSING: Final[Any] = object()


def run_task_arguments(
    task: Any, input: Any, task_identifier: Any, input_data: Any
) -> tuple[str, Any]:
    """``run_task``'s (task, input), accepting 0.4.0's keyword names with a warning.

    render_sdk 0.4.0 spelled them ``task_identifier=`` and ``input_data=``; code
    written for it keeps working and is told the new names.

    Raises:
        TypeError: An argument is missing or given under both names.
    """
    legacy = []
    for old, new, old_value, new_value in (
        ("task_identifier", "task", task_identifier, task),
        ("input_data", "input", input_data, input),
    ):
        if old_value is MISSING:
            continue
        if new_value is not MISSING:
            raise TypeError(
                f"run_task() got both {new}= and its 0.4.0 name {old}=; pass only {new}="
            )
        legacy.append((old, new))
    if legacy:
        olds = ", ".join(f"{old}=" for old, _ in legacy)
        news = ", ".join(f"{new}=" for _, new in legacy)
        warnings.warn(
            f"run_task({olds}) uses render_sdk 0.4.0's names; use run_task({news})",
            DeprecationWarning,
            stacklevel=3,
        )
    task = task if task_identifier is MISSING else task_identifier
    input = input if input_data is MISSING else input_data
    if task is MISSING or input is MISSING:
        missing = "task" if task is MISSING else "input"
        raise TypeError(f"run_task() missing required argument: {missing!r}")
    return task, input


def is_terminal(run: TaskRun | TaskRunDetails) -> bool:
    """True once a run can no longer change."""
    return run.status in TERMINAL_STATUSES


def outcome(details: TaskRunDetails) -> TaskRunDetails:
    """A terminal run's details when it succeeded.

    Raises:
        TaskRunError: The run failed or was canceled.
    """
    error = outcome_error(details)
    if error is not None:
        raise error
    return details


def outcome_error(details: TaskRunDetails) -> TaskRunError | None:
    """The :class:`TaskRunError` a terminal run stands for, or None if it succeeded."""
    status = status_of(details)
    if details.status == TaskRunStatus.CANCELED:
        reason = f": {details.error}" if details.error else ""
        return TaskRunError(
            f"task run {details.id} was canceled{reason}",
            task_run_id=details.id,
            details=details.error or "canceled",
            status=status,
        )
    if details.status == TaskRunStatus.FAILED or (
        details.status not in TERMINAL_STATUSES and details.error
    ):
        return TaskRunError(
            # 0.4.0 raised TaskRunError(<server error string>), so code printing
            # f"Task failed: {e}" reads "Task failed: ValueError: ..."; the run id
            # stays available as ``task_run_id``.
            details.error or f"task run {details.id} failed with no error details",
            task_run_id=details.id,
            details=details.error,
            status=status,
        )
    return None


# --------------------------------------------------------------------------- event stream


@dataclass
class EventStream:
    """State of one logical subscription to ``GET /task-runs/events`` across reconnects.

    The shells call :meth:`on_connected` when a 200 arrives, :meth:`on_sse` per decoded
    event, :meth:`on_snapshot` with the ``GET`` of each still-open run after connecting
    (so a run that ended before the subscription is not missed), and
    :meth:`on_failure` when a connection fails or drops, which returns the delay before
    the next attempt or raises.
    """

    ids: list[str]
    deadline: float | None = None
    #: Yield non-terminal events too (``task_run_events``), or only final states (waits).
    all_events: bool = True
    last_event_id: str | None = None
    server_retry: float | None = None
    failures: int = 0
    done: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic
    connected_at: float | None = None
    #: The last failure of a connection (what a wait that times out meanwhile was up against).
    last_error: RenderError | None = None

    @property
    def pending(self) -> list[str]:
        """Requested runs not yet seen in a terminal state."""
        return [i for i in self.ids if i not in self.done]

    @property
    def finished(self) -> bool:
        """True when every requested run reached a terminal state."""
        return len(self.done) == len(self.ids)

    def params(self) -> QueryParams:
        """Query parameters for the next connection (only the runs still open)."""
        return events_params(self.pending)

    def headers(self) -> dict[str, str]:
        """Headers for the next connection (``Last-Event-ID`` once an id was seen)."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None without one).

        Raises:
            TimeoutError: The deadline has passed.
        """
        if self.deadline is None:
            return None
        left = self.deadline - self.clock()
        if left <= 0:
            raise timeout_error(self)
        return left

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """Per-connection timeouts: reads may be silent up to ``SSE_READ_TIMEOUT``."""
        read = C.SSE_READ_TIMEOUT
        connect = base.connect if base.connect is not None else C.DEFAULT_CONNECT_TIMEOUT
        left = self.remaining()
        if left is not None:
            read, connect = min(read, left), min(connect, left)
        return httpx.Timeout(connect=connect, read=read, write=base.write, pool=base.pool)

    def on_connected(self) -> None:
        """A connection was accepted (status 2xx)."""
        self.connected_at = self.clock()

    def _accept(self, details: TaskRunDetails, *, terminal_name: bool) -> TaskRunDetails | None:
        if details.id not in self.ids or details.id in self.done:
            return None
        self.failures = 0
        terminal = is_terminal(details) or (
            terminal_name and details.status == TaskRunStatus.UNSPECIFIED
        )
        if terminal:
            self.done.add(details.id)
            return details
        return details if self.all_events else None

    def on_sse(
        self, event: str, data: str, event_id: str, retry: int | None
    ) -> TaskRunDetails | None:
        """Digest one decoded event; return the run it carries when the caller should see it.

        Raises:
            WireFormatError: The data of a task event is not a ``TaskRunDetails``.
        """
        if retry is not None and retry >= 0:
            self.server_retry = retry / 1000.0
        if event_id:
            self.last_event_id = event_id
        if not data or event not in C.SSE_EVENT_NAMES:
            return None
        if not self.all_events and event in C.NON_TERMINAL_EVENT_NAMES:
            return None  # a wait only needs the final state: skip decoding progress
        details = parse_details(data)
        return self._accept(details, terminal_name=event in C.TERMINAL_EVENT_NAMES)

    def on_snapshot(self, details: TaskRunDetails) -> TaskRunDetails | None:
        """Digest the ``GET`` of an open run made right after (re)connecting.

        Only a terminal snapshot is passed on: it stands for the event that was missed.
        """
        if not is_terminal(details):
            return None
        return self._accept(details, terminal_name=False)

    def on_failure(self, error: RenderError) -> float:
        """A connection failed or dropped; return seconds to wait before reconnecting.

        Raises:
            RenderError: ``error`` itself, when it is not transient or too many
                consecutive attempts failed.
            TimeoutError: The deadline passes before the next attempt.
        """
        if (
            self.connected_at is not None
            and self.clock() - self.connected_at >= C.SSE_STABLE_CONNECTION
        ):
            # A connection that stayed up for a while was healthy: start backoff afresh.
            self.failures = 0
        self.connected_at = None
        self.last_error = error
        transient = isinstance(error, ServerError | TimeoutError | RateLimitError) or (
            isinstance(error, ClientError)
            and error.status_code is not None
            and is_retryable_status(error.status_code)
        )
        if not transient or self.failures >= C.SSE_MAX_RECONNECTS:
            raise error
        retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        delay = retry_delay(
            self.failures,
            retry_after=retry_after,
            initial=C.SSE_RECONNECT_INITIAL_DELAY,
            maximum=C.SSE_RECONNECT_MAX_DELAY,
        )
        if retry_after is None and self.server_retry is not None:
            delay = max(delay, min(self.server_retry, C.SSE_RECONNECT_MAX_DELAY))
        self.failures += 1
        left = self.remaining()
        if left is not None and delay >= left:
            raise timeout_error(self) from error
        return delay


def wait_stream(task_run_id: str, timeout: float | None) -> EventStream:
    """The subscription of a wait: one run, final states only."""
    run_path(task_run_id)
    return EventStream(ids=[task_run_id], deadline=deadline_after(timeout), all_events=False)


def wait_ended_error(state: EventStream) -> RenderError:
    """The error of a wait whose event stream ended without the run's final state."""
    return RenderError(f"{OP_EVENTS} ended before task run {state.ids[0]} finished")


def timeout_error(state: EventStream) -> TimeoutError:
    """The error raised when a wait's deadline passes."""
    return TimeoutError(f"timed out waiting for task run(s) {', '.join(state.pending)} to finish")


def stream_ended_error() -> ServerError:
    """The error recorded when the server closes an event stream with runs still open."""
    return ServerError(f"{OP_EVENTS} failed: the server closed the event stream")


def content_type_error(response: httpx.Response) -> ServerError:
    """The error for a 2xx events response that is not an event stream."""
    return ServerError(
        f"{OP_EVENTS} failed: expected Content-Type text/event-stream, got "
        f"{response.headers.get('content-type', '')!r}",
        status_code=response.status_code,
    )


def replays_terminal(headers: Mapping[str, str]) -> bool:
    """Whether an event stream's server sends the already-terminal runs itself.

    Then the ``GET`` of each open run after subscribing (:meth:`EventStream.on_snapshot`)
    is not needed; see ``render_sdk._wire.EVENTS_REPLAY_HEADER``.
    """
    value = headers.get(_wire.EVENTS_REPLAY_HEADER, "")
    return value.strip().lower() == _wire.EVENTS_REPLAY_TERMINAL


def is_event_stream(headers: Mapping[str, str]) -> bool:
    """Whether a response's Content-Type is ``text/event-stream``."""
    return headers.get("content-type", "").partition(";")[0].strip().lower() == "text/event-stream"


def deadline_after(
    timeout: float | None, clock: Callable[[], float] = time.monotonic
) -> float | None:
    """The monotonic deadline ``timeout`` seconds from now (None without a timeout)."""
    if timeout is None:
        return None
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    return clock() + timeout
