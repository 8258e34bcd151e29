"""The synchronous twin of :mod:`._async`: :class:`RenderSync` for Flask, Django and scripts.

Same methods, same protocol logic (:mod:`._protocol`, :mod:`._core`); the I/O is a
pooled ``httpx.Client``. No event loop is involved.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Generator, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import httpx
from httpx_sse import EventSource

from .._errors import RenderError, TaskRunError
from ..models import ListLogsResponse, Task, TaskRun, TaskRunDetails
from . import _constants as C
from . import _protocol as P
from ._core import ClientConfig, SyncHTTP, error_from_response, map_transport_errors, resolve_config

if TYPE_CHECKING:
    from ..experimental import ExperimentalServiceSync

__all__ = ["RenderSync", "TaskRunSync", "WorkflowsServiceSync"]


class _DeadlineText:
    """The part of a response httpx-sse reads, checking the deadline after every chunk.

    A read timeout alone cannot end a wait on time: heartbeats (``: ping``) keep every
    read short while no event arrives.
    """

    def __init__(self, response: httpx.Response, state: P.EventStream) -> None:
        self._response = response
        self._state = state

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    def iter_text(self) -> Iterator[str]:
        for chunk in self._response.iter_text():
            self._state.remaining()
            yield chunk


class TaskRunSync:
    """A started task run (sync twin of :class:`AwaitableTaskRun`); call :meth:`wait`.

    Attributes:
        task_run: The run as the server returned it when it was created.
        workflows_service: The service that started it (and that waits for it).
    """

    def __init__(self, task_run: TaskRun, workflows_service: WorkflowsServiceSync) -> None:
        if not isinstance(task_run, TaskRun) or not isinstance(
            workflows_service, WorkflowsServiceSync
        ):
            raise TypeError(
                f"TaskRunSync(task_run, workflows_service) takes a TaskRun and a "
                f"WorkflowsServiceSync (render_sdk 0.4.0's order), got "
                f"{type(task_run).__name__} and {type(workflows_service).__name__}"
            )
        self.task_run = task_run
        self.workflows_service = workflows_service
        self._result: TaskRunDetails | None = None

    @property
    def id(self) -> str:
        """The task run id (``trn-...``)."""
        return self.task_run.id

    @property
    def status(self) -> str:
        """The status when the run was created (``"pending"``, ``"running"``, ...)."""
        return P.status_of(self.task_run)

    def is_terminal_status(self) -> bool:
        """True when the run was already terminal when it was created (0.4.0's check).

        Like 0.4.0 this looks at the creation snapshot (:attr:`status`), not the
        server's current state; unlike 0.4.0 (fixed upstream in 0.5.0) a canceled
        run counts as terminal too, alongside completed and failed.
        """
        return P.is_terminal(self.task_run)

    def wait(self, *, timeout: float | None = None) -> TaskRunDetails:
        """Wait for the run's final state.

        Args:
            timeout: Give up after this many seconds (None waits as long as it takes).

        Returns:
            The details of the completed run (``.results`` holds its results).

        Raises:
            TaskRunError: The run failed or was canceled.
            TimeoutError: ``timeout`` passed first.
        """
        if self._result is None:
            if P.is_terminal(self.task_run):
                details = self.workflows_service.get_task_run(self.id)
            else:
                details = self.workflows_service._wait(self.id, timeout)
            self._result = details
        return P.outcome(self._result)

    def __repr__(self) -> str:
        return f"TaskRunSync(id={self.id!r}, status={self.status!r})"


class WorkflowsServiceSync:
    """Run, watch, cancel and list task runs (``RenderSync().workflows``)."""

    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def run_task(
        self,
        task: str = P.MISSING,
        input: Any = P.MISSING,
        *,
        task_identifier: str = P.MISSING,
        input_data: Any = P.MISSING,
    ) -> TaskRunSync:
        """Start a task run; see :meth:`WorkflowsService.run_task`."""
        task, input = P.run_task_arguments(task, input, task_identifier, input_data)
        body = P.run_task_body(task, input)
        response = self._http.request(*P.request_line(P.RUN_TASK), operation=P.OP_RUN, content=body)
        return TaskRunSync(P.parse_task_run(response.content), self)

    def get_task_run(self, task_run_id: str) -> TaskRunDetails:
        """Fetch a task run; see :meth:`WorkflowsService.get_task_run`."""
        response = self._http.request(
            *P.request_line(P.GET_TASK_RUN, task_run_id=task_run_id), operation=P.OP_GET
        )
        return P.parse_details(response.content)

    def cancel_task_run(self, task_run_id: str) -> None:
        """Cancel a task run; see :meth:`WorkflowsService.cancel_task_run`."""
        self._http.request(
            *P.request_line(P.CANCEL_TASK_RUN, task_run_id=task_run_id), operation=P.OP_CANCEL
        )

    def list_task_runs(self, params: P.ListTaskRunsParams | None = None) -> P.TaskRunList:
        """One page of task runs; see :meth:`WorkflowsService.list_task_runs`."""
        response = self._http.request(
            *P.request_line(P.LIST_TASK_RUNS), operation=P.OP_LIST, params=P.list_params(params)
        )
        return P.parse_task_run_list(response.content, limit=params.limit if params else None)

    def iter_task_runs(
        self, params: P.ListTaskRunsParams | None = None
    ) -> Generator[TaskRun, None, None]:
        """Every task run matching ``params``; see :meth:`WorkflowsService.iter_task_runs`."""
        pages = P.Pages(params)
        while pages.params is not None:
            yield from pages.take(self.list_task_runs(pages.params))

    def task_run_events(
        self, task_run_ids: Iterable[str], *, timeout: float | None = None
    ) -> Generator[TaskRunDetails, None, None]:
        """Stream task run events; see :meth:`WorkflowsService.task_run_events`."""
        state = P.EventStream(ids=P.check_ids(task_run_ids), deadline=P.deadline_after(timeout))
        with contextlib.closing(self._stream(state)) as events:
            yield from events

    def wait_for_task_run(
        self, task_run_id: str, *, timeout: float | None = None
    ) -> TaskRunDetails:
        """Wait until a run is terminal; see :meth:`WorkflowsService.wait_for_task_run`."""
        return P.outcome(self._wait(task_run_id, timeout))

    def list_tasks(self) -> list[Task]:
        """The registered tasks."""
        response = self._http.request(*P.request_line(P.LIST_TASKS), operation=P.OP_LIST_TASKS)
        return P.parse_task_list(response.content)

    def _logs(self, task_run_id: str) -> ListLogsResponse:
        response = self._http.request(
            *P.request_line(P.LIST_LOGS), operation=P.OP_LOGS, params=P.logs_params(task_run_id)
        )
        return P.parse_logs(response.content)

    def _wait(self, task_run_id: str, timeout: float | None) -> TaskRunDetails:
        state = P.wait_stream(task_run_id, timeout)
        with contextlib.closing(self._stream(state)) as events:
            for details in events:
                return details
        raise P.wait_ended_error(state)

    def _stream(self, state: P.EventStream) -> Generator[TaskRunDetails, None, None]:
        while not state.finished:
            try:
                with contextlib.closing(self._connect_once(state)) as events:
                    yield from events
                if state.finished:
                    return
                error: RenderError = P.stream_ended_error()
            except TaskRunError:
                raise
            except RenderError as exc:
                error = exc
            self._http.sleep(state.on_failure(error))

    def _connect_once(self, state: P.EventStream) -> Generator[TaskRunDetails, None, None]:
        config = self._http.config
        headers = {**config.headers, **state.headers()}
        timeout = state.timeout(config.timeout)
        with (
            map_transport_errors(P.OP_EVENTS),
            self._http.client().stream(
                P.TASK_RUN_EVENTS.method,
                config.url(P.request_line(P.TASK_RUN_EVENTS)[1]),
                params=state.params(),
                headers=headers,
                timeout=timeout,
            ) as response,
        ):
            if not response.is_success:
                response.read()
                raise error_from_response(response, P.OP_EVENTS)
            if not P.is_event_stream(response.headers):
                raise P.content_type_error(response)
            state.on_connected()
            if not P.replays_terminal(response.headers):
                for run_id in state.pending:
                    details = state.on_snapshot(self.get_task_run(run_id))
                    if details is not None:
                        yield details
            if state.finished:
                return
            source = EventSource(cast(httpx.Response, _DeadlineText(response, state)))
            for sse in source.iter_sse():
                details = state.on_sse(sse.event, sse.data, sse.id, sse.retry)
                if details is not None:
                    yield details
                    if state.finished:
                        return


class RenderSync:
    """The synchronous Render client, the twin of :class:`Render` (same arguments).

    Example::

        with RenderSync() as render:
            run = render.workflows.run_task("my-workflow/my-task", [3, 4])
            print(run.wait().results)

    Raises:
        ConfigurationError: No token against Render's API.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        base_url: str = C.DEFAULT_BASE_URL,
        owner_id: str | None = None,
        region: str | None = None,
        timeout: float | httpx.Timeout | None = C.DEFAULT_TIMEOUT,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        config = resolve_config(
            token=token,
            base_url=base_url,
            owner_id=owner_id,
            region=region,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._http = SyncHTTP(config, http_client=http_client)
        self._workflows = WorkflowsServiceSync(self._http)
        self._experimental: ExperimentalServiceSync | None = None

    @property
    def config(self) -> ClientConfig:
        """The resolved configuration (base URL, token, owner id, region, ...)."""
        return self._http.config

    @property
    def workflows(self) -> WorkflowsServiceSync:
        """Run, watch, cancel and list task runs."""
        return self._workflows

    @property
    def experimental(self) -> ExperimentalServiceSync:
        """Experimental APIs (``render.experimental.storage.objects``), loaded on first use."""
        if self._experimental is None:
            module = importlib.import_module("render_sdk.experimental")
            self._experimental = cast(
                "ExperimentalServiceSync", module.ExperimentalServiceSync(self._http)
            )
        return self._experimental

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one). Safe to call twice."""
        self._http.close()

    def __enter__(self) -> RenderSync:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RenderSync(base_url={self.config.base_url!r})"
