"""Run lifecycle: registration, one process per attempt, retries, timeouts, cancel, subtasks.

Everything here runs on the server's event loop. The decisions (state transitions,
retry delays, status lines) come from :mod:`._protocol`; this module wires them to the
launcher, the task sockets, the store and the event hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import itertools
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .. import _wire
from .._console import StatusLine
from .._constants import MAX_INPUT_BYTES, MAX_RESULT_BYTES, over_limit
from .._errors import WireFormatError
from .._gen.routes import TASK_SOCKET_SERVICE
from .._routing import bind, by_request_line
from ..models import status_text
from ..models.tasksocket import (
    CallbackRequest,
    GetInputResponse,
    GetSubtaskResultRequest,
    GetSubtaskResultResponse,
    RegisterTasksRequest,
    RunSubtaskRequest,
    RunSubtaskResponse,
    TaskComplete,
    TaskError,
    TaskParameter,
)
from ._constants import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    LOG_FLUSH_S,
    MAX_WAIT_MS,
    REGISTRATION_OUTPUT_INDENT,
    REGISTRATION_TIMEOUT_S,
    REUSE_END_WAIT_S,
    SSE_HISTORY,
    SSE_HISTORY_MAX_BYTES,
    SSE_QUEUE_SIZE,
    SSE_SUBSCRIBER_MAX_BYTES,
)
from ._limits import AttemptGate, default_concurrency
from ._protocol import (
    RetryPolicy,
    RunEvent,
    RunStatus,
    is_terminal,
    new_run_id,
    resolve_slug,
    retry_delay_ms,
    sse_event_name,
    sse_frame,
    transition,
)
from ._socket import BodyBudget, Handler, TaskSocketServer, error_body, new_socket_path
from ._store import PARAMETER_KINDS, ParameterRecord, RunRecord, Store, TaskDef, TaskRecord, utcnow
from ._views import task_run_details

if TYPE_CHECKING:
    from ._launcher import LaunchedProcess, Launcher

_SOCKET_OK: Final = b""
#: The task socket's routes by request line, from the schema's TaskSocketService.
_SOCKET_ROUTES: Final = by_request_line(TASK_SOCKET_SERVICE)


def path_of(rpc: str) -> str:
    """The task-socket path of a TaskSocketService rpc."""
    route = TASK_SOCKET_SERVICE[rpc]
    return route.base_path + route.path


class OrchestratorError(Exception):
    """A request the orchestrator refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RegistrationError(Exception):
    """The command did not register its tasks (exited, timed out, or could not start).

    Attributes:
        output: The command's own output (its traceback, typically), at most
            ``REGISTRATION_OUTPUT_LIMIT`` bytes from its end, decoded.
    """

    def __init__(self, message: str, *, output: str = "") -> None:
        super().__init__(message)
        self.output = output


#: How much of a failed registration's output is kept for the console (its end).
REGISTRATION_OUTPUT_LIMIT = 16 * 1024


# --------------------------------------------------------------------------- events


@dataclass(eq=False)
class Subscriber:
    """One SSE stream's bounded queue of frames."""

    run_ids: frozenset[str]
    #: Subscribed to every run (the dashboard's stream) rather than to ``run_ids``.
    all_runs: bool = False
    queue: deque[bytes] = field(default_factory=deque)
    #: Bytes of frames not yet handed to the connection (queued, or the rest of the one in
    #: flight): how far behind this stream is.
    behind: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False
    #: Runs whose terminal event is in (or went out before) ``queue``: once it holds every
    #: requested run, the stream has said all it will and ends (the official clients'
    #: ``task_run_events`` loops only stop when the server closes the stream).
    terminal_sent: set[str] = field(default_factory=set)

    def reset(self, frames: Iterable[bytes]) -> None:
        """Replace what is queued by ``frames`` (a new stream's replay)."""
        self.queue = deque(frames)
        self.behind = sum(len(f) for f in self.queue)


@dataclass(eq=False)
class _Entry:
    """One event in the replay history; ``frame`` is None once evicted from the byte budget."""

    event_id: int
    run_id: str
    frame: bytes | None


