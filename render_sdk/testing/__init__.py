"""Helpers for testing Render Workflows apps against the real local task server.

Example::

    from render_sdk.testing import LocalServer

    def test_square(tmp_path):
        with LocalServer(app="tasks:app", cwd=tmp_path) as server:
            client_env = server.client_env()   # RENDER_USE_LOCAL_DEV, RENDER_LOCAL_DEV_URL
            ...                                # talk to server.url

The server runs as a subprocess (``python -m render_sdk.devserver --port 0 ...``), so
tests exercise exactly what ``render-workflows dev`` does: real task processes, real
sockets, a real SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from .._errors import RenderError
from .._exports import publish

__all__ = ["AppRegistrationError", "LocalServer", "LocalServerError"]

_LISTENING: Final = re.compile(r"^Listening on (http://\S+)$")
# The server's console lines for a failed registration (render_sdk.devserver._constants;
# not imported from there so that importing this module does not load the server).
_REGISTRATION_FAILED: Final = "Task registration failed: "
_REGISTRATION_OUTPUT: Final = "  | "
#: How long :meth:`LocalServer.start` waits for the server to register and listen.
DEFAULT_STARTUP_TIMEOUT: Final = 60.0
#: How long :meth:`LocalServer.stop` waits for a graceful exit before killing.
DEFAULT_STOP_TIMEOUT: Final = 10.0


class LocalServerError(RenderError):
    """The local server did not start, or an expected line never appeared.

    The message ends with the server's last lines of output.
    """


class AppRegistrationError(LocalServerError):
    """The app did not register its tasks when the server started.

    The message is the server's report: why registration failed, then the app's own
    output (its traceback: exception type, message, file and line).

    Attributes:
        details: That report alone, without the rest of the server's output.
    """

    def __init__(self, details: str) -> None:
        super().__init__(f"the app did not register its tasks: {details}")
        self.details = details

    def __reduce__(self) -> tuple[type[AppRegistrationError], tuple[str]]:
        # Rebuild from ``details``: the default would pass the prefixed message back in.
        return (type(self), (self.details,))


class LocalServer:
    """A ``render-workflows dev`` server in a subprocess, for tests.

    Use it as a context manager (``with`` or ``async with``), or call :meth:`start` and
    :meth:`stop`. Starting blocks until the server has registered the app's tasks and
    listens; :attr:`url` is then ``http://127.0.0.1:PORT``.

    Args:
        app: ``module:app`` of the Workflows app (shorthand for
            ``command=["render-workflows", app]``, run with this interpreter).
        command: Any other command that runs the app (``["node", "main.js"]``).
        cwd: The directory the server and its task processes run in (the app's
            directory). Defaults to the current directory.
        state_dir: The server's state directory (SQLite database, objects). Relative
            paths are relative to ``cwd``. Defaults to ``.render``.
        env: Extra environment variables for the server and its task processes.
        env_files: Env files to load (``--env-file``), relative to ``cwd``.
        port: The port; 0 (default) picks a free one. :meth:`restart` keeps the port.
        host: The address to bind (loopback by default).
        api_key: Require this bearer token on the API.
        warm: Fork attempts from a warm interpreter (default) or spawn each one.
        reuse_workers: Run many attempts in turn in each warm worker
            (``--reuse-workers``): faster, but module state persists between runs.
        max_attempts_per_worker: With ``reuse_workers``, replace a worker after this many
            attempts (``--max-attempts-per-worker``); ``None``: the server's default.
        max_concurrency: Run at most this many attempts at once (``--max-concurrency``);
            ``None`` (default) lets the server derive it from its fd limit and CPUs.
        extra_args: More ``render-workflows dev`` flags (``["--debug"]``).
        startup_timeout: Seconds to wait for "Listening on ...".
        allow_broken_app: Keep the server running when the app fails to register at
            start (to test how the server answers then) instead of raising
            :class:`AppRegistrationError`.

    Attributes:
        url: The server's base URL, without ``/v1`` (set once started).
        output: Every line the server printed so far (status lines included).
    """

    def __init__(
        self,
        app: str | None = None,
        *,
        command: Sequence[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        env_files: Sequence[str] = (),
        port: int = 0,
        host: str = "127.0.0.1",
        api_key: str | None = None,
        warm: bool = True,
        reuse_workers: bool = False,
        max_attempts_per_worker: int | None = None,
        max_concurrency: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        allow_broken_app: bool = False,
    ) -> None:
        if (app is None) == (command is None):
            raise ValueError("give exactly one of app='module:app' or command=[...]")
        self.app = app
        self.command = list(command) if command is not None else None
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.env = dict(env or {})
        self.env_files = list(env_files)
        self.port = port
        self.host = host
        self.api_key = api_key
        self.warm = warm
        if reuse_workers and not warm:
            raise ValueError("reuse_workers needs warm=True")
        if max_attempts_per_worker is not None and max_attempts_per_worker < 1:
            raise ValueError(
                f"max_attempts_per_worker must be at least 1, got {max_attempts_per_worker}"
            )
        self.reuse_workers = reuse_workers
        self.max_attempts_per_worker = max_attempts_per_worker
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.allow_broken_app = allow_broken_app
        self.url = ""
        self.output: list[str] = []
        self._launched_at = 0
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()

    # ------------------------------------------------------------------ properties

    @property
    def api_url(self) -> str:
        """The REST API base: ``<url>/v1``."""
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        """The server process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def client_env(self) -> dict[str, str]:
        """Environment variables that point Render clients (ours and the official) here."""
        env = {"RENDER_USE_LOCAL_DEV": "true", "RENDER_LOCAL_DEV_URL": self.url}
        if self.api_key:
            env["RENDER_API_KEY"] = self.api_key
        return env

    # ------------------------------------------------------------------ lifecycle

    def argv(self) -> list[str]:
        """The server's command line."""
        argv = [sys.executable, "-m", "render_sdk.devserver", "--port", str(self.port)]
        argv += ["--host", self.host]
        if self.state_dir is not None:
            argv += ["--state-dir", str(self.state_dir)]
        for name in self.env_files:
            argv += ["--env-file", name]
        if self.api_key:
            argv += ["--api-key", self.api_key]
        if not self.warm:
            argv.append("--no-warm")
        if self.reuse_workers:
            argv.append("--reuse-workers")
        if self.max_attempts_per_worker is not None:
            argv += ["--max-attempts-per-worker", str(self.max_attempts_per_worker)]
        if self.max_concurrency is not None:
            argv += ["--max-concurrency", str(self.max_concurrency)]
        argv += self.extra_args
        if self.command is not None:
            return [*argv, "--", *self.command]
        assert self.app is not None
        bindir = Path(sys.executable).parent
        runner = bindir / "render-workflows"
        child = (
            [str(runner), self.app]
            if runner.exists()
            else [
                sys.executable,
                "-m",
                "render_sdk.workflows",
                self.app,
            ]
        )
        return [*argv, "--", *child]

    def _launch(self) -> None:
        if self.running:
            raise LocalServerError("the server is already running")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.url = ""
        self._launched_at = len(self.output)  # where this start's lines begin
        self._proc = subprocess.Popen(
            self.argv(),
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._read, args=(self._proc,), name="LocalServer-output", daemon=True
        )
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            with self._cond:
                self.output.append(line)
                m = _LISTENING.match(line)
                if m and not self.url:
                    self.url = m.group(1)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _startup_failed(self, why: str) -> LocalServerError:
        report = self._registration_report()
        if report is not None:
            return AppRegistrationError(report)
        tail = "\n".join(self.output[-40:])
        return LocalServerError(f"local server {why}; its output:\n{tail}")

    def _registration_report(self) -> str | None:
        """The start's registration failure as the server printed it, if it failed."""
        lines = self.output[self._launched_at :]
        for i, line in enumerate(lines):
            if _LISTENING.match(line):
                return None
            if line.startswith(_REGISTRATION_FAILED):
                report = [line[len(_REGISTRATION_FAILED) :]]
                for more in lines[i + 1 :]:
                    if not more.startswith(_REGISTRATION_OUTPUT):
                        break
                    report.append(more[len(_REGISTRATION_OUTPUT) :])
                return "\n".join(report)
        return None

    def _after_ready(self) -> None:
        report = None if self.allow_broken_app else self._registration_report()
        if report is not None:
            # With hot reload the server waits for a fix, but a test cannot make one.
            self._terminate(kill=True)
            raise AppRegistrationError(report)
        port = self.url.rsplit(":", 1)[-1]
        if port.isdigit():
            self.port = int(port)

    def start(self) -> LocalServer:
        """Start the server and wait until it listens.

        Raises:
            AppRegistrationError: The app did not register its tasks (the message has its
                error); not raised with ``allow_broken_app=True``.
            LocalServerError: It exited or did not listen within ``startup_timeout``.
        """
        self._launch()
        deadline = time.monotonic() + self.startup_timeout
        with self._cond:
            while not self.url:
                if self._proc is not None and self._proc.poll() is not None:
                    self._cond.wait(0.2)  # let the reader collect the last lines
                    code = self._proc.returncode
                    self._cond.release()
                    try:
                        self._terminate(kill=True)
                    finally:
                        self._cond.acquire()
                    raise self._startup_failed(f"exited with status {code}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._cond.release()
                    try:
                        self._terminate(kill=True)
                    finally:
                        self._cond.acquire()
                    raise self._startup_failed(f"did not listen within {self.startup_timeout:g}s")
                self._cond.wait(min(remaining, 0.5))
        self._after_ready()
        return self

    async def astart(self) -> LocalServer:
        """:meth:`start` for async tests (waits without blocking the event loop)."""
        self._launch()
        deadline = time.monotonic() + self.startup_timeout
        while not self.url:
            if self._proc is not None and self._proc.poll() is not None:
                await asyncio.sleep(0.2)
                code = self._proc.returncode
                self._terminate(kill=True)
                raise self._startup_failed(f"exited with status {code}")
            if time.monotonic() > deadline:
                self._terminate(kill=True)
                raise self._startup_failed(f"did not listen within {self.startup_timeout:g}s")
            await asyncio.sleep(0.01)
        self._after_ready()
        return self

    def _terminate(self, *, kill: bool, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if kill:
                    proc.kill()
                else:
                    proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc = None
        return proc.returncode

    def stop(self, *, kill: bool = False, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """Stop the server; returns its exit status.

        Args:
            kill: SIGKILL the server process (a crash: no cleanup) instead of SIGTERM
                (a clean shutdown that kills the task processes).
            timeout: Seconds to wait for a graceful exit before killing.
        """
        return self._terminate(kill=kill, timeout=timeout)

    async def astop(self, *, kill: bool = False) -> int | None:
        """:meth:`stop` for async tests (the wait for the process runs in a thread)."""
        return await asyncio.to_thread(self._terminate, kill=kill)

    def restart(self, *, kill: bool = False) -> LocalServer:
        """Stop (SIGKILL with ``kill=True``) and start again on the same port and state."""
        self.stop(kill=kill)
        return self.start()

    def wait_for_output(self, pattern: str, *, timeout: float = 30.0) -> str:
        """Wait for a printed line matching the regex ``pattern`` and return it.

        Raises:
            LocalServerError: No such line within ``timeout`` seconds.
        """
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.output[seen:]:
                    if rx.search(line):
                        return line
                seen = len(self.output)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LocalServerError(
                        f"no output line matched {pattern!r} within {timeout:g}s; output:\n"
                        + "\n".join(self.output[-40:])
                    )
                self._cond.wait(min(remaining, 0.5))

    # ------------------------------------------------------------------ context managers

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalServer:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()


publish(globals())
