"""The REST + SSE API (``/v1``) of the local task server, as a Starlette app.

Every JSON body goes through :mod:`render_sdk._wire` (REST dialect); errors are
``{"message": ...}`` with a 4xx status for anything the caller got wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import _wire
from .._errors import WireFormatError
from ..models import ListLogsResponse, RunTaskRequest
from ._constants import (
    DEFAULT_LOG_LIMIT,
    DEFAULT_PAGE_LIMIT,
    MAX_BODY_BYTES,
    MAX_LOG_LIMIT,
    MAX_PAGE_LIMIT,
    SSE_PING_S,
    SSE_RETRY_MS,
    SSE_WRITE_CHUNK_BYTES,
)
from ._orchestrator import Orchestrator, OrchestratorError, Subscriber
from ._protocol import (
    SSE_HEADERS,
    SSE_PING,
    InvalidCursor,
    LogFilter,
    decode_cursor,
    is_terminal,
    parse_time_param,
    resolve_slug,
    split_ids,
    sse_event_name,
    sse_frame,
    sse_preamble,
)
from ._store import RunRecord, utcnow
from ._views import log_model, task_model, task_run, task_run_with_cursor, task_with_cursor

_JSON: Final = "application/json"


class ApiError(Exception):
    """A request error answered as ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status_code=status, media_type=_JSON)


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=_JSON)


def _json_list(items: Sequence[bytes]) -> Response:
    return _json(b"[" + b",".join(items) + b"]")


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}, got {value}")
    return value


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing more than ``limit`` bytes with a 413."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body larger than the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body larger than the {limit}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client went away mid-body: nothing to answer and nothing was started.
        raise ApiError(400, "client disconnected before sending the whole body") from None
    return b"".join(chunks)


def list_item(run: RunRecord, task_id: str) -> bytes:
    """One GET /v1/task-runs item: ``{"cursor", "taskRun"}`` plus the TaskRun's own fields.

    Render's API (and render==1.5.0) read ``{"cursor", "taskRun"}``; render_sdk==0.4.0
    parses each item as a bare TaskRun. Carrying both shapes in one object serves both
    unmodified; each ignores the keys it does not know.
    """
    wrapped = _wire.dumps(task_run_with_cursor(run, task_id), _wire.REST)
    bare = _wire.dumps(task_run(run, task_id), _wire.REST)
    return wrapped[:-1] + b"," + bare[1:]


