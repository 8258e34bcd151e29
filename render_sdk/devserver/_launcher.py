"""How the local task server starts task processes: spawned, or forked from a warm zygote.

The orchestrator asks a :class:`Launcher` for one process per registration or attempt and
gets a :class:`LaunchedProcess` back. Two implementations share one contract:

- :class:`SpawnLauncher` runs the user's command as a new process in its own session (so
  the whole process group, grandchildren under ``sh -c`` included, can be killed at once).
- :class:`WarmLauncher` is used when the command is a Python app (``render-workflows
  module:app``): a zygote process (:mod:`render_sdk.devserver._zygote`) imports the app
  once and forks a child per attempt, which skips the interpreter start and the imports.
  Whenever the zygote is unavailable (import error, crash, foreign interpreter) it falls
  back to spawning, so a start never fails because of the warm path. (An attempt whose
  zygote dies under it is killed and reported as killed, -9: nobody could reap it.)

In both, the child's stdout and stderr are pipes owned by the launcher, and every chunk
read from them is handed to ``on_output(stream_name, chunk)`` on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from render_sdk._errors import RenderError

from ._constants import MAX_ATTEMPTS_PER_WORKER

__all__ = [
    "LaunchError",
    "LaunchedProcess",
    "Launcher",
    "SpawnLauncher",
    "WarmLauncher",
    "make_launcher",
    "warm_target",
]

logger = logging.getLogger(__name__)

#: Bytes read from a child's pipe per ``os.read``.
READ_CHUNK = 64 * 1024
#: After a process exits, how long ``wait()`` waits for its pipes to reach EOF. Grandchildren
#: that outlive it may hold them open; what they write until the start is released (see
#: ``RELEASE_DRAIN_SECONDS``) is still delivered.
OUTPUT_DRAIN_SECONDS = 0.5
#: When a start is released, how long its pipes may still drain before they are closed: a
#: leftover that escaped the kill (a session of its own) must not hold them, nor write
#: into the finished run's logs, for the server's lifetime.
RELEASE_DRAIN_SECONDS = 0.1
#: How long the zygote may take to import the app before the launcher gives up on it.
ZYGOTE_READY_TIMEOUT = 60.0
#: Zygotes that may die unexpectedly before the launcher stops restarting them.
ZYGOTE_MAX_RESTARTS = 3
#: How long the launcher waits for the zygote to acknowledge a fork.
ZYGOTE_FORK_TIMEOUT = 30.0
#: How long ``aclose()`` waits for killed processes to be reaped.
CLOSE_TIMEOUT = 5.0
#: Import-time output of the zygote kept for the error message when the import fails.
ZYGOTE_OUTPUT_LIMIT = 64 * 1024
#: Environment variables the launcher sets for every child; they win over ``env``.
MODE_ENV = "RENDER_SDK_MODE"
SOCKET_ENV = "RENDER_SDK_SOCKET_PATH"

Mode = Literal["register", "run"]
OutputCallback = Callable[[str, bytes], None]

_APP_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)*)?$")

#: The module the warm path runs with ``python -m``; only this SDK has it.
_ZYGOTE_MODULE = "render_sdk.devserver._zygote"


class LaunchError(RenderError):
    """A task process could not be started (bad executable, no permission, ...)."""


class LaunchedProcess(Protocol):
    """A started task process (the leader of its own process group)."""

    pid: int
    #: A reusable worker: :meth:`wait` returns when its start ended, and the process may
    #: run the next start after :meth:`release` (``--reuse-workers``).
    reusable: bool

    async def wait(self) -> int:
        """Wait for the process to exit; ``>= 0`` is its exit code, ``< 0`` a signal (-N).

        For a reusable worker: wait for its start to end (the code it would have exited
        with) or for the worker to exit.
        """
        ...

    def kill(self) -> None:
        """SIGKILL the whole process group. Idempotent; never raises."""
        ...

    async def release(self) -> None:
        """The start is over and its task socket closed: a reusable worker whose start
        ended cleanly may serve the next one; any other process is killed."""
        ...


class Launcher(Protocol):
    """Starts the user's command once per registration or attempt."""

    warm: bool

    async def start(
        self, *, mode: Mode, socket_path: str, on_output: OutputCallback
    ) -> LaunchedProcess:
        """Start one process with ``RENDER_SDK_MODE=mode`` and ``RENDER_SDK_SOCKET_PATH``."""
        ...

    async def reload(self) -> None:
        """Re-import the app after a source change (no-op when spawning)."""
        ...

    async def aclose(self) -> None:
        """Kill every process still running and release all resources."""
        ...


