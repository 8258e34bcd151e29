"""The web dashboard: static assets at ``/`` and the API routes only it uses.

The dashboard's own API lives here, in one place, so it can move into the proto service
definitions (issue 9) as four rpcs:

- ``GET /v1/dashboard/info``: registration state, and each task's options and parameters;
- ``GET /v1/dashboard/events``: an SSE stream of every run's transitions;
- ``GET /v1/dashboard/runs``: a page of runs (GET /v1/task-runs' query parameters, or
  ``runId`` for one run by id) with the event id it was read at, so the page can tell
  which streamed events it already shows;
- ``GET /v1/dashboard/logs?taskRunId=``: an SSE stream of one run's output, live.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Send

from .. import _wire
from ._api import Api, ApiError, SSEResponse, StreamResponse, send_body, wait_or_ping
from ._constants import MAX_LOG_LIMIT
from ._orchestrator import Subscriber
from ._protocol import LogFilter, encode_cursor, sse_frame
from ._views import task_run

#: The files the dashboard is made of, with their media types; nothing else is served.
ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

#: The page may load only its own scripts, styles and API (no inline script, no framing).
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSET_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> bytes:
    return (resources.files(__package__) / "_dashboard" / name).read_bytes()


class _AllRunsSSE(SSEResponse):
    """Every run's transitions; starts with a ``ready`` event carrying the current id.

    A client that resumes with Last-Event-ID gets what it missed from the history; when
    some of that has left the history it gets ``resync`` and reloads what it shows.
    """

    def _subscribe(self) -> Subscriber:
        return self.api.orch.hub.subscribe_all()

    def _initial(self, sub: Subscriber) -> list[bytes]:
        hub = self.api.orch.hub
        sub.queue.clear()
        if self.last_id is None:
            return [b"id: %d\nevent: ready\ndata: {}\n\n" % hub.last_issued]
        missed = hub.replay_all_after(self.last_id)
        if missed is None:
            return [b"id: %d\nevent: resync\ndata: {}\n\n" % hub.last_issued]
        return missed


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id", "").strip()
    return int(raw) if raw.isdigit() else None


class _LogsSSE(StreamResponse):
    """One run's output as ``logs`` events (``id`` = the last line's seq), live.

    It starts with every line after Last-Event-ID (all of them without it) and then sends
    each batch the server commits; it ends when the client goes. A line's seq orders
    lines, so a resume neither repeats nor skips one.
    """

    def __init__(self, api: Api, run_id: str, after_seq: int) -> None:
        super().__init__()
        self.api = api
        self.run_id = run_id
        self.after_seq = after_seq
        self._wake = asyncio.Event()

    def _watch(self, run_ids: set[str]) -> None:
        if self.run_id in run_ids:
            self._wake.set()

    def open(self) -> None:
        self.api.store.log_watchers.add(self._watch)

    def close(self) -> None:
        self.api.store.log_watchers.discard(self._watch)

    async def stream(self, send: Send, disconnected: asyncio.Task[None]) -> None:
        store = self.api.store
        flt = LogFilter(run_ids=frozenset({self.run_id}))
        while True:
            self._wake.clear()
            more = True
            while more:
                logs, more = store.query_logs(flt, limit=MAX_LOG_LIMIT, after_seq=self.after_seq)
                if not logs:
                    break
                self.after_seq = logs[-1].seq
                lines = [
                    {"stream": log.stream, "message": log.message, "ts": log.ts.isoformat()}
                    for log in logs
                ]
                await send_body(send, sse_frame(self.after_seq, "logs", json.dumps(lines).encode()))
            if await wait_or_ping(send, self._wake, disconnected, ping_s=self.api.ping_s):
                return


def dashboard_routes(api: Api, *, api_key_required: bool) -> list[BaseRoute]:
    """The dashboard's page and assets, plus its info and all-runs event routes."""

    async def page(request: Request) -> Response:
        return Response(
            _asset("index.html"), media_type=ASSETS["index.html"], headers=_ASSET_HEADERS
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return Response(
                json.dumps({"message": f"no dashboard asset {name!r}"}),
                status_code=404,
                media_type="application/json",
            )
        return Response(_asset(name), media_type=ASSETS[name], headers=_ASSET_HEADERS)

    async def info(request: Request) -> Response:
        orch = api.orch
        tasks = [
            {
                "id": t.id,
                "name": t.name,
                "retry": {
                    "maxRetries": t.retry.max_retries,
                    "waitDurationMs": t.retry.wait_duration_ms,
                    "factor": t.retry.factor,
                },
                "timeoutSeconds": t.timeout_seconds,
                "plan": t.plan,
                "parameters": [p.to_json() for p in t.parameters],
            }
            for t in api.store.registered_tasks()
        ]
        body = {
            "registrationError": orch.registration_error,
            # The app's own output of that failed registration (its traceback).
            "registrationOutput": orch.registration_output or None,
            # Which version runs start from: current | last-good | broken (see
            # Orchestrator.serving), and when the listed tasks were registered.
            "serving": orch.serving,
            "registeredAt": _wire.format_timestamp(orch.registered_at)
            if orch.registered_at
            else None,
            "apiKeyRequired": api_key_required,
            "tasks": tasks,
        }
        return Response(json.dumps(body), media_type="application/json")

    async def events(request: Request) -> Response:
        last_id = _last_event_id(request)
        if last_id is not None and last_id > api.orch.hub.last_issued:
            last_id = None  # never issued here (a bogus header, or an older server's clock)
        return _AllRunsSSE(api, [], last_id)

    async def runs(request: Request) -> Response:
        # Read in one step of the event loop: the page holds every transition up to
        # eventId, and the events after it come on the all-runs stream.
        event_id = api.orch.hub.last_issued
        run_id = request.query_params.get("runId", "").strip()
        if run_id:  # a search by id: that run, or none (not a 404: nothing is wrong)
            found = api.store.runs.get(run_id)
            page, more = ([found] if found is not None else []), False
        else:
            page, more = api.run_page(request)
        items = [_wire.dumps(task_run(r, api.store.task_id(r.task_name)), _wire.REST) for r in page]
        head = {"eventId": event_id, "nextCursor": encode_cursor(page[-1].seq) if more else None}
        body = json.dumps(head).encode()[:-1] + b',"runs":[' + b",".join(items) + b"]}"
        return Response(body, media_type="application/json")

    async def logs(request: Request) -> Response:
        run_id = request.query_params.get("taskRunId", "")
        if not run_id:
            raise ApiError(400, "taskRunId is required")
        if run_id not in api.store.runs:
            raise ApiError(404, f"task run not found: {run_id}")
        return _LogsSSE(api, run_id, _last_event_id(request) or 0)

    return [
        Route("/", page, methods=["GET"]),
        Route("/_dashboard/{name}", asset, methods=["GET"]),
        Route("/v1/dashboard/info", info, methods=["GET"]),
        Route("/v1/dashboard/events", events, methods=["GET"]),
        Route("/v1/dashboard/runs", runs, methods=["GET"]),
        Route("/v1/dashboard/logs", logs, methods=["GET"]),
    ]
