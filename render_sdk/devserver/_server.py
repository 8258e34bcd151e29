"""Wires store, launcher, orchestrator, API and uvicorn into one running server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._constants import (
    BODY_MIN_BYTES,
    BODY_TIMEOUT_S,
    DB_FILENAME,
    HEADER_TIMEOUT_S,
    LISTENING_PREFIX,
    LOCK_FILENAME,
    MAX_ATTEMPTS_PER_WORKER,
    NOTHING_REGISTERED,
    REGISTRATION_FAILED_PREFIX,
    REGISTRATION_OUTPUT_INDENT,
    REGISTRATION_TIMEOUT_S,
    RELOAD_MAX_FILES,
    RELOAD_POLL_S,
    SECRET_FILENAME,
    SOCKETS_FILENAME,
    SSE_PING_S,
)
from ._limits import AcceptErrorFilter, raise_nofile_limit
from ._orchestrator import Orchestrator, RegistrationError
from ._protocol import command_source, example_input
from ._socket import make_socket_dir
from ._store import Store, StoreError

#: Exit status after Ctrl-C (128 + SIGINT), as shells report an interrupted command.
EXIT_INTERRUPTED = 128 + signal.SIGINT
_WATCHED_SUFFIXES = (".py", ".js", ".mjs", ".cjs", ".ts", ".go")
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "venv", "env", "dist"})


class StartupError(Exception):
    """The server cannot start (port in use, state dir locked or unwritable)."""


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything ``render-workflows dev`` was asked to do."""

    command: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    host: str = "127.0.0.1"
    port: int = 8120
    state_dir: Path = Path(".render")
    api_key: str | None = None
    warm: bool = True
    #: Run many attempts in turn in each warm worker (``--reuse-workers``).
    reuse_workers: bool = False
    max_attempts_per_worker: int = MAX_ATTEMPTS_PER_WORKER
    debug: bool = False
    reload: bool = True
    registration_timeout: float = REGISTRATION_TIMEOUT_S
    sse_ping_s: float = SSE_PING_S
    loaded_env_files: Sequence[str] = ()
    allowed_hosts: Sequence[str] = ()
    allowed_origins: Sequence[str] = ()
    #: The most attempts running at once (None: derived from the fd limit and CPUs).
    max_concurrency: int | None = None
    #: Seconds a connection (REST or task socket) has to send a request's headers.
    header_timeout_s: float = HEADER_TIMEOUT_S
    #: Windows in which a request's body must bring ``BODY_MIN_BYTES`` (or the rest of it).
    body_timeout_s: float = BODY_TIMEOUT_S


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost`` included)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP; without it Nagle and delayed ACKs add ~40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == 98 or "in use" in str(exc).lower():
            raise StartupError(
                f"port {port} is already in use. Stop the other process or use --port to pick "
                "a different one (--port 0 picks a free port)"
            ) from exc
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses: a wildcard bind is reached via loopback.

    ``http://0.0.0.0:P`` is where the server listens, not an address to connect to.
    """
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _lock_state_dir(state_dir: Path) -> Any:
    """Hold an exclusive lock on the state dir for the server's lifetime.

    Two servers writing one database would each believe it owns the in-flight runs
    (and recover the other's as "server restarted"); the second one is refused.
    """
    path = state_dir / LOCK_FILENAME
    # Held open until the server exits; owner-only like everything in the state dir.
    handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")
    os.fchmod(handle.fileno(), 0o600)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock, run unguarded
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise StartupError(
            f"the state dir {state_dir} is in use by another render-workflows dev "
            f"(pid {owner}); stop it or pass a different --state-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _fresh_socket_dir(state_dir: Path) -> Path:
    """A new private socket dir; the one a killed predecessor left behind is removed."""
    record = state_dir / SOCKETS_FILENAME
    with contextlib.suppress(OSError):
        stale = Path(record.read_text().strip())
        if stale.name.startswith("rsdk-") and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    path = make_socket_dir()
    with contextlib.suppress(OSError):
        _write_private(record, str(path))
    return path


def _write_private(path: Path, text: str) -> None:
    """Replace ``path``'s contents with ``text``, readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)  # an older file may have been created wider
        f.write(text)


def _secret(state_dir: Path) -> bytes:
    path = state_dir / SECRET_FILENAME
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        value = secrets.token_bytes(32)
        _write_private(path, value.hex())
        return value


def reload_failed_line(orch: Orchestrator, source: str) -> str:
    """What serves runs after a reload failed (the rule the README's "hot reload" states).

    The last good registration's tasks stay listed. With warm start its import keeps
    serving runs; when attempts are spawned, each starts the current source and fails
    until the error is fixed. ``/v1/dashboard/info`` says the same (``serving``).
    """
    kept = len(orch.store.registered_tasks())
    when = (
        f", registered at {orch.registered_at.strftime('%H:%M:%S')} UTC"
        if orch.registered_at
        else ""
    )
    fix = f"until {source} registers again: fix the error above (it re-registers when files change)"
    if orch.serving == "last-good":
        return f"Reload failed; serving the last good version ({kept} task(s){when}) {fix}"
    return (
        f"Reload failed; the last good {kept} task(s) stay listed{when}, but each run starts "
        f"the current source and fails {fix}"
    )


def example_curl(url: str, orch: Orchestrator) -> str:
    """A ``curl`` that starts the app's first task with an input it accepts.

    The first task in the app's own order; its input is built from the parameters it
    registered (:func:`example_input`), so that pasting the line starts a run that can
    complete.
    """
    registered = {t.name for t in orch.store.registered_tasks()}
    names = [n for n in orch.task_parameters if n in registered] or sorted(registered)
    if names:
        body = {"task": names[0], "input": example_input(orch.task_parameters.get(names[0], []))}
    else:
        body = {"task": "<task-name>", "input": []}
    data = json.dumps(body).replace("'", "'\\''")  # inside a single-quoted shell word
    return f"curl -X POST {url}/v1/task-runs -H 'Content-Type: application/json' -d '{data}'"


class SourceWatcher:
    """Polls the mtimes of the app's source files (hot reload without extra deps)."""

    def __init__(self, root: Path, *, skip: Sequence[Path] = ()) -> None:
        self.root = root
        self.skip = {p.resolve() for p in skip}
        self.snapshot = self.scan()

    def scan(self) -> dict[str, float]:
        """Source path → mtime, for at most RELOAD_MAX_FILES files."""
        out: dict[str, float] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [
                d
                for d in dirnames
                if not d.startswith(".")
                and d not in _SKIPPED_DIRS
                and Path(dirpath, d).resolve() not in self.skip
            ]
            for name in filenames:
                if name.endswith(_WATCHED_SUFFIXES):
                    path = os.path.join(dirpath, name)
                    with contextlib.suppress(OSError):
                        out[path] = os.stat(path).st_mtime_ns / 1e9
                    if len(out) >= RELOAD_MAX_FILES:
                        return out
        return out

    def changed(self) -> bool:
        """True (once) when a file was added, removed or modified since the last call."""
        current = self.scan()
        if current != self.snapshot:
            self.snapshot = current
            return True
        return False


class DevServer:
    """One ``render-workflows dev`` server: start with :meth:`run`."""

    def __init__(self, config: ServerConfig, *, out: TextIO | None = None) -> None:
        self.config = config
        self.out = out or sys.stdout
        self._stop = asyncio.Event()
        self._exit_code = 0

    def say(self, line: str) -> None:
        """Print one line to the terminal and flush (LocalServer reads it from a pipe)."""
        self.out.write(line + "\n")
        self.out.flush()

    def stop(self) -> None:
        """Ask the server to shut down (signal handlers call this)."""
        self._stop.set()

    def _interrupted(self) -> None:
        # Ctrl-C exits 130 (128 + SIGINT), as shells expect of an interrupted command.
        self._exit_code = EXIT_INTERRUPTED
        self.stop()

    async def run(self) -> int:
        """Serve until stopped; returns the process exit code."""
        cfg = self.config
        # More fds where the hard limit allows, then a concurrency limit that fits them.
        raise_nofile_limit()
        AcceptErrorFilter().install(asyncio.get_running_loop())
        state_dir = (cfg.cwd / cfg.state_dir).resolve()
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            # Runs, inputs, results and objects are the developer's data: owner only.
            state_dir.chmod(0o700)
        except OSError as exc:
            raise StartupError(f"cannot create the state dir {state_dir}: {exc}") from exc
        lock = _lock_state_dir(state_dir)
        try:
            return await self._run(state_dir)
        finally:
            lock.close()

    async def _run(self, state_dir: Path) -> int:
        from ._api import create_app
        from ._launcher import make_launcher

        cfg = self.config
        try:
            store = Store(state_dir / DB_FILENAME)
        except StoreError as exc:
            raise StartupError(str(exc)) from exc
        try:
            sock = _bind(cfg.host, cfg.port)
        except StartupError:
            store.close()
            raise
        sockets = [sock]
        if cfg.host in ("127.0.0.1", "localhost"):
            # Clients default to http://localhost:8120, and "localhost" may resolve to ::1
            # first (Node does; httpx takes the first address): serve both loopbacks.
            with contextlib.suppress(StartupError, OSError):
                sockets.append(_bind("::1", sock.getsockname()[1]))
        socket_dir = _fresh_socket_dir(state_dir)
        launcher = make_launcher(
            cfg.command,
            cwd=cfg.cwd,
            env=dict(cfg.env),
            warm=cfg.warm,
            reuse_workers=cfg.reuse_workers,
            max_attempts_per_worker=cfg.max_attempts_per_worker,
        )
        orch = Orchestrator(
            store=store,
            launcher=launcher,
            socket_dir=socket_dir,
            report=self.say,
            echo_output=cfg.debug,
            registration_timeout=cfg.registration_timeout,
            max_concurrency=cfg.max_concurrency,
            header_timeout_s=cfg.header_timeout_s,
            body_timeout_s=cfg.body_timeout_s,
        )
        loop = asyncio.get_running_loop()
        for sig, handler in ((signal.SIGINT, self._interrupted), (signal.SIGTERM, self.stop)):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, handler)
        server: uvicorn.Server | None = None
        serve_task: asyncio.Task[None] | None = None
        watch_task: asyncio.Task[None] | None = None
        try:
            if cfg.loaded_env_files:
                self.say(f"Loaded environment variables from {', '.join(cfg.loaded_env_files)}")
            # The snapshot predates registration, so an edit made meanwhile still reloads.
            watcher = SourceWatcher(cfg.cwd, skip=[cfg.cwd / cfg.state_dir]) if cfg.reload else None
            registering = loop.create_task(self._register(orch, announce=True))
            stopping = loop.create_task(self._stop.wait())
            await asyncio.wait({registering, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not registering.done():
                # Ctrl-C while the app is still registering: stop without waiting for it.
                registering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await registering
                self.say("Shutting down")
                return self._exit_code
            found = registering.result()
            warm_error = getattr(launcher, "warm_error", None)
            if not found:
                if not cfg.reload:
                    self.say(f"{NOTHING_REGISTERED}; exiting (fix the app, then restart)")
                    return 1
                self.say(
                    f"{NOTHING_REGISTERED}; waiting for a fix (it re-registers when files change)"
                )
            elif warm_error:
                # The registration error above already shows an import error; otherwise
                # tell the user why attempts spawn a new interpreter (slower) than forking.
                self.say(f"Warm start is off, spawning each attempt: {warm_error}")
            elif cfg.reuse_workers and not launcher.warm:
                self.say("Reusable workers need a Python app (module:app); spawning each attempt")
            elif cfg.reuse_workers:
                self.say(
                    f"Reusing workers: up to {cfg.max_attempts_per_worker} attempts each "
                    "(module state persists between runs)"
                )
            recovered = orch.recover()
            if recovered:
                self.say(f"Recovered {recovered} unfinished run(s) from {store.path}")
            app = create_app(
                orch,
                state_dir=state_dir,
                secret=_secret(state_dir),
                api_key=cfg.api_key,
                ping_s=cfg.sse_ping_s,
                bind_host=cfg.host,
                allowed_hosts=cfg.allowed_hosts,
                allowed_origins=cfg.allowed_origins,
            )
            server = _QuietServer(
                uvicorn.Config(
                    app,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=1,
                    timeout_keep_alive=30,
                    http=deadline_protocol(cfg.header_timeout_s, cfg.body_timeout_s),
                )
            )
            serve_task = loop.create_task(server.serve(sockets=sockets))
            while not server.started:
                if serve_task.done():
                    serve_task.result()
                    raise StartupError("the HTTP server stopped during startup")
                await asyncio.sleep(0.005)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{port}"
            self.say(f"{LISTENING_PREFIX}{url}")
            self._hints(client_url(host, port), orch)
            if watcher is not None:
                watch_task = loop.create_task(self._watch(orch, launcher, watcher))
            stop_task = loop.create_task(self._stop.wait())
            await asyncio.wait({serve_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            if serve_task.done() and serve_task.exception() is not None:
                raise StartupError(f"HTTP server failed: {serve_task.exception()}")
            self.say("Shutting down")
            return self._exit_code
        finally:
            if watch_task is not None:
                watch_task.cancel()
            if server is not None:
                server.should_exit = True
            await orch.aclose()
            if serve_task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(serve_task, 3)
            await launcher.aclose()
            store.close()
            for open_sock in sockets:
                open_sock.close()
            shutil.rmtree(socket_dir, ignore_errors=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    def _hints(self, url: str, orch: Orchestrator) -> None:
        self.say(f"Dashboard: {url}/")
        self.say(f"Clients: RENDER_USE_LOCAL_DEV=true RENDER_LOCAL_DEV_URL={url}")
        self.say(f"Try: {example_curl(url, orch)}")

    async def _register(self, orch: Orchestrator, *, announce: bool) -> int:
        """Register the app's tasks and say how it went; returns how many were found."""
        source = command_source(self.config.command)
        try:
            tasks = await orch.register()
        except RegistrationError as exc:
            self.say(f"{REGISTRATION_FAILED_PREFIX}{exc}")
            if exc.output and not self.config.debug:  # --debug echoed it already
                for line in exc.output.splitlines():
                    self.say(f"{REGISTRATION_OUTPUT_INDENT}{line}")
            if not announce:
                self.say(reload_failed_line(orch, source))
            return 0
        if not tasks:
            self.say(f"0 tasks found in {source} (define tasks with @app.task)")
            return 0
        prefix = "" if announce else "Reloaded: "
        self.say(f"{prefix}{len(tasks)} task(s) found in {source}")
        for task in sorted(tasks, key=lambda t: t.name):
            self.say(f"  - {task.name}")
        return len(tasks)

    async def _watch(self, orch: Orchestrator, launcher: Any, watcher: SourceWatcher) -> None:
        while True:
            await asyncio.sleep(RELOAD_POLL_S)
            if await asyncio.to_thread(watcher.changed):
                self.say("Source files changed; reloading")
                await launcher.reload()
                await self._register(orch, announce=False)


class _DeadlineH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with deadlines on each request's headers and body.

    uvicorn times out idle keep-alive connections but neither a request whose headers
    trickle in nor one whose body stalls (slowloris): 1,000 such connections would hold
    1,000 fds forever. The headers have one timer, which trickled bytes do not push back;
    the body has windows of ``body_timeout_s``, each of which must bring ``BODY_MIN_BYTES``
    (or the rest of the body), so a large upload at any reasonable rate goes through.
    """

    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _body_window_bytes = 0

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _awaiting_body(self) -> bool:
        return self.cycle is not None and self.cycle.more_body and not self.cycle.response_complete

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _arm_body(self) -> None:
        self._body_window_bytes = 0
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_window_ended)

    def _disarm(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _body_window_ended(self) -> None:
        self._body_timer = None
        if self._body_window_bytes >= BODY_MIN_BYTES:
            self._arm_body()
        else:
            self._too_slow()

    def _too_slow(self) -> None:
        self._header_timer = self._body_timer = None
        if (self._between_requests() or self._awaiting_body()) and not self.transport.is_closing():
            # The app sees a disconnect (read_body answers nothing and starts nothing).
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._arm()
        super().data_received(data)
        if self._between_requests():
            return
        if self._header_timer is not None:
            # The headers are in: now the body has its own deadline, if one is to come.
            self._header_timer.cancel()
            self._header_timer = None
            if self._awaiting_body():
                self._arm_body()
        elif self._body_timer is not None:
            self._body_window_bytes += len(data)
        if self._body_timer is not None and not self._awaiting_body():
            self._body_timer.cancel()
            self._body_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def deadline_protocol(header_timeout_s: float, body_timeout_s: float) -> type[H11Protocol]:
    """The REST server's protocol class, with these deadlines."""
    return type(
        "DeadlineH11",
        (_DeadlineH11,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s},
    )


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :class:`DevServer`."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def run_server(config: ServerConfig, *, out: TextIO | None = None) -> int:
    """Run a server to completion (blocking); returns its exit code."""
    server = DevServer(config, out=out)
    try:
        return asyncio.run(server.run())
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
