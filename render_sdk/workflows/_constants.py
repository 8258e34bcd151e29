"""Every default and limit of the task runner, in one place.

Tests inject other values through :class:`~render_sdk.workflows._transport.TransportPolicy`
rather than by patching these names.
"""

from __future__ import annotations

from typing import Final

from .. import _constants as _payload

#: Compute plans a task may request. Render's instance types for workflow tasks:
#: ``starter`` (0.5 CPU / 512 MB), ``standard`` (1 CPU / 2 GB, Render's default when no
#: plan is given), ``pro`` (2 CPU / 4 GB) and the larger ``pro_plus``, ``pro_max`` and
#: ``pro_ultra``.
PLANS: Final = ("starter", "standard", "pro", "pro_plus", "pro_max", "pro_ultra")

#: Render runs a task for at most this many seconds (24 h).
MAX_TIMEOUT_SECONDS: Final = 86_400

#: Characters a task name may not hold: names are used in ``workflow-slug/task-name``
#: identifiers.
TASK_NAME_FORBIDDEN_CHARS: Final = frozenset("/: \t\r\n")

#: Default ``Retry.backoff_scaling``: the wait before attempt n+1 is
#: ``wait_duration_ms * backoff_scaling**n`` (sent as ``factor``).
DEFAULT_BACKOFF_SCALING: Final = 1.5

# The environment the task server sets for every process it starts.
ENV_MODE: Final = "RENDER_SDK_MODE"
ENV_SOCKET_PATH: Final = "RENDER_SDK_SOCKET_PATH"
MODE_REGISTER: Final = "register"
MODE_RUN: Final = "run"
#: sun_path holds 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH_BYTES: Final = 107

# Task-socket transport. Transient failures (refused or reset connections, timeouts,
# protocol errors, 5xx, 429) are retried: the wait before attempt n+1 is
# min(BACKOFF_BASE_S * 2**n, BACKOFF_CAP_S); 25 attempts wait 303.75 s in total, enough to
# ride out a task-server restart.
TRANSPORT_MAX_ATTEMPTS: Final = 25
TRANSPORT_BACKOFF_BASE_S: Final = 0.25
TRANSPORT_BACKOFF_CAP_S: Final = 16.0
#: Connections one task process holds open to its socket at once; more concurrent calls
#: (a gather over 1,000 subtasks) queue for one. Each is a file descriptor on both ends,
#: and the local server budgets a handful per attempt.
MAX_CONCURRENT_REQUESTS: Final = 4
#: Per-request limit on the socket (connect, send, wait for the whole answer).
REQUEST_TIMEOUT_S: Final = 15.0

# Waiting for a subtask. The runner asks the server to hold /get-subtask-result for up
# to SUBTASK_WAIT_MS (a long poll, well under REQUEST_TIMEOUT_S). A server that ignores
# the field answers "still running" at once; then the runner sleeps between asks,
# starting at POLL_BASE_S and doubling up to POLL_CAP_S.
SUBTASK_WAIT_MS: Final = 5_000
POLL_BASE_S: Final = 0.1
POLL_CAP_S: Final = 1.0
#: A "still running" answer faster than this fraction of wait_ms means the server
#: did not long-poll.
LONG_POLL_MIN_FRACTION: Final = 0.5
#: Longest a parent waits for one subtask before failing with TimeoutError (24 h,
#: Render's longest task timeout): a wait never ends silently.
SUBTASK_WAIT_LIMIT_S: Final = float(MAX_TIMEOUT_SECONDS)

#: Bounds of an answer on the task socket: a longer head or body is a protocol error
#: rather than unbounded memory.
MAX_RESPONSE_HEAD_BYTES: Final = 64 * 1024
MAX_RESPONSE_BODY_BYTES: Final = 256 * 1024 * 1024
#: Largest encoded task result the runner sends and largest encoded subtask input it
#: sends: larger fails at once, naming both sizes, before anything goes on the socket.
#: Declared in :mod:`render_sdk._constants` (the client and the local server use them too).
MAX_RESULT_BYTES: Final = _payload.MAX_RESULT_BYTES
MAX_INPUT_BYTES: Final = _payload.MAX_INPUT_BYTES
#: Bytes asked of the socket per read.
READ_SIZE: Final = 64 * 1024
#: At most this many bytes of a non-JSON error body go into the error message.
ERROR_BODY_PREFIX_BYTES: Final = 500

#: Host header on the socket (HTTP/1.1 requires one; the server ignores it).
SOCKET_HOST: Final = "localhost"