class Api:
    """The route handlers, bound to one orchestrator."""

    def __init__(self, orch: Orchestrator, *, ping_s: float = SSE_PING_S) -> None:
        self.orch = orch
        self.store = orch.store
        self.ping_s = ping_s

    # ------------------------------------------------------------------ tasks

    async def list_tasks(self, request: Request) -> Response:
        tasks = self.store.registered_tasks()
        slugs = split_ids(request.query_params.getlist("taskSlug"))
        if slugs:
            names = self._names_for(slugs)
            tasks = [t for t in tasks if t.name in names]
        cursor = request.query_params.get("cursor")
        if cursor:
            if not any(t.id == cursor for t in self.store.tasks.values()):
                raise ApiError(400, f"invalid cursor {cursor!r}")
            tasks = [t for t in tasks if t.id > cursor]
        limit = _int_param(request, "limit", MAX_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
        return _json_list([_wire.dumps(task_with_cursor(t), _wire.REST) for t in tasks[:limit]])

    async def get_task(self, request: Request) -> Response:
        key = request.path_params["task_id"]
        task = self.orch.task_for(key)
        if task is None:
            task = next((t for t in self.store.tasks.values() if t.id == key), None)
        if task is None:
            raise ApiError(404, self._task_not_found(key))
        return _json(_wire.dumps(task_model(task), _wire.REST))

    def _task_not_found(self, slug: str) -> str:
        message = f"task not found: {slug}"
        if self.orch.registration_error:
            message += f" (task registration failed: {self.orch.registration_error})"
        return message

    def _names_for(self, slugs: Sequence[str]) -> frozenset[str]:
        by_name = {t.name: t.id for t in self.store.tasks.values()}
        by_id = {t.id: t.name for t in self.store.tasks.values()}
        return frozenset(n for s in slugs if (n := resolve_slug(s, by_name, by_id)) is not None)

    # ------------------------------------------------------------------ runs

    async def create_run(self, request: Request) -> Response:
        body = await read_body(request)
        try:
            data = _wire.parse_json(body)
        except WireFormatError as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object {task, input}")
        try:
            req = _wire.from_dict(RunTaskRequest, data, _wire.REST)
        except WireFormatError as exc:
            raise ApiError(400, f"invalid request: {exc}") from None
        if not req.task:
            raise ApiError(400, "`task` is required (a task name or slug)")
        input_json = req.input_json or b"[]"
        # A present-but-falsy input (0, false, "") is as wrong as 5 or "abc": only an
        # absent or null input means "no arguments".
        raw_input = data.get("input")
        if raw_input is not None and not isinstance(raw_input, list | dict):
            raise ApiError(
                400, "`input` must be a JSON array (positional) or object (keyword arguments)"
            )
        task = self.orch.task_for(req.task)
        if task is None:
            raise ApiError(404, self._task_not_found(req.task))
        # Render's API accepts an idempotencyKey (render==1.5.0 sends it); the same key
        # returns the run the first call started.
        key = req.idempotency_key
        if key:
            existing = self.store.find_idempotent("", key, "")
            if existing is not None:
                if existing.task_name != task.name or existing.input != input_json:
                    raise ApiError(
                        409,
                        f"idempotency key {key!r} was already used for run {existing.id} "
                        f"with a different task or input; use a new key for a different call",
                    )
                return _json(
                    _wire.dumps(
                        task_run(existing, self.store.task_id(existing.task_name)), _wire.REST
                    ),
                    status=202,
                )
        run = self.orch.submit(task, input_json, idempotency_key=key or None)
        return _json(_wire.dumps(task_run(run, task.id), _wire.REST), status=202)

    async def list_runs(self, request: Request) -> Response:
        params = request.query_params
        limit = _int_param(request, "limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
        before: int | None = None
        if params.get("cursor"):
            try:
                before = decode_cursor(params["cursor"])
            except InvalidCursor as exc:
                raise ApiError(400, str(exc)) from None
        slugs = split_ids(params.getlist("taskSlug"))
        roots = split_ids(params.getlist("rootTaskRunId"))
        runs, _ = self.store.list_runs(
            task_names=self._names_for(slugs) if slugs else None,
            root_ids=frozenset(roots) if roots else None,
            before_seq=before,
            limit=limit,
        )
        return _json_list([list_item(r, self.store.task_id(r.task_name)) for r in runs])

    async def get_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        run = self.store.runs.get(run_id)
        if run is None:
            raise ApiError(404, f"task run not found: {run_id}")
        return _json(self.orch.run_details(run))

    async def cancel_run(self, request: Request) -> Response:
        try:
            self.orch.cancel(request.path_params["run_id"])
        except OrchestratorError as exc:
            raise ApiError(exc.status, exc.message) from None
        return Response(status_code=204)

    # ------------------------------------------------------------------ events

    async def events(self, request: Request) -> Response:
        ids = split_ids(request.query_params.getlist("taskRunIds"))
        if not ids:
            raise ApiError(400, "taskRunIds is required (repeated or comma-separated run ids)")
        if not any(run_id in self.store.runs for run_id in ids):
            raise ApiError(404, f"task run not found: {', '.join(ids)}")
        last_id: int | None = None
        raw_last = request.headers.get("last-event-id", "")
        if raw_last.strip().isdigit():
            last_id = int(raw_last.strip())
            # An id this server never issued (a bogus header, or a clock that went back
            # across a restart) would hide every terminal state: replay from scratch.
            if last_id > self.orch.hub.last_issued:
                last_id = None
        return SSEResponse(self, ids, last_id)

    # ------------------------------------------------------------------ logs

    async def list_logs(self, request: Request) -> Response:
        params = request.query_params
        run_ids = split_ids([*params.getlist("taskRun"), *params.getlist("taskRunID")])
        run_ids += split_ids(params.getlist("taskRunId"))
        texts = tuple(split_ids(params.getlist("text")))
        now = utcnow()
        start = end = None
        try:
            if params.get("startTime"):
                start = parse_time_param(params["startTime"], now)
            if params.get("endTime"):
                end = parse_time_param(params["endTime"], now)
        except ValueError as exc:
            raise ApiError(400, f"invalid time: {exc}") from None
        direction = params.get("direction", "forward")
        if direction not in ("forward", "backward"):
            raise ApiError(400, f"direction must be forward or backward, got {direction!r}")
        limit = _int_param(request, "limit", DEFAULT_LOG_LIMIT, 1, MAX_LOG_LIMIT)
        flt = LogFilter(run_ids=frozenset(run_ids), texts=texts, start=start, end=end)
        backward = direction == "backward"
        logs, has_more = self.store.query_logs(flt, limit=limit, backward=backward)
        resp = ListLogsResponse(
            logs=[
                log_model(
                    log,
                    self.store.runs[log.run_id].task_name if log.run_id in self.store.runs else "",
                )
                for log in logs
            ],
            has_more=has_more,
        )
        if has_more and logs:
            tick = _dt.timedelta(microseconds=1)
            if backward:
                resp.next_start_time = start
                resp.next_end_time = logs[-1].ts - tick
            else:
                resp.next_start_time = logs[-1].ts + tick
                resp.next_end_time = end
        return _json(_wire.dumps(resp, _wire.REST))

    # ------------------------------------------------------------------ wiring

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/tasks", self.list_tasks, methods=["GET"]),
            Route("/v1/tasks/{task_id:path}", self.get_task, methods=["GET"]),
            Route("/v1/task-runs", self.create_run, methods=["POST"]),
            Route("/v1/task-runs", self.list_runs, methods=["GET"]),
            Route("/v1/task-runs/events", self.events, methods=["GET"]),
            Route("/v1/task-runs/{run_id}", self.get_run, methods=["GET"]),
            Route("/v1/task-runs/{run_id}", self.cancel_run, methods=["DELETE"]),
            Route("/v1/logs", self.list_logs, methods=["GET"]),
        ]


class SSEResponse(Response):
    """``text/event-stream`` of run events, ending once every run is terminal or the client goes.

    The client's disconnect is watched directly (``http.disconnect``), so a stream with
    no traffic is released at once rather than at its next heartbeat.
    """

    def __init__(self, api: Api, run_ids: list[str], last_id: int | None) -> None:
        super().__init__(media_type="text/event-stream", headers=dict(SSE_HEADERS))
        self.api = api
        self.run_ids = run_ids
        self.last_id = last_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        orch = self.api.orch
        sub = self._subscribe()
        disconnected = asyncio.get_running_loop().create_task(_wait_disconnect(receive))
        try:
            # Response.__init__ declared an empty body; a stream has no length.
            headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await _send_body(send, sse_preamble(SSE_RETRY_MS))
            sub.reset(self._initial(sub))
            await self._pump(sub, send, disconnected)
        except OSError:
            pass
        finally:
            orch.hub.unsubscribe(sub)
            disconnected.cancel()
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _subscribe(self) -> Subscriber:
        return self.api.orch.hub.subscribe(self.run_ids)

    def _initial(self, sub: Subscriber) -> list[bytes]:
        """What a new stream starts with: missed events, then current terminal states.

        Without Last-Event-ID, every requested run that is already terminal is sent. With
        it, the history after that id is replayed, plus the state of terminal runs whose
        terminal event the client cannot have seen (older than the kept history, or from
        before a restart); a repeat is harmless, a missing terminal event hangs a client.
        """
        orch = self.api.orch
        hub = orch.hub
        frames: list[bytes] = []
        covered: set[str] = set()
        stale: set[str] = set()
        if self.last_id is not None:
            replay, stale = hub.replay_after(self.last_id, sub.run_ids)
            for run_id, frame in replay:
                frames.append(frame)
                covered.add(run_id)
        for run_id in self.run_ids:
            run = orch.store.runs.get(run_id)
            if run is None:
                continue
            terminal = is_terminal(run.status)
            known = hub.terminal_ids.get(run_id)
            if run_id in stale:
                # Its missed frames are gone: one frame of its current state stands in.
                pass
            elif not terminal or (
                self.last_id is not None
                and (run_id in covered or (known is not None and known <= self.last_id))
            ):
                continue
            frames.append(hub.current_frame(run_id, partial(self._frame, run)))
        # Every run terminal now has had its terminal state sent (above, in the replay,
        # or before Last-Event-ID); ``reset`` drops events queued while this was built.
        sub.terminal_sent = {
            run_id
            for run_id in self.run_ids
            if (run := orch.store.runs.get(run_id)) is not None and is_terminal(run.status)
        }
        return frames

    def _frame(self, run: RunRecord, event_id: int) -> bytes:
        return sse_frame(event_id, sse_event_name(run.status), self.api.orch.run_details(run))

    def _finished(self, sub: Subscriber) -> bool:
        """Whether the requested runs that exist (one at least) all had their terminal event.

        Unknown ids among known ones cannot become terminal, so they do not hold it open.
        """
        runs = self.api.orch.store.runs
        known = [run_id for run_id in self.run_ids if run_id in runs]
        return bool(known) and all(run_id in sub.terminal_sent for run_id in known)

    async def _pump(self, sub: Subscriber, send: Send, disconnected: asyncio.Task[None]) -> None:
        while True:
            sub.wakeup.clear()
            while sub.queue:
                frame = sub.queue.popleft()
                # Sliced, so a client that does not read holds one slice in the transport
                # (the frame itself is shared with every other stream and the history).
                for start in range(0, len(frame), SSE_WRITE_CHUNK_BYTES):
                    chunk = frame[start : start + SSE_WRITE_CHUNK_BYTES]
                    await _send_body(send, chunk)
                    sub.behind -= len(chunk)
            if sub.dropped or disconnected.done() or self._finished(sub):
                return
            woke = asyncio.get_running_loop().create_task(sub.wakeup.wait())
            try:
                done, _ = await asyncio.wait(
                    {woke, disconnected},
                    timeout=self.api.ping_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                woke.cancel()
            if disconnected in done:
                return
            if not done:
                await _send_body(send, SSE_PING)


async def _send_body(send: Send, body: bytes) -> None:
    if body:
        await send({"type": "http.response.body", "body": body, "more_body": True})


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


class _AuthMiddleware:
    """Bearer-token check on the REST API (when the server was given an API key)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            got = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = got.strip().partition(b" ")
            # RFC 7235: the auth scheme is case-insensitive ("bearer" == "Bearer").
            ok = scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.expected)
            if not ok:
                await _error(401, "missing or invalid API key (Authorization: Bearer <key>)")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def create_app(
    orch: Orchestrator,
    *,
    state_dir: Path,
    secret: bytes,
    api_key: str | None = None,
    ping_s: float = SSE_PING_S,
    bind_host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
) -> Starlette:
    """The ASGI app: the workflow API, object storage (``/v1/objects``) and the dashboard.

    Every request first passes :class:`GuardMiddleware` (Host, Origin, JSON bodies).
    """
    from ._dashboard import dashboard_routes
    from ._guard import GuardMiddleware
    from ._objects import object_routes

    api = Api(orch, ping_s=ping_s)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error(404, f"no route {request.method} {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"method {request.method} not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        return _error(500, f"internal server error: {type(exc).__name__}: {exc}")

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        ApiError: api_error,
        HTTPException: http_error,
        Exception: server_error,
    }
    middleware = [
        Middleware(
            GuardMiddleware,
            bind_host=bind_host,
            allowed_hosts=allowed_hosts,
            allowed_origins=allowed_origins,
        )
    ]
    if api_key:
        middleware.append(Middleware(_AuthMiddleware, api_key=api_key))
    return Starlette(
        routes=[
            *api.routes(),
            *object_routes(state_dir=state_dir, secret=secret),
            *dashboard_routes(api, api_key_required=api_key is not None),
        ],
        exception_handlers=handlers,
        middleware=middleware,
    )
