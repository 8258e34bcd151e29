"""The web dashboard: static assets at ``/`` and the two API routes only it uses.

The dashboard's own API lives here, in one place, so it can move into the proto service
definitions (issue 9) as two rpcs: ``GET /v1/dashboard/info`` (registration state and task
options) and ``GET /v1/dashboard/events`` (an SSE stream of every run's transitions).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import _wire
from ._api import Api, SSEResponse
from ._orchestrator import Subscriber

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
        raw = request.headers.get("last-event-id", "").strip()
        last_id = int(raw) if raw.isdigit() else None
        if last_id is not None and last_id > api.orch.hub.last_issued:
            last_id = None  # never issued here (a bogus header, or an older server's clock)
        return _AllRunsSSE(api, [], last_id)

    return [
        Route("/", page, methods=["GET"]),
        Route("/_dashboard/{name}", asset, methods=["GET"]),
        Route("/v1/dashboard/info", info, methods=["GET"]),
        Route("/v1/dashboard/events", events, methods=["GET"]),
    ]