class EventHub:
    """Fans run events out to SSE subscribers without ever blocking the publisher.

    Memory is bounded by the constants, not by payload sizes: each frame is encoded once
    and the same bytes are shared by the history and every subscriber's queue; the history
    keeps at most ``history`` compact entries and ``history_bytes`` of frames; a subscriber
    more than ``max_behind`` bytes (or ``queue_size`` frames) behind is dropped (its stream
    ends after what was queued, and the client resumes with Last-Event-ID).
    """

    def __init__(
        self,
        *,
        queue_size: int = SSE_QUEUE_SIZE,
        max_behind: int = SSE_SUBSCRIBER_MAX_BYTES,
        history: int = SSE_HISTORY,
        history_bytes: int = SSE_HISTORY_MAX_BYTES,
    ) -> None:
        self._subs: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()
        self._queue_size = queue_size
        self._max_behind = max_behind
        self._history: deque[_Entry] = deque()
        self._history_len = history
        #: Each run's newest event id that fell out of the history.
        self._forgotten: dict[str, int] = {}
        #: The entries of ``_history`` that still hold their frame, oldest first.
        self._framed: deque[_Entry] = deque()
        self._framed_bytes = 0
        self._history_bytes = history_bytes
        #: The newest frame of each run somebody watches, shared by all its new streams.
        self._current: dict[str, tuple[int, bytes]] = {}
        # Seeded from the clock so that ids keep growing across restarts: a client that
        # resumes with an older server's Last-Event-ID then gets the newer events.
        self._ids = itertools.count(int(time.time() * 1000))
        #: The newest id handed out; a Last-Event-ID above it was never issued here.
        self.last_issued = next(self._ids)
        #: The newest event id that has left the history (replays from before it are gappy).
        self._evicted_id = self.last_issued
        #: The id of each run's terminal event, reused when it is replayed on subscribe.
        self.terminal_ids: dict[str, int] = {}
        #: The id of each run's newest event (a replay of its current state reuses it).
        self.latest_ids: dict[str, int] = {}

    @property
    def subscriber_count(self) -> int:
        """Live subscribers (for tests of disconnect handling)."""
        return len({s for subs in self._subs.values() for s in subs} | self._all)

    @property
    def history_bytes(self) -> int:
        """Bytes of frames the history holds (for tests of its bound)."""
        return self._framed_bytes

    def subscribe(self, run_ids: Iterable[str]) -> Subscriber:
        """Register a subscriber for ``run_ids``."""
        sub = Subscriber(run_ids=frozenset(run_ids))
        for run_id in sub.run_ids:
            self._subs.setdefault(run_id, set()).add(sub)
        return sub

    def subscribe_all(self) -> Subscriber:
        """Register a subscriber for the events of every run."""
        sub = Subscriber(run_ids=frozenset(), all_runs=True)
        self._all.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a subscriber (idempotent)."""
        self._all.discard(sub)
        for run_id in sub.run_ids:
            subs = self._subs.get(run_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[run_id]
                    self._current.pop(run_id, None)

    def next_id(self) -> int:
        """A fresh event id."""
        self.last_issued = next(self._ids)
        return self.last_issued

    def replay_after(
        self, last_id: int, run_ids: frozenset[str]
    ) -> tuple[list[tuple[str, bytes]], set[str]]:
        """What a stream resuming after ``last_id`` missed, for ``run_ids``.

        Returns the ``(run id, frame)`` pairs still held, in order, and the runs that missed
        events whose frames are gone (evicted, or older than the history): those are to be
        replayed as one frame of their current state instead, and get no exact frames here.
        """
        stale = {rid for rid in run_ids if self._forgotten.get(rid, 0) > last_id}
        stale.update(
            e.run_id
            for e in self._history
            if e.frame is None and e.event_id > last_id and e.run_id in run_ids
        )
        frames = [
            (e.run_id, e.frame)
            for e in self._history
            if e.frame is not None
            and e.event_id > last_id
            and e.run_id in run_ids
            and e.run_id not in stale
        ]
        return frames, stale

    def current_frame(self, run_id: str, build: Callable[[int], bytes]) -> bytes:
        """The frame of ``run_id``'s current state under its newest event id, built once.

        Every new stream of a watched run shares the same bytes, however many there are.
        """
        event_id = self.latest_ids.get(run_id)
        cached = self._current.get(run_id)
        if cached is not None and cached[0] == event_id:
            return cached[1]
        if event_id is None:
            event_id = self.latest_ids[run_id] = self.next_id()
        frame = build(event_id)
        if run_id in self._subs:
            self._current[run_id] = (event_id, frame)
        return frame

    def _remember(self, entry: _Entry) -> None:
        if len(self._history) >= self._history_len:
            old = self._history.popleft()
            self._forgotten[old.run_id] = old.event_id
            self._evict_frame(old)
        self._history.append(entry)
        assert entry.frame is not None
        if len(entry.frame) > self._history_bytes:
            entry.frame = None
            self._evicted_id = entry.event_id
            return
        self._framed.append(entry)
        self._framed_bytes += len(entry.frame)
        while self._framed_bytes > self._history_bytes:
            self._evict_frame(self._framed[0])

    def _evict_frame(self, entry: _Entry) -> None:
        if entry.frame is not None:
            self._evicted_id = max(self._evicted_id, entry.event_id)
            self._framed_bytes -= len(entry.frame)
            entry.frame = None
            self._framed.popleft()

    def replay_all_after(self, last_id: int) -> list[bytes] | None:
        """Frames of every run above ``last_id``, or None when some have left the history."""
        if last_id < self._evicted_id:
            return None
        # Frames leave oldest first, so every entry above the evicted id still has its frame.
        return [e.frame for e in self._history if e.event_id > last_id and e.frame is not None]

    def publish(
        self, run_id: str, frame_for: Callable[[int], bytes], *, terminal: bool = False
    ) -> None:
        """Queue an event for every subscriber of ``run_id``."""
        event_id = self.next_id()
        if terminal:
            self.terminal_ids[run_id] = event_id
        self.latest_ids[run_id] = event_id
        frame = frame_for(event_id)
        self._remember(_Entry(event_id, run_id, frame))
        subs = self._subs.get(run_id)
        if subs:
            self._current[run_id] = (event_id, frame)
        for sub in [*(subs or ()), *self._all]:
            if sub.behind and (
                len(sub.queue) >= self._queue_size or sub.behind + len(frame) > self._max_behind
            ):
                sub.dropped = True
                self.unsubscribe(sub)
            else:
                sub.queue.append(frame)
                sub.behind += len(frame)
                if terminal:
                    sub.terminal_sent.add(run_id)
            sub.wakeup.set()


# --------------------------------------------------------------------------- attempts


@dataclass(eq=False)
class _Attempt:
    """A live attempt: its process, socket and outcome signals."""

    run: RunRecord
    number: int
    callback: asyncio.Future[CallbackRequest]
    canceled: asyncio.Event = field(default_factory=asyncio.Event)
    process: LaunchedProcess | None = None
    server: TaskSocketServer | None = None
    gate_key: object = None
    #: Children of earlier attempts this attempt took over, by the idempotency key of
    #: the call that did (a resent call finds the same child).
    reused: dict[str, str] = field(default_factory=dict)
    #: Every child this attempt took over (calls without a key included).
    claimed: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Outcome:
    status: RunStatus  # COMPLETED or FAILED (CANCELED handled by cancel())
    output: bytes | None = None
    error: str | None = None
    #: The failed attempt's traceback as its runner sent it (ours: the user's frames).
    stack_trace: str | None = None


class Orchestrator:
    """Owns every run's lifecycle.

    Args:
        store: The state.
        launcher: Starts the user's command (C2's launcher).
        socket_dir: A private directory for the per-process task sockets.
        report: Prints one status line.
        echo_output: Also copy every child's output to this process's stdout/stderr
            (``--debug``).
        registration_timeout: Seconds a command has to register its tasks.
        max_concurrency: The most attempts running at once; more runs wait in
            ``pending``. Default: what the fd limit and the CPU count allow
            (:func:`._limits.default_concurrency`).
        header_timeout_s: Seconds a task-socket connection has to send a request's head.
        body_timeout_s: Windows in which the body must bring ``BODY_MIN_BYTES``.
    """

    def __init__(
        self,
        *,
        store: Store,
        launcher: Launcher,
        socket_dir: Path,
        report: Callable[[str], None],
        echo_output: bool = False,
        registration_timeout: float = REGISTRATION_TIMEOUT_S,
        max_concurrency: int | None = None,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        body_timeout_s: float = BODY_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.launcher = launcher
        self.socket_dir = socket_dir
        self.hub = EventHub()
        self._report = report
        self._echo = echo_output
        self._registration_timeout = registration_timeout
        self._register_lock = asyncio.Lock()
        self.registration_error: str | None = None
        #: The failed registration's own output (the app's traceback), else "".
        self.registration_output = ""
        #: When the tasks listed now were registered (None: not yet in this session).
        self.registered_at: _dt.datetime | None = None
        #: The last good registration's tasks in the app's order, with their parameters.
        self.task_parameters: dict[str, list[TaskParameter]] = {}
        self._active: dict[str, _Attempt] = {}
        #: One future per reusable worker being handed back (done once it is idle or gone).
        self._handing_back: set[asyncio.Future[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log_flush: asyncio.TimerHandle | None = None
        self._partial: dict[tuple[str, str], bytes] = {}
        self._closing = False
        self._header_timeout_s = header_timeout_s
        self._body_timeout_s = body_timeout_s
        #: Bytes of request bodies held by every task socket together.
        self.body_budget = BodyBudget()
        self.gate = AttemptGate(
            max_concurrency if max_concurrency is not None else default_concurrency()
        )

    # ------------------------------------------------------------------ helpers

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _socket_server(self, handler: Handler) -> TaskSocketServer:
        return TaskSocketServer(
            new_socket_path(self.socket_dir),
            handler,
            header_timeout_s=self._header_timeout_s,
            body_timeout_s=self._body_timeout_s,
            budget=self.body_budget,
        )

    def task_for(self, slug: str) -> TaskRecord | None:
        """Resolve a task id, name, ``workflow/name`` or ``workflow/name:version``."""
        tasks = self.store.registered_tasks()
        by_name = {t.name: t.id for t in tasks}
        by_id = {t.id: t.name for t in tasks}
        name = resolve_slug(slug, by_name, by_id)
        return self.store.tasks.get(name) if name else None

    def run_details(self, run: RunRecord) -> bytes:
        """A run's TaskRunDetails as REST JSON bytes."""
        return _wire.dumps(task_run_details(run, self.store.task_id(run.task_name)), _wire.REST)

    def _publish(self, run: RunRecord) -> None:
        name = sse_event_name(run.status)
        data = self.run_details(run)
        self.hub.publish(
            run.id, lambda i: sse_frame(i, name, data), terminal=is_terminal(run.status)
        )
        if is_terminal(run.status):
            done = self._done.pop(run.id, None)
            if done is not None:
                done.set()

    def _status(self, run: RunRecord, **extra: Any) -> None:
        """Print the line of the transition ``run`` just made (its status says which)."""
        parent = self.store.runs.get(run.parent_id) if run.parent_id else None
        end = run.completed_at or utcnow()
        start = run.attempts[0].started_at if run.attempts else run.created_at
        line = StatusLine(
            status=run.status,
            run_id=run.id,
            task_name=run.task_name,
            depth=run.depth,
            parent_task_name=parent.task_name if parent else "",
            input_json=run.input,
            duration_s=(end - start).total_seconds(),
            attempt=max(1, len(run.attempts)),
            **extra,
        )
        self._report(line.render())

    def _traceback(self, run: RunRecord, stack_trace: str | None) -> None:
        # --debug shows a failed attempt's traceback under its status line. The task
        # process prints it too, but is killed as soon as its callback arrives, so its
        # own copy rarely makes it to the echoed output.
        if self._echo and stack_trace:
            indent = "  " * run.depth + REGISTRATION_OUTPUT_INDENT
            for line in stack_trace.rstrip("\n").splitlines():
                self._report(f"{indent}{line}")

    def _on_output(self, run_id: str, stream: str, chunk: bytes) -> None:
        # Chunks are cut wherever the pipe read ended; logs are lines. A partial line
        # waits for its newline, or for the next flush tick.
        key = (run_id, stream)
        data = self._partial.pop(key, b"") + chunk
        *lines, rest = data.split(b"\n")
        for line in lines:
            self.store.add_log(run_id, stream, line.decode("utf-8", errors="replace") + "\n")
        if rest:
            self._partial[key] = rest
        if self._log_flush is None:
            self._log_flush = asyncio.get_running_loop().call_later(LOG_FLUSH_S, self._flush_logs)
        if self._echo:
            target = sys.stderr if stream == "stderr" else sys.stdout
            target.write(chunk.decode("utf-8", errors="replace"))
            target.flush()

    def _flush_logs(self) -> None:
        self._log_flush = None
        partial, self._partial = self._partial, {}
        for (run_id, stream), rest in partial.items():
            self.store.add_log(run_id, stream, rest.decode("utf-8", errors="replace"))
        self.store.flush_logs()

    # ------------------------------------------------------------------ registration

    async def register(self) -> list[TaskRecord]:
        """Run the command in register mode and replace the task set with what it sends.

        Raises:
            RegistrationError: It exited, timed out or could not start (message says which).
        """
        async with self._register_lock:
            try:
                tasks = await self._register_once()
            except RegistrationError as exc:
                self.registration_error = str(exc)
                self.registration_output = exc.output
                raise
            self.registration_error = None
            self.registration_output = ""
            self.registered_at = utcnow()
            return tasks

    @property
    def serving(self) -> str:
        """Which version of the app runs start from (``/v1/dashboard/info``'s ``serving``).

        ``"current"``: the last registration succeeded. After one failed: ``"last-good"``
        when runs still fork from the last good import (warm start), else ``"broken"``
        (each run starts the current source, and fails the same way, until it is fixed).
        """
        if self.registration_error is None:
            return "current"
        if getattr(self.launcher, "serving_last_good", False) and self.registered_at:
            return "last-good"
        return "broken"

    async def _register_once(self) -> list[TaskRecord]:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[RegisterTasksRequest] = loop.create_future()

        async def handle(method: str, path: str, body: bytes) -> tuple[int, bytes]:
            route = _SOCKET_ROUTES.get((method, path))
            rpc = route.name if route is not None else None
            if rpc == "GetInput":
                return 200, _wire.dumps(GetInputResponse(task_name="", input=b""), _wire.SOCKET)
            if rpc == "RegisterTasks":
                if got.done():
                    return 409, error_body("tasks were already registered by this process")
                try:
                    req = _wire.loads(RegisterTasksRequest, body, _wire.SOCKET)
                except WireFormatError as exc:
                    return 400, error_body(f"invalid register-tasks body: {exc}")
                got.set_result(req)
                return 200, _SOCKET_OK
            if route is not None:
                return 409, error_body(f"{path} is not available in register mode")
            return 404, error_body(f"no route {method} {path}")

        captured = bytearray()

        def on_output(stream: str, chunk: bytes) -> None:
            captured.extend(chunk)
            del captured[:-REGISTRATION_OUTPUT_LIMIT]
            self._on_output("", stream, chunk)

        server = self._socket_server(handle)
        await server.start()
        proc: LaunchedProcess | None = None
        try:
            try:
                proc = await self.launcher.start(
                    mode="register", socket_path=str(server.path), on_output=on_output
                )
                server.bind(proc.pid)
            except Exception as exc:
                raise RegistrationError(f"failed to start the command: {exc}") from exc
            exited = loop.create_task(proc.wait())
            try:
                waiting: set[asyncio.Future[Any]] = {got, exited}
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=self._registration_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                if not exited.done():
                    exited.cancel()
            if got.done():
                req = got.result()
            elif exited in done and not exited.cancelled():
                code = exited.result()
                output = captured.decode("utf-8", errors="replace").rstrip()
                if code == 0:
                    raise RegistrationError(
                        "start command exited (status 0) without registering tasks: does it "
                        "call app.start()? A script run as `python main.py` must end with "
                        'app.start() (under `if __name__ == "__main__":`), or run it as '
                        "`render-workflows main:app`",
                        output=output,
                    )
                detail = f": exit status {code}" if code > 0 else f": killed by signal {-code}"
                raise RegistrationError(
                    f"start command exited before registering tasks{detail}", output=output
                )
            else:
                raise RegistrationError(
                    f"the command did not register its tasks within "
                    f"{self._registration_timeout:g}s (does it call app.start() or run "
                    "`render-workflows module:app`?)",
                    output=captured.decode("utf-8", errors="replace").rstrip(),
                )
        finally:
            if proc is not None:
                proc.kill()
            await server.close()
        defs: dict[str, TaskDef] = {}
        for t in req.tasks:
            if not t.name:
                continue
            retry = t.options.retry if t.options is not None else None
            policy = (
                RetryPolicy.from_wire(retry.max_retries, retry.wait_duration_ms, retry.factor)
                if retry is not None
                else RetryPolicy()
            )
            timeout = t.options.timeout_seconds if t.options is not None else None
            defs[t.name] = TaskDef(
                name=t.name,
                retry=policy,
                timeout_seconds=timeout if timeout and timeout > 0 else None,
                plan=(t.options.plan or None) if t.options is not None else None,
                parameters=tuple(
                    ParameterRecord(
                        name=p.name,
                        type=p.type or None,
                        has_default=p.has_default,
                        default_json=p.default_value,
                        # An unknown kind (a newer runner's) is read as the usual one.
                        kind=p.kind if p.kind in PARAMETER_KINDS else "positional_or_keyword",
                    )
                    for p in t.parameters
                    if p.name
                ),
            )
        self.task_parameters = {t.name: list(t.parameters) for t in req.tasks if t.name}
        return self.store.set_tasks(list(defs.values()))

    # ------------------------------------------------------------------ runs

    def submit(
        self,
        task: TaskRecord,
        input_json: bytes,
        *,
        parent: RunRecord | None = None,
        idempotency_key: str | None = None,
        idempotency_created_at: str | None = None,
    ) -> RunRecord:
        """Accept a run: record it (pending) and launch its first attempt."""
        run = self.store.create_run(
            run_id=new_run_id(),
            task_name=task.name,
            input_json=input_json,
            parent=parent,
            idempotency_key=idempotency_key,
            idempotency_created_at=idempotency_created_at,
        )
        self._status(run)
        self._publish(run)
        self._spawn(self._attempt(run))
        return run

    async def _attempt(self, run: RunRecord) -> None:
        try:
            await self._attempt_inner(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug here must not leave the run "running" forever.
            traceback.print_exc(file=sys.stderr)
            if run.status == RunStatus.RUNNING:
                self._fail(run, f"internal error of the local server: {type(exc).__name__}: {exc}")

    async def _attempt_inner(self, run: RunRecord) -> None:
        if run.status != RunStatus.PENDING or self._closing:
            return
        # Beyond the concurrency limit the run stays pending until a slot frees up.
        if not await self.gate.acquire(run.id):
            return
        key = object()
        try:
            await self._attempt_admitted(run, key)
        finally:
            self.gate.release(key)

    async def _attempt_admitted(self, run: RunRecord, key: object) -> None:
        if run.status != RunStatus.PENDING or self._closing:
            return
        transition(run.status, RunEvent.START_ATTEMPT)
        attempt_rec = self.store.start_attempt(run)
        loop = asyncio.get_running_loop()
        att = _Attempt(
            run=run, number=attempt_rec.attempt, callback=loop.create_future(), gate_key=key
        )
        self._active[run.id] = att
        self._publish(run)
        self._status(run)
        task = self.store.tasks.get(run.task_name)
        timeout = task.timeout_seconds if task is not None else None
        outcome: _Outcome | None = None
        exited: asyncio.Task[int] | None = None
        keep = False
        try:
            try:
                att.server = self._socket_server(self._run_handler(att))
                await att.server.start()
                if self._handing_back:
                    # A worker on its way back is reused rather than another one forked.
                    await asyncio.wait(
                        set(self._handing_back),
                        timeout=REUSE_END_WAIT_S,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                att.process = await self.launcher.start(
                    mode="run",
                    socket_path=str(att.server.path),
                    on_output=lambda s, c: self._on_output(run.id, s, c),
                )
                att.server.bind(att.process.pid)
            except Exception as exc:
                outcome = _Outcome(RunStatus.FAILED, error=f"failed to start task: {exc}")
            else:
                exited = loop.create_task(att.process.wait())
                canceled = loop.create_task(att.canceled.wait())
                signals: set[asyncio.Future[Any]] = {att.callback, exited, canceled}
                try:
                    done, _ = await asyncio.wait(
                        signals,
                        timeout=timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    canceled.cancel()
                outcome = self._decide(att, exited, done, timeout)
            finally:
                self._active.pop(run.id, None)
                # Decided once: a cancel arriving later finds the attempt already over.
                keep = att.process is not None and att.process.reusable and self._ended_cleanly(att)
                if att.process is not None and not keep:
                    att.process.kill()
            # Record the outcome before reaping or handing a worker back, so that clients
            # hear of it at once and a cancel or a shutdown meanwhile finds the run over.
            if outcome is not None and self.store.runs[run.id].status == RunStatus.RUNNING:
                self._finish(run, outcome)
            if keep:
                # The worker reports the end of its attempt just after the callback; the
                # next attempts wait (briefly) for it, so a client's next run finds it idle.
                returned: asyncio.Future[None] = loop.create_future()
                self._handing_back.add(returned)
                try:
                    await self._hand_back(att, exited)
                finally:
                    self._handing_back.discard(returned)
                    returned.set_result(None)
        finally:
            # Also on shutdown (CancelledError): the run stays as it is and is recovered
            # at the next start; the process and its socket go now.
            if exited is not None and not exited.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(exited), 5.0)
                if not exited.done():
                    exited.cancel()
            if att.server is not None:
                await att.server.close()
            if att.process is not None:
                # After the socket is closed: a reused worker never sees the next attempt
                # while this one's socket still answers.
                await att.process.release()

    async def _hand_back(self, att: _Attempt, exited: asyncio.Task[int] | None) -> None:
        """Wait (briefly) for a reusable worker to end its attempt, close the attempt's
        socket, then release the worker (killed when it did not end in time)."""
        if exited is not None and not exited.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), REUSE_END_WAIT_S)
        if att.server is not None:
            await att.server.close()
            att.server = None
        assert att.process is not None
        await att.process.release()

    @staticmethod
    def _ended_cleanly(att: _Attempt) -> bool:
        """Whether the attempt's process reported its outcome (a reusable worker may then
        serve another attempt); not after a timeout, a cancel or an early exit."""
        return att.callback.done() and not att.canceled.is_set()

    def _decide(
        self,
        att: _Attempt,
        exited: asyncio.Task[int],
        done: set[asyncio.Future[Any]],
        timeout: float | None,
    ) -> _Outcome | None:
        if att.canceled.is_set():
            return None
        if att.callback.done():
            cb = att.callback.result()
            if cb.complete is not None:
                return _Outcome(RunStatus.COMPLETED, output=cb.complete.output or b"")
            if cb.error is not None:
                if cb.error.stack_trace:
                    # The traceback goes where people look for it: the run's stderr
                    # (GET /v1/logs, `render-workflows logs`, the dashboard).
                    self.store.add_log(att.run.id, "stderr", cb.error.stack_trace)
                    self.store.flush_logs()
                return _Outcome(
                    RunStatus.FAILED,
                    error=cb.error.details or "task failed",
                    stack_trace=cb.error.stack_trace,
                )
            return _Outcome(
                RunStatus.FAILED, error="callback carried neither `complete` nor `error`"
            )
        if exited in done:
            code = exited.result()
            detail = ""
            if code > 0:
                detail = f": exit status {code}"
            elif code < 0:
                detail = f": killed by signal {-code}"
            return _Outcome(
                RunStatus.FAILED, error=f"start command exited before completing the task{detail}"
            )
        return _Outcome(RunStatus.FAILED, error=f"task timed out after {timeout:g} seconds")

    def _finish(self, run: RunRecord, outcome: _Outcome) -> None:
        if outcome.status == RunStatus.COMPLETED:
            self.store.finish_attempt(
                run,
                attempt_status=RunStatus.COMPLETED,
                run_status=transition(run.status, RunEvent.COMPLETE),
                output=outcome.output,
            )
            self._publish(run)
            self._status(run, output_json=run.output)
            return
        self._fail(run, outcome.error or "task failed", stack_trace=outcome.stack_trace)

    def _fail(self, run: RunRecord, error: str, *, stack_trace: str | None = None) -> None:
        task = self.store.tasks.get(run.task_name)
        policy = task.retry if task is not None else RetryPolicy()
        delay = retry_delay_ms(policy, len(run.attempts))
        if delay is None or self._closing:
            self.store.finish_attempt(
                run,
                attempt_status=RunStatus.FAILED,
                run_status=transition(run.status, RunEvent.FAIL_FINAL),
                error=error,
            )
            self._publish(run)
            self._status(run, error=error)
            self._traceback(run, stack_trace)
            return
        next_at = utcnow() + _dt.timedelta(milliseconds=delay)
        self.store.finish_attempt(
            run,
            attempt_status=RunStatus.FAILED,
            run_status=transition(run.status, RunEvent.FAIL_RETRY),
            error=error,
            next_attempt_at=next_at,
        )
        self._publish(run)
        self._status(run, error=error, retry_in_ms=delay)
        self._traceback(run, stack_trace)
        self._schedule(run, delay / 1000)

    def _schedule(self, run: RunRecord, delay_s: float) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(run.id, None)
            self._spawn(self._attempt(run))

        self._timers[run.id] = loop.call_later(max(0.0, delay_s), fire)

    # ------------------------------------------------------------------ cancel

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run and every unfinished descendant.

        Raises:
            OrchestratorError: 404 for an unknown run, 409 for a finished one.
        """
        run = self.store.runs.get(run_id)
        if run is None:
            raise OrchestratorError(404, f"task run not found: {run_id}")
        if is_terminal(run.status):
            raise OrchestratorError(
                409,
                f"task run {run_id} is already {status_text(run.status)} and cannot be canceled",
            )
        for target in [run, *self.store.descendants(run_id)]:
            if not is_terminal(target.status):
                self._cancel_one(target)
        return run

    def _cancel_one(self, run: RunRecord) -> None:
        transition(run.status, RunEvent.CANCEL)
        timer = self._timers.pop(run.id, None)
        if timer is not None:
            timer.cancel()
        self.gate.withdraw(run.id)
        att = self._active.get(run.id)
        if att is not None:
            att.canceled.set()
            if att.process is not None:
                att.process.kill()
        self.store.cancel(run)
        self._publish(run)
        self._status(run)

    # ------------------------------------------------------------------ task socket

    def _run_handler(self, att: _Attempt) -> Handler:
        async def get_input(body: bytes) -> tuple[int, bytes]:
            answer = GetInputResponse(task_name=att.run.task_name, input=att.run.input)
            return 200, _wire.dumps(answer, _wire.SOCKET)

        async def callback(body: bytes) -> tuple[int, bytes]:
            return self._on_callback(att, body)

        async def run_subtask(body: bytes) -> tuple[int, bytes]:
            return self._on_run_subtask(att, body)

        async def get_subtask_result(body: bytes) -> tuple[int, bytes]:
            return await self._on_get_subtask_result(att, body)

        async def register_tasks(body: bytes) -> tuple[int, bytes]:
            return 409, error_body(f"{path_of('RegisterTasks')} is only available in register mode")

        bound = {
            (route.method, route.base_path + route.path): handler
            for route, handler in bind(
                TASK_SOCKET_SERVICE,
                {
                    "GetInput": get_input,
                    "RegisterTasks": register_tasks,
                    "Callback": callback,
                    "RunSubtask": run_subtask,
                    "GetSubtaskResult": get_subtask_result,
                },
            )
        }

        async def handle(method: str, path: str, body: bytes) -> tuple[int, bytes]:
            handler = bound.get((method, path))
            if handler is None:
                return 404, error_body(f"no route {method} {path}")
            return await handler(body)

        return handle

    def _on_callback(self, att: _Attempt, body: bytes) -> tuple[int, bytes]:
        try:
            req = _wire.loads(CallbackRequest, body, _wire.SOCKET)
        except WireFormatError as exc:
            return 400, error_body(f"invalid callback body: {exc}")
        if att.callback.done():
            return 409, error_body("this attempt already sent its callback")
        if att.canceled.is_set() or att.run.status != RunStatus.RUNNING:
            return 409, error_body(f"task run {att.run.id} is {status_text(att.run.status)}")
        output = req.complete.output if req.complete is not None else None
        too_big = over_limit("the task's result", len(output or b""), MAX_RESULT_BYTES)
        if too_big is not None:
            # A runner that does not check (another SDK) still fails the attempt at once,
            # with the sizes, instead of storing what no client could be sent.
            req = CallbackRequest(error=TaskError(details=too_big))
        att.callback.set_result(req)
        return 200, _SOCKET_OK

    def _attempt_is_current(self, att: _Attempt) -> bool:
        return (
            att.run.status == RunStatus.RUNNING
            and not att.canceled.is_set()
            and self._active.get(att.run.id) is att
        )

    def _on_run_subtask(self, att: _Attempt, body: bytes) -> tuple[int, bytes]:
        try:
            req = _wire.loads(RunSubtaskRequest, body, _wire.SOCKET)
        except WireFormatError as exc:
            return 400, error_body(f"invalid run-subtask body: {exc}")
        if not req.task_name:
            return 400, error_body("task_name is required")
        parent = att.run
        if not self._attempt_is_current(att):
            return 409, error_body(
                f"parent task run {parent.id} is no longer active ({status_text(parent.status)})"
            )
        root = self.store.runs.get(parent.root_id)
        if root is not None and is_terminal(root.status):
            return 409, error_body(f"root task run {root.id} is {status_text(root.status)}")
        created = _wire.format_timestamp(req.created_at) if req.created_at else ""
        if req.idempotency_key:
            existing_id = att.reused.get(req.idempotency_key)
            existing = self.store.runs.get(existing_id) if existing_id else None
            if existing is None:
                existing = self.store.find_idempotent(parent.id, req.idempotency_key, created)
            if existing is not None:
                return 200, _wire.dumps(RunSubtaskResponse(task_run_id=existing.id), _wire.SOCKET)
        task = self.store.tasks.get(req.task_name)
        if task is None or not task.registered:
            task = self.task_for(req.task_name)
        if task is None:
            return 404, error_body(f'subtask "{req.task_name}" not found')
        input_json = req.input or b"[]"
        too_big = over_limit(
            f"the input of subtask {req.task_name!r}", len(input_json), MAX_INPUT_BYTES
        )
        if too_big is not None:
            return 413, error_body(too_big)
        try:
            value = _wire.decode_json_value(input_json, what="input")
        except WireFormatError as exc:
            return 400, error_body(f"subtask input is not JSON: {exc}")
        if not isinstance(value, list | dict):
            return 400, error_body("subtask input must be a JSON array or object")
        # A retried parent repeats its calls: each identical one (same task, same input)
        # takes over a child an earlier attempt started rather than running it twice.
        survivor = self.store.reusable_child(
            parent, att.number, task.name, input_json, claimed=att.claimed
        )
        if survivor is not None:
            att.claimed.add(survivor.id)
            if req.idempotency_key:
                att.reused[req.idempotency_key] = survivor.id
            return 200, _wire.dumps(RunSubtaskResponse(task_run_id=survivor.id), _wire.SOCKET)
        child = self.submit(
            task,
            input_json,
            parent=parent,
            idempotency_key=req.idempotency_key,
            idempotency_created_at=created if req.idempotency_key else None,
        )
        return 200, _wire.dumps(RunSubtaskResponse(task_run_id=child.id), _wire.SOCKET)

    async def _on_get_subtask_result(self, att: _Attempt, body: bytes) -> tuple[int, bytes]:
        try:
            req = _wire.loads(GetSubtaskResultRequest, body, _wire.SOCKET)
        except WireFormatError as exc:
            return 400, error_body(f"invalid get-subtask-result body: {exc}")
        child = self.store.runs.get(req.task_run_id)
        if child is None or child.parent_id != att.run.id:
            return 404, error_body(f"subtask run not found: {req.task_run_id}")
        wait_ms = min(max(0, req.wait_ms or 0), MAX_WAIT_MS)
        if not is_terminal(child.status) and wait_ms:
            done = self._done.setdefault(child.id, asyncio.Event())
            # While it waits for a subtask the attempt does not count against the limit's
            # deadlock check: its children may need its slot.
            self.gate.blocked(att.gate_key, +1)
            try:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), wait_ms / 1000)
            finally:
                self.gate.blocked(att.gate_key, -1)
        return 200, _wire.dumps(subtask_result(child), _wire.SOCKET)

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> int:
        """Resume runs a previous server left unfinished; returns how many.

        A run that was running lost its process with that server: its attempt fails with
        "server restarted" and the retry policy decides what follows. Pending runs are
        launched when their retry wait (if any) ends.
        """
        count = 0
        now = utcnow()
        for run in self.store.unfinished_runs():
            count += 1
            if run.status == RunStatus.RUNNING:
                self._fail(run, "server restarted while the attempt was running")
            else:
                at = run.next_attempt_at
                delay = (at - now).total_seconds() if at is not None else 0.0
                self._schedule(run, delay)
        return count

    async def aclose(self) -> None:
        """Stop everything; unfinished runs stay recorded as they are."""
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for att in list(self._active.values()):
            if att.process is not None:
                att.process.kill()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._log_flush is not None:
            self._log_flush.cancel()
        self._flush_logs()


def subtask_result(child: RunRecord) -> GetSubtaskResultResponse:
    """The get-subtask-result answer for a child run's current state.

    Failed attempts that will be retried keep the child pending, so they read as
    still running; a canceled child answers with the error "canceled".
    """
    if child.status == RunStatus.COMPLETED:
        return GetSubtaskResultResponse(
            still_running=False, complete=TaskComplete(output=child.output or b"")
        )
    if child.status == RunStatus.FAILED:
        return GetSubtaskResultResponse(
            still_running=False, error=TaskError(details=child.error or "task failed")
        )
    if child.status == RunStatus.CANCELED:
        return GetSubtaskResultResponse(still_running=False, error=TaskError(details="canceled"))
    return GetSubtaskResultResponse(still_running=True)
