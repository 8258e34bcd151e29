"""What a task process does: register its tasks, or execute one task run.

Started by ``Workflows.start()`` with ``RENDER_SDK_MODE`` and ``RENDER_SDK_SOCKET_PATH``
set by the task server (Render's, or ``render-workflows dev``). Register mode sends
every definition in one ``POST /register-tasks``. Run mode reads ``GET /input``, runs
the task (list input → positional arguments, object → keyword arguments), serves the
task's subtask calls and reports one ``POST /callback``.

Only async tasks start an event loop; registration and sync tasks use the blocking
socket client, which keeps their start-up free of asyncio (this process starts once
per task-run attempt, so its start-up is on every run's critical path).

Nothing here keeps state from import time: every call builds its own event loop and
clients, so it works in a process forked from a warm parent.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import _errors
from .._constants import STORE_ELSEWHERE, over_limit
from . import _constants as C
from ._errors import RunnerError, TaskContextError
from ._transport import AsyncSocketClient, SyncSocketClient, TransportPolicy

if TYPE_CHECKING:
    import asyncio

    from .._gen.render.tasksocket.v1 import CallbackRequest, RegisterTasksRequest
    from ._app import Workflows
    from ._definitions import TaskSpec

__all__ = [
    "build_registration",
    "call_in_thread",
    "call_sync",
    "encode_result",
    "error_details",
    "register",
    "run",
    "start",
]


def start(
    app: Workflows,
    *,
    environ: Mapping[str, str] | None = None,
    policy: TransportPolicy | None = None,
) -> None:
    """Run the process's role as ``RENDER_SDK_MODE`` says (see ``Workflows.start``)."""
    env = os.environ if environ is None else environ
    mode = env.get(C.ENV_MODE, "")
    if not mode:
        raise RunnerError(
            f"{C.ENV_MODE} environment variable is required: the task server sets it "
            f"('{C.MODE_REGISTER}' or '{C.MODE_RUN}') for the processes it starts; to serve "
            "tasks locally run `render-workflows dev <module>:<app>`"
        )
    socket_path = env.get(C.ENV_SOCKET_PATH, "")
    if not socket_path:
        raise RunnerError(
            f"{C.ENV_SOCKET_PATH} environment variable is required: the task server sets it "
            "to the Unix socket this process reports to"
        )
    if len(os.fsencode(socket_path)) > C.MAX_SOCKET_PATH_BYTES:
        raise RunnerError(
            f"{C.ENV_SOCKET_PATH} is longer than {C.MAX_SOCKET_PATH_BYTES} bytes, the limit of "
            f"a Unix socket path: {socket_path!r}"
        )
    if mode == C.MODE_REGISTER:
        register(app, socket_path, policy=policy)
    elif mode == C.MODE_RUN:
        run(app, socket_path, policy=policy)
    else:
        raise RunnerError(
            f"Unknown mode: {mode!r}; {C.ENV_MODE} must be '{C.MODE_REGISTER}' or '{C.MODE_RUN}'"
        )


# --------------------------------------------------------------------------- register


def build_registration(specs: list[TaskSpec]) -> RegisterTasksRequest:
    """The ``/register-tasks`` body for these task definitions."""
    from .._gen.render.tasksocket.v1 import (
        RegisterTasksRequest,
        RetryConfig,
        TaskDefinition,
        TaskOptions,
        TaskParameter,
    )

    tasks = []
    for spec in specs:
        retry = spec.options.retry
        tasks.append(
            TaskDefinition(
                name=spec.name,
                options=TaskOptions(
                    retry=None
                    if retry is None
                    else RetryConfig(
                        max_retries=retry.max_retries,
                        wait_duration_ms=retry.wait_duration_ms,
                        factor=float(retry.backoff_scaling),
                    ),
                    timeout_seconds=spec.options.timeout_seconds,
                    plan=spec.options.plan,
                ),
                parameters=[
                    TaskParameter(
                        name=p.name,
                        has_default=p.has_default,
                        type=p.type_hint,
                        default_value=p.default_json,
                        # The usual kind goes unsaid, as the official runners send it.
                        kind=None if p.kind == "positional_or_keyword" else p.kind,
                    )
                    for p in spec.parameters
                ],
            )
        )
    return RegisterTasksRequest(tasks=tasks)


def _line(rpc: str) -> tuple[str, str]:
    """The method and path of a TaskSocketService rpc (the schema's, never spelled here)."""
    from .._gen.routes import TASK_SOCKET_SERVICE

    route = TASK_SOCKET_SERVICE[rpc]
    return route.method, route.base_path + route.path


