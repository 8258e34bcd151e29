"""The asynchronous client: :class:`Render`, its workflows service and task run handles."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import httpx
from httpx_sse import EventSource

from .._errors import RenderError, TaskRunError
from ..models import ListLogsResponse, Task, TaskRun, TaskRunDetails
from . import _constants as C
from . import _protocol as P
from ._core import (
    AsyncHTTP,
    ClientConfig,
    error_from_response,
    map_transport_errors,
    resolve_config,
)

if TYPE_CHECKING:
    from ..experimental import ExperimentalService
    from .client import Client

__all__ = ["AwaitableTaskRun", "Render", "WorkflowsService"]


class AwaitableTaskRun:
    """A started task run. ``await`` it to wait for its final state.

    Returned by ``await render.workflows.run_task(...)``: the run has been created.
    Awaiting the handle waits until the run is terminal and returns its
    :class:`~render_sdk.models.TaskRunDetails`, or raises
    :class:`~render_sdk.client.errors.TaskRunError` when it failed or was canceled
    (also when it had already finished). Awaiting again returns the same outcome.

    Attributes:
        task_run: The run as the server returned it when it was created.
        workflows_service: The service that started it (and that waits for it).
    """

    def __init__(self, task_run: TaskRun, workflows_service: WorkflowsService) -> None:
        if not isinstance(task_run, TaskRun) or not isinstance(workflows_service, WorkflowsService):
            raise TypeError(
                f"AwaitableTaskRun(task_run, workflows_service) takes a TaskRun and a "
                f"WorkflowsService (render_sdk 0.4.0's order), got {type(task_run).__name__} and "
                f"{type(workflows_service).__name__}"
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

    def __await__(self) -> Generator[Any, None, TaskRunDetails]:
        return self.wait().__await__()

    async def wait(self, *, timeout: float | None = None) -> TaskRunDetails:
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
                details = await self.workflows_service.get_task_run(self.id)
            else:
                details = await self.workflows_service._wait(self.id, timeout)
            self._result = details
        return P.outcome(self._result)

    def __repr__(self) -> str:
        return f"AwaitableTaskRun(id={self.id!r}, status={self.status!r})"


class _SharedWaits:
    """The waits of one client share event streams instead of opening one each.

    A wait registers its run and waits on a future. One stream is opening at a time; the
    runs whose waits began while it was opening are covered by the next stream, so a
    ``gather`` over many runs, or many workers each awaiting a run, need a few streams
    rather than one per run. Each stream ends once its runs are terminal, or is closed
    when nobody waits for any of its runs any more (a wait that timed out or was
    cancelled). A stream's error goes to every wait still open on it.
    """

    def __init__(self, service: WorkflowsService) -> None:
        self._service = service
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reset()

    def _reset(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[TaskRunDetails]]] = {}
        self._queued: list[str] = []
        self._covering: dict[str, asyncio.Task[None]] = {}
        self._streams: dict[asyncio.Task[None], P.EventStream] = {}
        self._opener: asyncio.Task[None] | None = None

    async def wait(self, state: P.EventStream) -> TaskRunDetails:
        """The first terminal state of ``state``'s one run (raises what its stream raised).

        Raises:
            TimeoutError: ``state``'s deadline passed first (chained from the stream's last
                connection failure, when there was one).
        """
        run_id = state.ids[0]
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A later asyncio.run(): what was open belonged to a loop that is gone.
            self._loop = loop
            self._reset()
        future: asyncio.Future[TaskRunDetails] = loop.create_future()
        waiters = self._waiters.setdefault(run_id, set())
        stream = self._covering.get(run_id)
        # A stream that already passed the run's final state on will not repeat it.
        covered = stream is not None and run_id not in self._streams[stream].done
        if not covered and run_id not in self._queued:
            self._queued.append(run_id)
        waiters.add(future)
        if self._opener is None or self._opener.done():
            self._opener = loop.create_task(self._open())
        try:
            if state.deadline is None:
                return await future
            # Not wait_for: the future stays registered until the stream's error is read.
            done, _ = await asyncio.wait({future}, timeout=state.remaining())
            if not done:
                last = self.last_error(run_id)
                raise P.timeout_error(state) from last
            return future.result()
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(run_id) is waiters:
                del self._waiters[run_id]
                self._release(run_id)

    def _release(self, run_id: str) -> None:
        """Nobody waits for ``run_id`` any more: drop it, and its stream if that is idle."""
        if run_id in self._queued:
            self._queued.remove(run_id)
        stream = self._covering.get(run_id)
        if stream is None:
            return
        state = self._streams[stream]
        # A stream whose runs all ended is closing by itself; cancel only an abandoned one.
        if not state.finished and not any(i in self._waiters for i in state.pending):
            stream.cancel()
            # A wait that begins before the cancelled stream has wound down opens a new one.
            for other in state.ids:
                if self._covering.get(other) is stream:
                    del self._covering[other]

    def last_error(self, run_id: str) -> RenderError | None:
        """The last connection failure of the stream covering ``run_id``, if any."""
        stream = self._covering.get(run_id)
        return self._streams[stream].last_error if stream is not None else None

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queued:
            await asyncio.sleep(0)  # waits begun in the same step join this stream
            ids, self._queued = self._queued, []
            if not ids:
                continue
            opened = asyncio.Event()
            state = P.EventStream(ids=ids, all_events=False)
            stream = loop.create_task(self._watch(state, opened.set))
            self._streams[stream] = state
            for run_id in ids:
                self._covering[run_id] = stream
            signal = loop.create_task(opened.wait())
            try:
                await asyncio.wait({stream, signal}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                signal.cancel()

    async def _watch(self, state: P.EventStream, on_open: Callable[[], None]) -> None:
        error: BaseException | None = None
        try:
            async with contextlib.aclosing(self._service._stream(state, on_open)) as events:
                async for details in events:
                    self._settle(details.id, details, None)
            if not state.finished:
                error = P.stream_ended_error()
        except Exception as exc:
            error = exc
        finally:
            on_open()
            stream = asyncio.current_task()
            for run_id in state.ids:
                if self._covering.get(run_id) is stream:
                    del self._covering[run_id]
            self._streams.pop(stream, None)  # type: ignore[arg-type]
        if error is not None:
            for run_id in state.pending:
                self._settle(run_id, None, error)

    def _settle(
        self, run_id: str, details: TaskRunDetails | None, error: BaseException | None
    ) -> None:
        for future in self._waiters.get(run_id, ()):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                assert details is not None
                future.set_result(details)


class WorkflowsService:
    """Run, watch, cancel and list task runs (``render.workflows``)."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http
        self._waits = _SharedWaits(self)

    async def run_task(
        self,
        task: str = P.MISSING,
        input: Any = P.MISSING,
        *,
        task_identifier: str = P.MISSING,
        input_data: Any = P.MISSING,
    ) -> AwaitableTaskRun:
        """Start a task run.

        Args:
            task: The task slug (``"my-workflow/my-task"``, optionally ``:version``) or id.
            input: A list of positional arguments, or a dict of keyword arguments.

        Returns:
            A handle with ``.id`` and ``.status``; ``await`` it for the result.

        Raises:
            WireFormatError: ``input`` cannot be sent as JSON.
            ClientError: The server refused (unknown task: status 404).
        """
        task, input = P.run_task_arguments(task, input, task_identifier, input_data)
        body = P.run_task_body(task, input)
        response = await self._http.request(
            *P.request_line(P.RUN_TASK), operation=P.OP_RUN, content=body
        )
        return AwaitableTaskRun(P.parse_task_run(response.content), self)

    async def get_task_run(self, task_run_id: str) -> TaskRunDetails:
        """Fetch a task run with its input, results and error.

        Raises:
            ClientError: No such run (status 404).
        """
        response = await self._http.request(
            *P.request_line(P.GET_TASK_RUN, task_run_id=task_run_id), operation=P.OP_GET
        )
        return P.parse_details(response.content)

    async def cancel_task_run(self, task_run_id: str) -> None:
        """Cancel a pending or running task run (and its subtasks).

        Raises:
            ClientError: No such run.
            ServerError / ClientError: The run is no longer active.
        """
        await self._http.request(
            *P.request_line(P.CANCEL_TASK_RUN, task_run_id=task_run_id), operation=P.OP_CANCEL
        )

    async def list_task_runs(self, params: P.ListTaskRunsParams | None = None) -> P.TaskRunList:
        """One page of task runs, newest or oldest first as the server orders them.

        Returns:
            A list of :class:`~render_sdk.models.TaskRun` with ``.next_cursor``.
        """
        response = await self._http.request(
            *P.request_line(P.LIST_TASK_RUNS), operation=P.OP_LIST, params=P.list_params(params)
        )
        return P.parse_task_run_list(response.content, limit=params.limit if params else None)

    async def iter_task_runs(
        self, params: P.ListTaskRunsParams | None = None
    ) -> AsyncGenerator[TaskRun, None]:
        """Every task run matching ``params``, fetching page after page."""
        pages = P.Pages(params)
        while pages.params is not None:
            for run in pages.take(await self.list_task_runs(pages.params)):
                yield run

    async def task_run_events(
        self, task_run_ids: Iterable[str], *, timeout: float | None = None
    ) -> AsyncGenerator[TaskRunDetails, None]:
        """Stream the events of some task runs until all of them are terminal.

        Yields every event for the requested runs (``.id``, ``.status``, ``.error``,
        ``.results``), the final ones included; the stream is re-opened with
        ``Last-Event-ID`` when it drops, and a run that finished before the
        subscription is reported from a read made right after subscribing.

        Args:
            task_run_ids: The runs to watch.
            timeout: Stop with :class:`TimeoutError` after this many seconds.
        """
        state = P.EventStream(ids=P.check_ids(task_run_ids), deadline=P.deadline_after(timeout))
        async with contextlib.aclosing(self._stream(state)) as events:
            while True:
                try:
                    if state.deadline is None:
                        details = await events.__anext__()
                    else:
                        details = await asyncio.wait_for(events.__anext__(), state.remaining())
                except StopAsyncIteration:
                    return
                except asyncio.TimeoutError as exc:
                    raise P.timeout_error(state) from exc
                yield details

    async def wait_for_task_run(
        self, task_run_id: str, *, timeout: float | None = None
    ) -> TaskRunDetails:
        """Wait until a run is terminal; return its details or raise its error.

        Raises:
            TaskRunError: The run failed or was canceled.
            TimeoutError: ``timeout`` passed first.
        """
        return P.outcome(await self._wait(task_run_id, timeout))

    async def list_tasks(self) -> list[Task]:
        """The registered tasks."""
        response = await self._http.request(
            *P.request_line(P.LIST_TASKS), operation=P.OP_LIST_TASKS
        )
        return P.parse_task_list(response.content)

    async def _logs(self, task_run_id: str) -> ListLogsResponse:
        response = await self._http.request(
            *P.request_line(P.LIST_LOGS), operation=P.OP_LOGS, params=P.logs_params(task_run_id)
        )
        return P.parse_logs(response.content)

    async def _wait(self, task_run_id: str, timeout: float | None) -> TaskRunDetails:
        # The run's id is checked here; its stream is shared with the client's other waits.
        # The deadline bounds the whole wait, reconnect sleeps and trickling pings included.
        return await self._waits.wait(P.wait_stream(task_run_id, timeout))

    async def _stream(
        self, state: P.EventStream, on_open: Callable[[], None] | None = None
    ) -> AsyncGenerator[TaskRunDetails, None]:
        """``state``'s events across reconnects; ``on_open`` once subscribed (each time)."""
        while not state.finished:
            try:
                async with contextlib.aclosing(self._connect_once(state, on_open)) as events:
                    async for details in events:
                        yield details
                if state.finished:
                    return
                error: RenderError = P.stream_ended_error()
            except TaskRunError:
                raise
            except RenderError as exc:
                error = exc
            await self._http.sleep(state.on_failure(error))

    async def _connect_once(
        self, state: P.EventStream, on_open: Callable[[], None] | None = None
    ) -> AsyncGenerator[TaskRunDetails, None]:
        config = self._http.config
        headers = {**config.headers, **state.headers()}
        timeout = state.timeout(config.timeout)
        with map_transport_errors(P.OP_EVENTS):
            async with self._http.client().stream(
                P.TASK_RUN_EVENTS.method,
                config.url(P.request_line(P.TASK_RUN_EVENTS)[1]),
                params=state.params(),
                headers=headers,
                timeout=timeout,
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise error_from_response(response, P.OP_EVENTS)
                if not P.is_event_stream(response.headers):
                    raise P.content_type_error(response)
                state.on_connected()
                if not P.replays_terminal(response.headers):
                    for run_id in state.pending:
                        details = state.on_snapshot(await self.get_task_run(run_id))
                        if details is not None:
                            yield details
                if on_open is not None:
                    on_open()
                if state.finished:
                    return
                async for sse in EventSource(response).aiter_sse():
                    details = state.on_sse(sse.event, sse.data, sse.id, sse.retry)
                    if details is not None:
                        yield details
                        if state.finished:
                            return


class Render:
    """The asynchronous Render client.

    Example::

        async with Render() as render:
            run = await render.workflows.run_task("my-workflow/my-task", [3, 4])
            details = await run
            print(details.results)

    Args:
        token: API key; defaults to ``RENDER_API_KEY``. Optional against a local task
            server (``RENDER_USE_LOCAL_DEV`` / ``RENDER_LOCAL_DEV_URL``, or a loopback
            ``base_url``).
        base_url: Render's API (default) or a task server; ``/v1`` is appended. Without
            an explicit value, ``RENDER_LOCAL_DEV_URL`` / ``RENDER_USE_LOCAL_DEV`` choose
            the local server.
        owner_id: Default workspace id for object storage (``RENDER_WORKSPACE_ID``).
        region: Default region for object storage (``RENDER_REGION``).
        timeout: Per-request timeout in seconds, or an ``httpx.Timeout``.
        max_retries: Retries of idempotent requests after transient failures.
        http_client: An ``httpx.AsyncClient`` to use instead of the client's own pool
            (for example with a ``MockTransport`` in tests); it is not closed by us.

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
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        config = resolve_config(
            token=token,
            base_url=base_url,
            owner_id=owner_id,
            region=region,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._http = AsyncHTTP(config, http_client=http_client)
        self._workflows = WorkflowsService(self._http)
        self._experimental: ExperimentalService | None = None

    @property
    def config(self) -> ClientConfig:
        """The resolved configuration (base URL, token, owner id, region, ...)."""
        return self._http.config

    @property
    def workflows(self) -> WorkflowsService:
        """Run, watch, cancel and list task runs."""
        return self._workflows

    @property
    def client(self) -> Client:
        """render_sdk 0.4.0's ``Client`` view of this client (same services, same pool)."""
        from .client import Client

        return Client._of(self)

    @property
    def experimental(self) -> ExperimentalService:
        """Experimental APIs (``render.experimental.storage.objects``), loaded on first use."""
        if self._experimental is None:
            module = importlib.import_module("render_sdk.experimental")
            self._experimental = cast("ExperimentalService", module.ExperimentalService(self._http))
        return self._experimental

    async def aclose(self) -> None:
        """Close the connection pool (a later call opens a new one). Safe to call twice."""
        await self._http.aclose()

    async def __aenter__(self) -> Render:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Render(base_url={self.config.base_url!r})"
