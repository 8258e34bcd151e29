"""Defaults of the REST + SSE client, in one place (see docs of each name)."""

from __future__ import annotations

from typing import Final

#: Render's public API; ``/v1`` is appended to form the API base.
DEFAULT_BASE_URL: Final = "https://api.render.com"
#: The local task server the client uses when ``RENDER_USE_LOCAL_DEV`` is truthy.
DEFAULT_LOCAL_DEV_URL: Final = "http://localhost:8120"
API_PREFIX: Final = "/v1"

ENV_API_KEY: Final = "RENDER_API_KEY"
ENV_USE_LOCAL_DEV: Final = "RENDER_USE_LOCAL_DEV"
ENV_LOCAL_DEV_URL: Final = "RENDER_LOCAL_DEV_URL"
ENV_WORKSPACE_ID: Final = "RENDER_WORKSPACE_ID"
ENV_REGION: Final = "RENDER_REGION"
#: The values of ``RENDER_USE_LOCAL_DEV`` that switch local mode on (Go's ParseBool set).
TRUTHY_VALUES: Final = frozenset({"1", "t", "T", "true", "TRUE", "True"})
#: Hosts for which a token is optional even without the local-mode variables.
LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

#: Per-request timeouts in seconds (httpx semantics: each phase separately).
DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
#: Longest silence tolerated on an event stream before it is treated as dropped and
#: re-opened. Render's local server pings every 25 s.
SSE_READ_TIMEOUT: Final = 75.0

#: The connection pool of a client: every connection it may open is also kept alive, so
#: many concurrent awaits and requests reuse connections instead of reconnecting for
#: each request once more than httpx's default of 20 idle connections were in use.
MAX_CONNECTIONS: Final = 100
MAX_KEEPALIVE_CONNECTIONS: Final = MAX_CONNECTIONS

#: Retries of an idempotent request (GET, DELETE) after a transient failure.
DEFAULT_MAX_RETRIES: Final = 2
INITIAL_RETRY_DELAY: Final = 0.5
MAX_RETRY_DELAY: Final = 8.0
#: Up to this fraction of each backoff delay is removed at random (jitter).
RETRY_JITTER: Final = 0.25
#: A ``Retry-After`` longer than this is not waited for; the error is raised instead.
MAX_RETRY_AFTER: Final = 60.0
#: Methods retried after a transient failure without the caller saying so.
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
#: HTTP statuses worth retrying for an idempotent request.
RETRYABLE_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})

#: Event-stream reconnection: backoff per consecutive failure, and the cap.
SSE_RECONNECT_INITIAL_DELAY: Final = 0.25
SSE_RECONNECT_MAX_DELAY: Final = 16.0
#: A stream that stayed open this long resets the reconnect backoff when it drops.
SSE_STABLE_CONNECTION: Final = 10.0
#: Consecutive failed (re)connections before waiting gives up with the last error.
SSE_MAX_RECONNECTS: Final = 8

#: At most this many characters of a non-JSON error body go into the error message.
ERROR_BODY_PREFIX: Final = 500

#: Event names that announce a final outcome (the status in the data says which).
#: Render names every terminal outcome ``task.completed``; the rest are accepted for
#: other servers and newer versions.
TERMINAL_EVENT_NAMES: Final = frozenset(
    {"task.completed", "task.succeeded", "task.failed", "task.canceled"}
)
#: Event names that announce progress only.
NON_TERMINAL_EVENT_NAMES: Final = frozenset({"task.pending", "task.running", "task.paused"})
#: Every event name under which a run's state may arrive.
SSE_EVENT_NAMES: Final = TERMINAL_EVENT_NAMES | NON_TERMINAL_EVENT_NAMES | {"message"}

#: Page size ``iter_task_runs`` asks for when the caller did not choose one.
DEFAULT_PAGE_SIZE: Final = 100

#: How often ``render-workflows logs --follow`` asks for new output.
LOG_POLL_INTERVAL: Final = 0.5