def register(app: Workflows, socket_path: str, *, policy: TransportPolicy | None = None) -> None:
    """Send every task definition of ``app`` in one ``POST /register-tasks``.

    Blocking on purpose: registration needs no event loop, and not importing asyncio
    keeps this process's start-up short.
    """
    client = SyncSocketClient(socket_path, policy=policy)
    try:
        client.call(
            *_line("RegisterTasks"),
            build_registration(app.specs()),
            None,
            operation="register tasks",
        )
    finally:
        client.close()


# --------------------------------------------------------------------------- run


def encode_result(result: Any, task_name: str) -> bytes:
    """Render's result encoding: a list as is, anything else as ``[result]``.

    Raises:
        WireFormatError: The result is not JSON-serializable (names its type) or its
            encoding is larger than ``MAX_RESULT_BYTES`` (names both sizes).
    """
    from .. import _wire

    value = result if isinstance(result, list) else [result]
    try:
        encoded = _wire.encode_json_value(value)
    except _errors.WireFormatError as exc:
        raise _errors.WireFormatError(
            f"task {task_name!r} returned a {type(result).__name__}, which cannot be sent "
            f"as its JSON result: {_strip_field(exc)}",
            field="result",
        ) from None
    if len(encoded) > C.MAX_RESULT_BYTES:
        raise _errors.WireFormatError(
            f"task {task_name!r} returned a result of {len(encoded)} bytes as JSON, over the "
            f"limit of {C.MAX_RESULT_BYTES} bytes; {STORE_ELSEWHERE}",
            field="result",
        )
    return encoded


def _strip_field(exc: _errors.WireFormatError) -> str:
    prefix = f"{exc.field}: " if exc.field else ""
    return exc.message.removeprefix(prefix)


def error_details(exc: BaseException) -> tuple[str, str]:
    """``("<ExceptionType>: message", traceback text)`` for an error callback.

    The traceback holds the user's frames only (:func:`user_traceback`): the runner and
    the subtask plumbing between them are this SDK's, not what the user has to fix.
    """
    from ._traceback import user_traceback

    text = str(exc)
    details = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return details, user_traceback(exc, header=True) + "\n"


#: Set on an exception whose error callback (with the user's traceback) was sent.
_REPORTED_ATTR = "_render_sdk_reported"


def was_reported(exc: BaseException) -> bool:
    """True when the task server already got ``exc`` (and its traceback) as the run's error.

    The process that ran the task then prints one line instead of a second traceback.
    """
    return bool(getattr(exc, _REPORTED_ATTR, False))


def _mark_reported(exc: BaseException) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _REPORTED_ATTR, True)


def _error_callback(exc: BaseException, *, with_stack: bool = True) -> CallbackRequest:
    from .._gen.render.tasksocket.v1 import CallbackRequest, TaskError

    details, stack = error_details(exc)
    return CallbackRequest(
        error=TaskError(details=details, stack_trace=stack if with_stack else None)
    )


def _result_callback(
    result: Any, task_name: str
) -> tuple[CallbackRequest, _errors.WireFormatError | None]:
    """The callback reporting a returned ``result``, and the error to raise once it is sent
    (a result JSON cannot carry is reported as the run's error, without a stack)."""
    from .._gen.render.tasksocket.v1 import CallbackRequest, TaskComplete

    try:
        output = encode_result(result, task_name)
    except _errors.WireFormatError as exc:
        return _error_callback(exc, with_stack=False), exc
    return CallbackRequest(complete=TaskComplete(output=output)), None


def run(app: Workflows, socket_path: str, *, policy: TransportPolicy | None = None) -> None:
    """Execute the one task run the server asks for and report its outcome.

    An async task runs on a fresh event loop (``asyncio.run``) that also serves its
    subtask calls. A sync task cannot start subtasks, so its process needs no event
    loop at all: its body runs under ``contextvars.copy_context()`` on the calling thread
    (:func:`call_sync`), which then reports.

    Returns normally when the task succeeded and its result was delivered.

    Raises:
        Exception: The task's exception (after the error callback), or the error that
            stopped the run (unknown task, bad input, unserializable result).
    """
    from .._gen.render.tasksocket.v1 import GetInputResponse

    policy = policy or TransportPolicy()
    client = SyncSocketClient(socket_path, policy=policy)
    try:
        got = client.call(*_line("GetInput"), None, GetInputResponse, operation="get input")
        assert got is not None
        try:
            spec, args, kwargs = _resolve(app, got.task_name, got.input)
        except (RunnerError, _errors.WireFormatError) as exc:
            _post_callback(client, _error_callback(exc, with_stack=False))
            raise
        if not spec.is_async:
            # One connection for the input and the callback.
            _run_sync(client, spec, args, kwargs)
            return
    finally:
        client.close()
    import asyncio

    asyncio.run(_run_async(spec, args, kwargs, socket_path, policy))


