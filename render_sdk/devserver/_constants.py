"""Defaults of the local task server, in one place."""

from __future__ import annotations

from typing import Final

#: The REST API's default port (the Render CLI's `workflows dev` uses the same).
DEFAULT_PORT: Final = 8120
#: Loopback only unless --host says otherwise.
DEFAULT_HOST: Final = "127.0.0.1"
#: Where the SQLite database (and object storage) live, relative to the cwd.
DEFAULT_STATE_DIR: Final = ".render"
#: The env file read when --env-file is not given (silently skipped when missing).
DEFAULT_ENV_FILE: Final = ".env"
#: The database file inside the state dir.
DB_FILENAME: Final = "devserver.sqlite3"
#: The file inside the state dir a running server holds locked (it contains its pid).
LOCK_FILENAME: Final = "devserver.lock"
#: The file inside the state dir naming the running server's socket dir.
SOCKETS_FILENAME: Final = "devserver.sockets"
#: The file inside the state dir holding the object-storage URL signing secret.
SECRET_FILENAME: Final = "devserver.secret"

#: Largest accepted REST request body (POST /v1/task-runs and friends); larger is a 413.
MAX_BODY_BYTES: Final = 10 * 1024 * 1024
#: Largest accepted task-socket request body (callback outputs, subtask inputs).
MAX_SOCKET_BODY_BYTES: Final = 64 * 1024 * 1024
#: Bytes of request bodies all task-socket connections together may hold while they are read
#: and handled; a request whose body does not fit answers 503 (the runner retries it).
#: Room for two bodies of the largest size, so one always fits when nothing else is held.
MAX_SOCKET_BUFFERED_BYTES: Final = 2 * MAX_SOCKET_BODY_BYTES

#: How long a command may take to POST /register-tasks before registration fails.
REGISTRATION_TIMEOUT_S: Final = 30.0
#: How often the app's source files are polled for changes (hot reload).
RELOAD_POLL_S: Final = 1.0
#: At most this many source files are watched (a huge tree is not polled file by file).
RELOAD_MAX_FILES: Final = 2000

#: get-subtask-result long polls are capped at this many milliseconds.
MAX_WAIT_MS: Final = 10_000

#: SSE: the reconnect delay announced by the first write.
SSE_RETRY_MS: Final = 2000
#: SSE: comment heartbeat interval.
SSE_PING_S: Final = 25.0
#: SSE: events buffered per subscriber before a slow subscriber is dropped.
SSE_QUEUE_SIZE: Final = 1024
#: SSE: a subscriber is dropped (its stream ends; it resumes with Last-Event-ID) once this many
#: bytes of frames wait for it. One frame is always accepted when nothing waits, whatever its size.
SSE_SUBSCRIBER_MAX_BYTES: Final = 4 * 1024 * 1024
#: SSE: frames are handed to the connection in slices of this size, so a client that does not
#: read holds one slice in the transport instead of a whole (shared) frame copy.
SSE_WRITE_CHUNK_BYTES: Final = 64 * 1024
#: SSE: recent event ids kept for Last-Event-ID replay (a compact entry each).
SSE_HISTORY: Final = 4096
#: SSE: total bytes of recent frames kept for an exact Last-Event-ID replay; a run whose
#: missed frames were evicted is replayed as one frame of its current state instead.
SSE_HISTORY_MAX_BYTES: Final = 8 * 1024 * 1024

#: The CLI's default retry factor when a registration omits it (Render's default).
DEFAULT_RETRY_FACTOR: Final = 2.0

#: GET /v1/task-runs page size when no limit is given, and the largest allowed.
DEFAULT_PAGE_LIMIT: Final = 20
MAX_PAGE_LIMIT: Final = 100
#: GET /v1/logs page size when no limit is given, and the largest allowed.
DEFAULT_LOG_LIMIT: Final = 1000
MAX_LOG_LIMIT: Final = 10_000

#: Logs are committed in batches at most this far apart (seconds).
LOG_FLUSH_S: Final = 0.05

#: The line LocalServer (and scripts) parse to learn the bound URL.
LISTENING_PREFIX: Final = "Listening on "

#: A client must finish sending a request's headers within this many seconds of starting
#: it (or of connecting); slower connections are closed (slowloris). REST and task sockets;
#: ``--header-timeout`` overrides it.
HEADER_TIMEOUT_S: Final = 10.0
#: A request's body must keep arriving: at least BODY_MIN_BYTES (or all of the rest) in every
#: window of this many seconds from the end of its headers; a body that stalls or trickles is
#: closed (a 5 GiB object upload at any reasonable rate is not). REST and task sockets;
#: ``--body-timeout`` overrides it.
BODY_TIMEOUT_S: Final = 30.0
BODY_MIN_BYTES: Final = 64 * 1024

#: Console line that starts a failed registration's report (LocalServer looks for it);
#: the command's own output follows, each line indented by REGISTRATION_OUTPUT_INDENT
#: (as is a failed attempt's traceback under its status line with --debug).
REGISTRATION_FAILED_PREFIX: Final = "Task registration failed: "
REGISTRATION_OUTPUT_INDENT: Final = "  | "
#: Console line when a start registered no task.
NOTHING_REGISTERED: Final = "No tasks registered"

#: File descriptors budgeted per running attempt: its listening task socket, two output
#: pipes, the child watcher, and the connections its process makes to it (our runner
#: holds at most 4 at once: render_sdk.workflows' MAX_CONCURRENT_REQUESTS).
FDS_PER_ATTEMPT: Final = 8
#: File descriptors kept out of the attempts' budget: the REST API and its clients, SSE
#: subscribers, SQLite, the zygote, the object store.
FD_RESERVE: Final = 128
#: Running attempts per CPU core when the fd limit allows more (task processes beyond
#: this mostly wait for the CPU and only make every run slower).
ATTEMPTS_PER_CPU: Final = 32
#: The default concurrency limit is never below this (a tiny fd limit still runs work).
MIN_CONCURRENCY: Final = 1
#: The soft RLIMIT_NOFILE is raised to the hard limit at start, but not past this
#: (an unlimited hard limit must not mean an unbounded fd table).
NOFILE_TARGET: Final = 1 << 16
#: Failing accept() calls (out of file descriptors) are logged at most once per this
#: many seconds, with a count of the ones not shown.
ACCEPT_ERROR_LOG_INTERVAL_S: Final = 10.0

#: Attempts a reusable worker (``--reuse-workers``) runs before a fresh fork replaces it:
#: bounds what one long-lived worker can accumulate (memory, module state, leaked fds).
MAX_ATTEMPTS_PER_WORKER = 100
#: How long a reusable worker has, after its callback, to end its attempt before its run's
#: outcome is recorded anyway (and the worker killed instead of reused).
REUSE_END_WAIT_S = 1.0