def make_launcher(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    warm: bool = True,
    reuse_workers: bool = False,
    max_attempts_per_worker: int = MAX_ATTEMPTS_PER_WORKER,
) -> Launcher:
    """Choose how to start the user's command.

    Args:
        command: The child command, run without a shell. A single element containing
            whitespace is split with :func:`shlex.split` (``-- "python main.py"``). A bare
            ``render-workflows`` that is not on the ``PATH`` of ``env`` runs as
            ``python -m render_sdk.workflows`` with this interpreter.
        cwd: The working directory of every child.
        env: The full child environment (parent env + env files). ``RENDER_SDK_MODE`` and
            ``RENDER_SDK_SOCKET_PATH`` are added per start and always win.
        warm: Fork attempts from a warm zygote when the command is a Python app
            (``render-workflows module:app`` or ``python -m render_sdk.workflows
            module:app``). Other commands are always spawned.
        reuse_workers: Run many attempts in turn in each forked worker (warm only;
            registrations always get a fresh fork).
        max_attempts_per_worker: How many attempts a reusable worker runs before it is
            replaced.

    Returns:
        A :class:`WarmLauncher` or a :class:`SpawnLauncher`.
    """
    argv = _normalize(command)
    if argv[0] == "render-workflows" and _which(argv[0], env=env, cwd=cwd) is None:
        # The server itself runs as render-workflows, just not from $PATH (a virtualenv
        # that is not activated): run the same program through this interpreter.
        argv = [sys.executable, "-m", "render_sdk.workflows", *argv[1:]]
    spawn = SpawnLauncher(argv, cwd=cwd, env=env)
    if warm:
        target = warm_target(argv, env=env, cwd=cwd)
        if target is not None:
            python, app_spec = target
            return WarmLauncher(
                python,
                app_spec,
                cwd=cwd,
                env=env,
                fallback=spawn,
                reuse_workers=reuse_workers,
                max_attempts_per_worker=max_attempts_per_worker,
            )
    return spawn


def warm_target(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path
) -> tuple[str, str] | None:
    """The ``(python, "module:app")`` a zygote would use for ``command``, or ``None``."""
    argv = _normalize(command)
    if len(argv) == 2 and Path(argv[0]).name == "render-workflows" and _APP_SPEC.match(argv[1]):
        return _script_python(argv[0], env=env, cwd=cwd), argv[1]
    if (
        len(argv) == 4
        and _PYTHON_NAME.match(Path(argv[0]).name)
        and argv[1:3] == ["-m", "render_sdk.workflows"]
        and _APP_SPEC.match(argv[3])
    ):
        python = _which(argv[0], env=env, cwd=cwd)
        return (python or argv[0]), argv[3]
    return None


def _normalize(command: Sequence[str]) -> list[str]:
    argv = list(command)
    if not argv:
        raise ValueError("command is required")
    if len(argv) == 1 and any(ch.isspace() for ch in argv[0]):
        argv = shlex.split(argv[0])
        if not argv:
            raise ValueError("command is required")
    return argv


def _which(program: str, *, env: Mapping[str, str], cwd: Path) -> str | None:
    if os.sep in program:
        path = Path(program) if os.path.isabs(program) else cwd / program
        return str(path) if path.exists() else None
    return shutil.which(program, path=env.get("PATH", os.defpath))


def _script_python(script: str, *, env: Mapping[str, str], cwd: Path) -> str:
    """The interpreter in a console script's shebang; ours when it cannot be read."""
    path = _which(script, env=env, cwd=cwd)
    if path is None:
        return sys.executable
    try:
        with open(path, "rb") as fh:
            first = fh.readline(1024)
    except OSError:
        return sys.executable
    if not first.startswith(b"#!"):
        return sys.executable
    parts = first[2:].decode(errors="replace").split()
    if not parts:
        return sys.executable
    if Path(parts[0]).name == "env" and len(parts) > 1:
        return _which(parts[1], env=env, cwd=cwd) or sys.executable
    return parts[0]