def _post_callback(client: SyncSocketClient, body: CallbackRequest) -> None:
    client.call(*_line("Callback"), body, None, operation="post callback")


class _SyncTaskSession:
    """Stands in for a session inside a sync task body, to explain why it cannot
    start subtasks."""

    def start_subtask(self, name: str, input_value: list[Any] | dict[str, Any]) -> Any:
        raise _sync_subtask_error(name)


def _sync_subtask_error(name: str) -> TaskContextError:
    return TaskContextError(
        f"{name}() was called from a sync task body (or another thread or event loop). "
        "Subtasks are started and awaited from async tasks: make the calling task "
        f"`async def` and write `await {name}(...)`."
    )


def _run_sync(
    client: SyncSocketClient, spec: TaskSpec, args: list[Any], kwargs: dict[str, Any]
) -> None:
    from ._context import current_session

    token = current_session.set(_SyncTaskSession())
    try:
        result = call_sync(spec, args, kwargs)
    except (Exception, SystemExit) as exc:
        _post_callback(client, _error_callback(exc))
        _mark_reported(exc)
        raise
    finally:
        current_session.reset(token)
    body, error = _result_callback(result, spec.name)
    try:
        _post_callback(client, body)
    except _errors.ClientError as exc:
        refusal = _refused_result(body, exc)
        if refusal is None:
            raise
        _post_callback(client, refusal)
        raise
    if error is not None:
        raise error


def _refused_result(sent: CallbackRequest, exc: _errors.ClientError) -> CallbackRequest | None:
    """The error callback that reports a result the server refused as too large (413), so
    the run fails at once with the server's reason; None for any other refusal."""
    from .._gen.render.tasksocket.v1 import CallbackRequest, TaskError

    if sent.complete is None or exc.status_code != 413:
        return None
    return CallbackRequest(error=TaskError(details=f"the task server refused the result: {exc}"))


def call_sync(spec: TaskSpec, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run a sync task body with a copy of the current context.

    On the main thread of the task process (where ``run()`` is called) the body runs
    right there: the thread would only wait for it, and starting one costs more than a
    trivial task. Signals are still delivered to this thread (a default SIGTERM or a
    SIGKILL ends the process either way; a Python handler runs between the body's
    bytecodes, as it would while ``join()`` waits). Called from any other thread, the body
    runs in a worker thread as before (:func:`call_in_thread`).
    """
    import threading

    if threading.current_thread() is threading.main_thread():
        import contextvars

        return contextvars.copy_context().run(spec.func, *args, **kwargs)
    return call_in_thread(spec, args, kwargs)


def call_in_thread(spec: TaskSpec, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run a sync task body in a worker thread with a copy of the current context.

    The main thread stays free (signals such as SIGTERM are delivered there), and the
    body sees the context variables of the run, as it would in an executor.
    """
    import contextvars
    import threading

    ctx = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["result"] = ctx.run(spec.func, *args, **kwargs)
        except BaseException as exc:  # handed to the main thread, which reports it
            outcome["error"] = exc

    worker = threading.Thread(target=body, name=f"task {spec.name}", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        error: BaseException = outcome.pop("error")
        raise error
    return outcome.get("result")


async def _run_async(
    spec: TaskSpec,
    args: list[Any],
    kwargs: dict[str, Any],
    socket_path: str,
    policy: TransportPolicy,
) -> None:
    import asyncio

    from ._context import current_session

    client = AsyncSocketClient(socket_path, policy=policy)
    session = _Session(client, policy, asyncio.get_running_loop())
    token = current_session.set(session)
    try:
        result = await spec.func(*args, **kwargs)
    except (Exception, SystemExit) as exc:
        await _acallback(client, _error_callback(exc))
        _mark_reported(exc)
        raise
    finally:
        current_session.reset(token)
        session.cancel_orphans()
    body, error = _result_callback(result, spec.name)
    try:
        await _acallback(client, body)
    except _errors.ClientError as exc:
        refusal = _refused_result(body, exc)
        if refusal is None:
            raise
        await _acallback(client, refusal)
        raise
    if error is not None:
        raise error


async def _acallback(client: AsyncSocketClient, body: CallbackRequest) -> None:
    await client.call(*_line("Callback"), body, None, operation="post callback")


def _resolve(
    app: Workflows, task_name: str, raw_input: bytes
) -> tuple[TaskSpec, list[Any], dict[str, Any]]:
    from .. import _wire

    if not task_name:
        raise RunnerError(
            "the task server's /input named no task: is the process in register mode?"
        )
    task = app.tasks.get(task_name)
    if task is None:
        known = ", ".join(sorted(app.tasks)) or "none"
        raise RunnerError(f"Task '{task_name}' is not defined in this app (tasks: {known})")
    value = _wire.decode_json_value(raw_input, what="input")
    if value is None:
        return task._spec, [], {}
    if isinstance(value, list):
        return task._spec, value, {}
    if isinstance(value, dict):
        return task._spec, [], value
    raise RunnerError(
        f"input of task '{task_name}' must be a JSON array (positional arguments) or object "
        f"(keyword arguments), got {type(value).__name__}"
    )


class _Session:
    """The running task's link to the server: starts and awaits subtasks."""

    def __init__(
        self, client: AsyncSocketClient, policy: TransportPolicy, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._client = client
        self._policy = policy
        self._loop = loop
        self._started: set[asyncio.Task[Any]] = set()

    def start_subtask(
        self, name: str, input_value: list[Any] | dict[str, Any]
    ) -> asyncio.Task[Any]:
        import asyncio

        from .. import _wire

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not self._loop:
            raise _sync_subtask_error(name)
        # Encoded now, so an unserializable argument fails at the call site.
        payload = _wire.encode_json_value(input_value, what=f"input of subtask {name!r}")
        too_big = over_limit(f"the input of subtask {name!r}", len(payload), C.MAX_INPUT_BYTES)
        if too_big is not None:
            raise _errors.WireFormatError(too_big, field="input")
        started = loop.create_task(self._run_subtask(name, payload), name=f"subtask {name}")
        self._started.add(started)
        started.add_done_callback(self._started.discard)
        return started

    def cancel_orphans(self) -> None:
        for pending in list(self._started):
            pending.cancel()

    async def _run_subtask(self, name: str, payload: bytes) -> Any:
        import datetime
        import uuid

        from .._gen.render.tasksocket.v1 import RunSubtaskRequest, RunSubtaskResponse

        # Made once per logical call; the transport resends this same body on every
        # retry so the server can deduplicate it.
        request = RunSubtaskRequest(
            task_name=name,
            input=payload,
            idempotency_key=str(uuid.uuid4()),
            created_at=datetime.datetime.now(datetime.timezone.utc),
        )
        started = await self._client.call(
            *_line("RunSubtask"), request, RunSubtaskResponse, operation=f"run subtask {name!r}"
        )
        if started is None or not started.task_run_id:
            raise _errors.ServerError(f"run subtask {name!r}: the server returned no task_run_id")
        return await self._wait(name, started.task_run_id)

    async def _wait(self, name: str, run_id: str) -> Any:
        import asyncio

        from .. import _wire
        from .._gen.render.tasksocket.v1 import GetSubtaskResultRequest, GetSubtaskResultResponse

        policy = self._policy
        wait_ms = policy.subtask_wait_ms
        began = self._loop.time()
        fast_answers = 0
        request = GetSubtaskResultRequest(task_run_id=run_id, wait_ms=wait_ms)
        while True:
            if self._loop.time() - began > policy.subtask_wait_limit_s:
                raise _errors.TimeoutError(
                    f"subtask {name!r} ({run_id}) was still running after "
                    f"{policy.subtask_wait_limit_s:g}s"
                )
            asked = self._loop.time()
            answer = await self._client.call(
                *_line("GetSubtaskResult"),
                request,
                GetSubtaskResultResponse,
                operation=f"get result of subtask {name!r}",
                timeout=policy.request_timeout_s + wait_ms / 1000,
            )
            assert answer is not None
            if answer.still_running:
                elapsed = self._loop.time() - asked
                if elapsed < wait_ms / 1000 * C.LONG_POLL_MIN_FRACTION:
                    await asyncio.sleep(policy.poll_delay(fast_answers))
                    fast_answers += 1
                else:
                    fast_answers = 0
                continue
            if answer.error is not None:
                details = answer.error.details
                status = "canceled" if details == "canceled" else "failed"
                raise _errors.TaskRunError(
                    f"Subtask {name!r} ({run_id}) {status}: {details}",
                    task_run_id=run_id,
                    details=details,
                    stack_trace=answer.error.stack_trace,
                    status=status,
                )
            if answer.complete is not None:
                value = _wire.decode_json_value(
                    answer.complete.output, what=f"result of subtask {name!r}"
                )
                # Render's encoding wraps a non-list result as [result].
                if isinstance(value, list) and len(value) == 1:
                    return value[0]
                return value
            raise _errors.TaskRunError(
                f"Subtask {name!r} ({run_id}) ended without a result or an error "
                "(the server reports neither; it was probably canceled)",
                task_run_id=run_id,
                status="canceled",
            )