# ---------------------------------------------------------------------------------------
# Pipes


class _Pump:
    """Reads one pipe on the event loop and hands every chunk to ``on_output``."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, fd: int, stream: str, on_output: OutputCallback
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._stream = stream
        self._on_output = on_output
        self.done: asyncio.Future[None] = loop.create_future()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        try:
            self._on_output(self._stream, data)
        except Exception:
            # A faulty consumer must not stop the pipe from draining (the child would block).
            logger.exception("on_output(%r) raised", self._stream)

    def close(self) -> None:
        if self.done.done():
            return
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self.done.set_result(None)


def _open_pipes(
    loop: asyncio.AbstractEventLoop, on_output: OutputCallback
) -> tuple[list[_Pump], list[int]]:
    """Two pipes (stdout, stderr): pumps on the read ends, and the write ends for the child.

    Raises:
        LaunchError: No pipe could be made (typically: out of file descriptors).
    """
    try:
        out_r, out_w = os.pipe()
    except OSError as exc:
        raise LaunchError(f"cannot create the output pipes: {exc}") from exc
    try:
        err_r, err_w = os.pipe()
    except OSError as exc:
        for fd in (out_r, out_w):
            os.close(fd)
        raise LaunchError(f"cannot create the output pipes: {exc}") from exc
    pumps = [_Pump(loop, out_r, "stdout", on_output), _Pump(loop, err_r, "stderr", on_output)]
    return pumps, [out_w, err_w]


async def _drain(pumps: Sequence[_Pump], timeout: float) -> None:
    pending = [p.done for p in pumps if not p.done.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


async def _close_after_drain(pumps: Sequence[_Pump]) -> None:
    await _drain(pumps, RELEASE_DRAIN_SECONDS)
    for pump in pumps:
        pump.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------
# Spawning


class _SpawnedProcess:
    reusable = False

    def __init__(self, process: asyncio.subprocess.Process, pumps: list[_Pump]) -> None:
        self.pid = process.pid
        self._process = process
        self._pumps = pumps
        self._status: int | None = None

    @property
    def returncode(self) -> int | None:
        return self._status

    async def wait(self) -> int:
        if self._status is None:
            status = await self._process.wait()
            await _drain(self._pumps, OUTPUT_DRAIN_SECONDS)
            self._status = status
        return self._status

    def kill(self) -> None:
        # The child leads its own session, so its pid is the process group id; the group
        # outlives the leader while grandchildren live, and Linux does not reuse the id then.
        _killpg(self.pid)

    async def release(self) -> None:
        self.kill()
        await _close_after_drain(self._pumps)

    def close_pipes(self) -> None:
        for pump in self._pumps:
            pump.close()


class SpawnLauncher:
    """Starts the command as a new process, in its own session, per start.

    Attributes:
        warm: Always ``False``.
        command: The argv that is run.
    """

    warm: bool = False

    def __init__(self, command: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.command = _normalize(command)
        self._cwd = cwd
        self._env = dict(env)
        self._live: set[_SpawnedProcess] = set()
        self._closed = False

    async def start(
        self, *, mode: Mode, socket_path: str, on_output: OutputCallback
    ) -> LaunchedProcess:
        """Spawn the command with ``RENDER_SDK_MODE`` and ``RENDER_SDK_SOCKET_PATH`` set.

        Raises:
            LaunchError: The command could not be started (missing, not executable, ...).
        """
        if self._closed:
            raise LaunchError("the launcher is closed")
        loop = asyncio.get_running_loop()
        env = {**self._env, MODE_ENV: mode, SOCKET_ENV: socket_path}
        pumps, write_ends = _open_pipes(loop, on_output)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=self._cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_ends[0],
                stderr=write_ends[1],
                start_new_session=True,
            )
        except BaseException as exc:
            for pump in pumps:
                pump.close()
            if isinstance(exc, OSError):
                message = f"failed to start {shlex.join(self.command)}: {exc}"
                raise LaunchError(message) from exc
            raise
        finally:
            for fd in write_ends:
                os.close(fd)
        proc = _SpawnedProcess(process, pumps)
        self._live.add(proc)
        watcher = loop.create_task(proc.wait())
        watcher.add_done_callback(lambda _: self._live.discard(proc))
        return proc

    async def reload(self) -> None:
        """Nothing to do: every spawn imports the app afresh."""

    async def aclose(self) -> None:
        """Kill every process this launcher started and wait for them to be reaped."""
        self._closed = True
        live = list(self._live)
        for proc in live:
            proc.kill()
        if live:
            await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in live], timeout=CLOSE_TIMEOUT
            )
        for proc in live:
            proc.close_pipes()
        self._live.clear()


# ---------------------------------------------------------------------------------------
# Warm fork


class _ForkedProcess:
    def __init__(
        self,
        pid: int,
        exited: asyncio.Future[int],
        pumps: list[_Pump],
        *,
        zygote: _Zygote | None = None,
    ) -> None:
        self.pid = pid
        self._exited = exited
        self._pumps = pumps
        self._status: int | None = None
        #: The zygote to give a reusable worker back to (``None``: one start per process).
        self._zygote = zygote
        self.reusable = zygote is not None
        #: Set by the zygote's exit report: the worker ended its start and lives on.
        self.worker_waiting = False
        self._killed = False
        self._released = False

    @property
    def returncode(self) -> int | None:
        return self._status

    async def wait(self) -> int:
        if self._status is None:
            status = await asyncio.shield(self._exited)
            await _drain(self._pumps, OUTPUT_DRAIN_SECONDS)
            self._status = status
        return self._status

    def kill(self) -> None:
        if self._released:
            return  # the worker went back to the zygote and may serve another attempt
        self._killed = True
        _killpg(self.pid)
        if not self._exited.done():
            # The child may not have reached setsid() yet, so it may not lead a group yet;
            # it is unreaped (the zygote reports the exit), so its pid cannot be reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)

    async def release(self) -> None:
        if self._released:
            return
        zygote = self._zygote
        if zygote is None or self._killed or not self.worker_waiting or not zygote.alive:
            self.kill()
        else:
            self._released = True
            await zygote.release(self.pid)
        await _close_after_drain(self._pumps)

    def close_pipes(self) -> None:
        for pump in self._pumps:
            pump.close()


class _ZygoteUnavailable(Exception):
    """The zygote cannot fork this start; the caller spawns instead.

    ``broken`` means the zygote itself is gone or unresponsive (it is replaced); otherwise
    only this fork failed (e.g. EAGAIN) and the zygote keeps serving.
    """

    def __init__(self, message: str, *, broken: bool = True) -> None:
        super().__init__(message)
        self.broken = broken


class _Zygote:
    """One zygote process and its control channel (newline-delimited JSON + SCM_RIGHTS)."""

    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket) -> None:
        self.process = process
        self._control = control
        self._loop = asyncio.get_running_loop()
        self._buffer = b""
        self._next_id = 0
        self._started: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self.children: dict[int, _ForkedProcess] = {}
        self.ready: asyncio.Future[int] = self._loop.create_future()
        self.gone: asyncio.Future[None] = self._loop.create_future()
        self.output = bytearray()
        self.error: str | None = None
        self._send_lock = asyncio.Lock()
        self._writable: asyncio.Future[None] | None = None
        control.setblocking(False)
        self._loop.add_reader(control.fileno(), self._on_readable)

    @property
    def alive(self) -> bool:
        return not self.gone.done()

    def collect_output(self, stream: str, chunk: bytes) -> None:
        if len(self.output) < ZYGOTE_OUTPUT_LIMIT:
            self.output += chunk[: ZYGOTE_OUTPUT_LIMIT - len(self.output)]

    def _on_readable(self) -> None:
        try:
            data = self._control.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line:
                self._dispatch(json.loads(line))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        event = msg.get("ev")
        if event == "ready":
            if not self.ready.done():
                self.ready.set_result(int(msg["pid"]))
        elif event == "error":
            self.error = str(msg.get("message", "import failed"))
        elif event == "started":
            started = self._started.pop(int(msg["id"]), None)
            if started is not None and not started.done():
                started.set_result(int(msg["pid"]))
            else:
                # Its start gave up waiting (and spawned instead): no duplicate attempt.
                _killpg(int(msg["pid"]))
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(msg["pid"]), signal.SIGKILL)
        elif event == "fork_failed":
            started = self._started.pop(int(msg["id"]), None)
            if started is not None and not started.done():
                reason = f"fork failed: {msg.get('message')}"
                started.set_exception(_ZygoteUnavailable(reason, broken=False))
        elif event == "exit":
            child = self.children.get(int(msg["id"]))
            if child is not None and msg.get("reusable"):
                child.worker_waiting = True
            exited = self._exits.pop(int(msg["id"]), None)
            if exited is not None and not exited.done():
                exited.set_result(int(msg["status"]))

    def _lost(self) -> None:
        """The control channel closed: the zygote exited (drained, crashed or killed)."""
        if self.gone.done():
            return
        self._loop.remove_reader(self._control.fileno())
        self._loop.remove_writer(self._control.fileno())
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("the warm process exited"))
        self._control.close()
        for started in self._started.values():
            if not started.done():
                started.set_exception(_ZygoteUnavailable("the warm process exited"))
        self._started.clear()
        # Nobody can report these children's exits any more: kill them so that no
        # attempt is left running unobserved, and report them as killed.
        for child in list(self.children.values()):
            child.kill()
        for exited in self._exits.values():
            if not exited.done():
                exited.set_result(-signal.SIGKILL)
        self._exits.clear()
        if not self.ready.done():
            self.ready.set_exception(_ZygoteUnavailable(self.error or "the warm process exited"))
        self.gone.set_result(None)

    async def _send(self, data: bytes, fds: Sequence[int] = ()) -> None:
        # One sender at a time: a message must not interleave with another, and the loop
        # keeps a single writability callback per fd.
        async with self._send_lock:
            await self._send_locked(data, fds)

    async def _send_locked(self, data: bytes, fds: Sequence[int]) -> None:
        view = memoryview(data)
        while view:
            try:
                if fds:
                    sent = socket.send_fds(self._control, [view], list(fds))
                    fds = ()
                else:
                    sent = self._control.send(view)
            except (BlockingIOError, InterruptedError):
                writable: asyncio.Future[None] = self._loop.create_future()
                fd = self._control.fileno()
                self._writable = writable
                self._loop.add_writer(fd, _resolve, writable)
                try:
                    await writable
                finally:
                    self._writable = None
                    if self._control.fileno() == fd:
                        self._loop.remove_writer(fd)
                continue
            view = view[sent:]

    async def fork(
        self, *, mode: Mode, socket_path: str, on_output: OutputCallback, reuse: int = 0
    ) -> _ForkedProcess:
        if not self.alive:
            raise _ZygoteUnavailable(self.error or "the warm process exited")
        self._next_id += 1
        run_id = self._next_id
        pumps, write_ends = _open_pipes(self._loop, on_output)
        started: asyncio.Future[int] = self._loop.create_future()
        exited: asyncio.Future[int] = self._loop.create_future()
        self._started[run_id] = started
        self._exits[run_id] = exited
        message = {
            "op": "start",
            "id": run_id,
            "mode": mode,
            "socket_path": socket_path,
            "reuse": reuse,
        }
        try:
            try:
                await self._send(json.dumps(message).encode() + b"\n", write_ends)
            except OSError as exc:
                raise _ZygoteUnavailable(f"cannot reach the warm process: {exc}") from exc
            finally:
                for fd in write_ends:
                    os.close(fd)
            try:
                pid = await asyncio.wait_for(asyncio.shield(started), ZYGOTE_FORK_TIMEOUT)
            except asyncio.TimeoutError as exc:
                raise _ZygoteUnavailable("the warm process did not answer") from exc
        except BaseException:
            self._started.pop(run_id, None)
            self._exits.pop(run_id, None)
            for pump in pumps:
                pump.close()
            raise
        child = _ForkedProcess(pid, exited, pumps, zygote=self if reuse > 0 else None)
        self.children[run_id] = child
        exited.add_done_callback(lambda _: self.children.pop(run_id, None))
        return child

    async def release(self, pid: int) -> None:
        """Let worker ``pid`` (between starts) take the next start, or retire it."""
        if self.alive:
            with contextlib.suppress(OSError):
                await self._send(json.dumps({"op": "release", "pid": pid}).encode() + b"\n")

    async def drain(self) -> None:
        """Ask the zygote to exit once its running children have exited."""
        if self.alive:
            with contextlib.suppress(OSError):
                await self._send(b'{"op": "drain"}\n')

    def kill(self) -> None:
        for child in list(self.children.values()):
            child.kill()
        _killpg(self.process.pid)

    async def aclose(self) -> None:
        self.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.process.wait(), CLOSE_TIMEOUT)
        self._lost()


class WarmLauncher:
    """Forks each process from a zygote that imported the app once; spawns as a fallback.

    The app's module runs once per zygote, not once per attempt: import-time output is
    not repeated in each run's log (it is kept for the error message when the import
    fails), and import-time code does not see
    ``RENDER_SDK_MODE``/``RENDER_SDK_SOCKET_PATH`` (only ``start()`` does, as with Render).
    :meth:`reload` starts a new zygote on the current source; runs forked from the old
    one finish there.

    When a reload's import fails while a zygote of the last good source is alive, that
    zygote keeps serving runs (the last good version) and registrations are spawned on
    the current source, so that they report its error; the next reload that imports
    replaces it.

    With ``reuse_workers`` each forked worker runs up to ``max_attempts_per_worker``
    attempts in turn (the zygote keeps the idle ones); the orchestrator kills a worker
    whose attempt timed out, was canceled or did not end, and a reload retires the old
    zygote's workers, so attempts of a new app version never run in an old worker.

    Attributes:
        warm: ``True`` while a zygote with the imported app is serving starts (or has not
            been tried yet); ``False`` after the import failed, until :meth:`reload`.
        warm_error: Why the warm path is off (the zygote's import error), else ``None``.
        reload_error: Why the last reload's import failed while the last good zygote
            keeps serving runs, else ``None``.
    """

    def __init__(
        self,
        python: str,
        app_spec: str,
        *,
        cwd: Path,
        env: Mapping[str, str],
        fallback: SpawnLauncher,
        reuse_workers: bool = False,
        max_attempts_per_worker: int = MAX_ATTEMPTS_PER_WORKER,
    ) -> None:
        if max_attempts_per_worker < 1:
            raise ValueError(
                f"max_attempts_per_worker must be at least 1, got {max_attempts_per_worker}"
            )
        self.python = python
        self.app_spec = app_spec
        #: Attempts each forked worker may run (0: one process per attempt).
        self.reuse = max_attempts_per_worker if reuse_workers else 0
        self._cwd = cwd
        self._env = {k: v for k, v in env.items() if k not in (MODE_ENV, SOCKET_ENV)}
        self._fallback = fallback
        self._zygote: _Zygote | None = None
        self._draining: set[_Zygote] = set()
        self._starting: asyncio.Task[_Zygote | None] | None = None
        self._disabled = False
        self._crashes = 0
        self._closed = False
        self.warm = True
        self.warm_error: str | None = None
        self.reload_error: str | None = None

    @property
    def serving_last_good(self) -> bool:
        """True while runs fork from the last good import after a failed reload."""
        return self.reload_error is not None

    async def start(
        self, *, mode: Mode, socket_path: str, on_output: OutputCallback
    ) -> LaunchedProcess:
        """Fork the app from the zygote, or spawn the command when that is not possible.

        Raises:
            LaunchError: Spawning (the fallback) failed too.
        """
        if self._closed:
            raise LaunchError("the launcher is closed")
        if mode == "register" and self.reload_error is not None:
            # The last good zygote would register the last good tasks: the current
            # source must say what is wrong with it.
            return await self._fallback.start(
                mode=mode, socket_path=socket_path, on_output=on_output
            )
        # A zygote that died under this start is replaced once (and the start retried on
        # the new one) before falling back to spawning.
        for _ in range(2):
            zygote = await self._current()
            if zygote is None:
                break
            try:
                # Registrations always get a fresh process: they may differ from the runs.
                reuse = self.reuse if mode == "run" else 0
                return await zygote.fork(
                    mode=mode, socket_path=socket_path, on_output=on_output, reuse=reuse
                )
            except _ZygoteUnavailable as exc:
                logger.warning("warm start failed: %s", exc)
                if not exc.broken:
                    break
                self._crashed(zygote)
        return await self._fallback.start(mode=mode, socket_path=socket_path, on_output=on_output)

    async def _current(self) -> _Zygote | None:
        if self._disabled:
            return None
        zygote = self._zygote
        if zygote is not None and zygote.alive:
            return zygote
        if zygote is not None:
            self._crashed(zygote)
            if self._disabled:
                return None
        # Start a zygote once for all concurrent callers; a crashed one is replaced.
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._spawn_zygote())
        starting = self._starting
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            if self._closed and starting.cancelled():
                raise LaunchError("the launcher is closed") from None
            raise

    async def _spawn_zygote(self) -> _Zygote | None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                _ZYGOTE_MODULE,
                self.app_spec,
                f"fd:{child_end.fileno()}",
                cwd=self._cwd,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(child_end.fileno(),),
                start_new_session=True,
            )
        except OSError as exc:
            parent_end.close()
            self._disable(f"cannot start {self.python}: {exc}")
            return None
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        zygote = _Zygote(process, parent_end)
        assert process.stdout is not None
        reader = asyncio.ensure_future(_collect(process.stdout, zygote.collect_output))
        try:
            await asyncio.wait_for(asyncio.shield(zygote.ready), ZYGOTE_READY_TIMEOUT)
        except (_ZygoteUnavailable, asyncio.TimeoutError) as exc:
            await zygote.aclose()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader, OUTPUT_DRAIN_SECONDS)
            reason = zygote.error or zygote.output.decode(errors="replace").strip()
            if not zygote.error and _ZYGOTE_MODULE in reason:
                # Another SDK's interpreter (e.g. the official 0.4.0 runner) has no zygote:
                # say that plainly instead of echoing python's -m lookup error.
                reason = (
                    f"{self.python} does not have this SDK's task runner ({_ZYGOTE_MODULE}), "
                    "which warm start needs"
                )
            if isinstance(exc, asyncio.TimeoutError):
                reason = f"importing {self.app_spec} took over {ZYGOTE_READY_TIMEOUT:.0f} s"
            self._disable(reason or f"{self.app_spec} could not be imported")
            return None
        except BaseException:
            # Cancelled (the launcher is closing): no zygote may outlive this.
            with contextlib.suppress(BaseException):
                await zygote.aclose()
            reader.cancel()
            raise
        zygote.gone.add_done_callback(lambda _: reader.cancel())
        self._zygote = zygote
        return zygote

    def _crashed(self, zygote: _Zygote) -> None:
        """Drop a zygote that died or stopped answering; give up after repeated crashes."""
        if zygote is not self._zygote:
            return
        self._zygote = None
        zygote.kill()
        self._crashes += 1
        if self._crashes > ZYGOTE_MAX_RESTARTS:
            self._disable(f"the warm process exited unexpectedly {self._crashes} times")

    def _disable(self, reason: str) -> None:
        # The spawned command shows the user the same error in its own output.
        logger.info("warm start disabled: %s", reason)
        self._disabled = True
        self.warm = False
        self.warm_error = reason

    async def reload(self) -> None:
        """Replace the zygote with one that imports the app's current source.

        Runs forked from the old zygote keep running; it exits after the last of them.
        When the current source does not import, the old zygote (the last good version)
        stays and keeps serving runs; :attr:`reload_error` says why.
        """
        if self._closed:
            return
        old = self._zygote
        self._zygote = None
        self._disabled = False
        self._crashes = 0
        self.warm = True
        self.warm_error = None
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(Exception):
                await self._starting
            old = old or self._zygote
            self._zygote = None
        self._starting = asyncio.ensure_future(self._spawn_zygote())
        fresh = await asyncio.shield(self._starting)
        if fresh is None and old is not None and old.alive:
            # The new source does not import: the last good version keeps serving runs.
            self._zygote = old
            self._disabled = False
            self.warm = True
            self.reload_error = self.warm_error or f"{self.app_spec} could not be imported"
            self.warm_error = None
            return
        self.reload_error = None
        if old is not None and old.alive:
            self._draining.add(old)
            old.gone.add_done_callback(lambda _: self._draining.discard(old))
            await old.drain()

    async def aclose(self) -> None:
        """Kill every child, the zygotes and every spawned process."""
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._starting
        zygotes = [z for z in (self._zygote, *self._draining) if z is not None]
        self._zygote = None
        children = [c for z in zygotes for c in z.children.values()]
        for zygote in zygotes:
            await zygote.aclose()
        for child in children:
            child.close_pipes()
        self._draining.clear()
        await self._fallback.aclose()


async def _collect(stream: asyncio.StreamReader, sink: OutputCallback) -> None:
    while chunk := await stream.read(READ_CHUNK):
        sink("stdout", chunk)
