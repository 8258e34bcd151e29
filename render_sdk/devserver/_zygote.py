"""The warm process: imports the user's app once, then forks one child per attempt.

Usage: ``python -m render_sdk.devserver._zygote <module>:<app> fd:<N>``, where ``N`` is a
Unix stream socket inherited from the launcher (:mod:`render_sdk.devserver._launcher`).

Control protocol, one JSON object per line:

- launcher → zygote: ``{"op": "start", "id": n, "mode": ..., "socket_path": ..., "reuse":
  k}`` with the run's stdout and stderr pipe write ends attached (SCM_RIGHTS);
  ``{"op": "release", "pid": p}`` (a reusable worker may take the next start);
  ``{"op": "drain"}`` (exit once every child has exited).
- zygote → launcher: ``{"ev": "ready", "pid": p}`` after the import, or ``{"ev": "error",
  "message": ...}`` before exiting when it failed; ``{"ev": "started", "id": n, "pid": p}``;
  ``{"ev": "fork_failed", "id": n, "message": ...}``; ``{"ev": "exit", "id": n, "status":
  s}`` (``s < 0``: killed by signal ``-s``), with ``"reusable": true`` when a worker ended
  the start and stays alive for the next one.

Reusable workers (``reuse: k > 0``, ``render-workflows dev --reuse-workers``): instead of
one child per start, a child serves up to ``k`` starts in turn. After each start it reports
its exit code to the zygote over a socket pair of its own and waits; the launcher then
either releases it (it may take the next start of the same app version) or kills it
(timeout, cancel, a start that did not end cleanly). A worker that exits or is killed is
reaped as any child; a worker that raised ``SystemExit`` (or another ``BaseException``)
exits instead of reporting, so it is never reused. The zygote never hands a worker a new
start before the launcher released it, so a start's task socket is closed before the
worker can see the next one.

A child calls ``os.setsid()``, points fds 1 and 2 at the run's pipes, sets
``RENDER_SDK_MODE`` and ``RENDER_SDK_SOCKET_PATH``, calls ``app.start()`` and exits with 0
(1 and a traceback on stderr when it raised). The zygote runs no asyncio loop (a plain
selector loop), so the child starts from a clean slate and may call ``asyncio.run``.
It imports only the standard library and the user's app: never the server or its deps.
If the launcher goes away (the control socket closes), every child is killed.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
from typing import Any

#: Bytes read from the control socket at a time, and the most fds one read may carry.
_READ_CHUNK = 64 * 1024
_MAX_FDS = 64
#: Exit status of the zygote when the app cannot be imported.
IMPORT_FAILED = 3
#: Modules every child's ``start()`` imports, loaded once here instead of once per attempt.
PRELOAD = ("asyncio", "contextvars", "datetime", "json", "traceback", "uuid")
#: What our own runner imports lazily inside ``Workflows.start()`` (~100 ms per process).
PRELOAD_RENDER_SDK = (
    "render_sdk.workflows._runner",
    "render_sdk.workflows._traceback",
    "render_sdk.workflows._transport",
    "render_sdk._wire",
    "render_sdk._gen.render.tasksocket.v1",
    "render_sdk._gen.routes",
    "render_sdk.workflows._context",
)


def load_app(spec: str) -> Any:
    """Import ``module:attr.path`` with the working directory first on ``sys.path``."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"expected module:app, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    if not callable(getattr(obj, "start", None)):
        raise TypeError(f"{spec} is {type(obj).__name__}, which has no start() method")
    return obj


def preload(app: Any) -> None:
    """Import what ``app.start()`` will import, so that forked children share it."""
    names: tuple[str, ...] = PRELOAD
    if "render_sdk.workflows" in sys.modules:  # the app uses our runner
        names += PRELOAD_RENDER_SDK
    for name in names:
        # Only an optimisation: a module that does not import here imports in the child.
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    if "render_sdk._wire" in sys.modules:
        with contextlib.suppress(Exception):
            _warm_codec()


def _warm_codec() -> None:
    """Round-trip each task-socket message once, so that the codec's per-class caches
    (built lazily on first use) are inherited by every child instead of rebuilt in each.

    The messages are those the generated wire tables give the socket dialect, looked up
    in the message pool by full name: no module path is spelled here.
    """
    from render_sdk import _wire
    from render_sdk._gen import wire_tables
    from render_sdk._gen.message_pool import default_message_pool
    from render_sdk.models import tasksocket  # noqa: F401  # registers the socket messages

    for full_name, facts in wire_tables.MESSAGES.items():
        if facts.dialect != _wire.SOCKET.name:
            continue
        cls = default_message_pool.url_to_type.get(f"type.googleapis.com/{full_name}")
        if cls is not None:
            with contextlib.suppress(Exception):
                _wire.loads(cls, _wire.dumps(cls(), _wire.SOCKET), _wire.SOCKET)


class _Quit(Exception):
    """A worker's start ended in a way that must end the worker too."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _run_child(app: Any, spec: str, mode: str, socket_path: str, out_fd: int, err_fd: int) -> int:
    """Body of a forked child; returns its exit code."""
    os.setsid()
    try:
        return _run_start(app, spec, mode, socket_path, out_fd, err_fd)
    except _Quit as quit_:
        return quit_.code


def _run_start(app: Any, spec: str, mode: str, socket_path: str, out_fd: int, err_fd: int) -> int:
    """One start in this process: its output goes to the two pipes; returns its exit code.

    Raises:
        _Quit: ``SystemExit`` or another ``BaseException`` ended the start (the process
            must exit with ``code``, even a reusable worker).
    """
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    os.environ["RENDER_SDK_MODE"] = mode
    os.environ["RENDER_SDK_SOCKET_PATH"] = socket_path
    sys.argv = ["render-workflows", spec]
    try:
        app.start()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            raise _Quit(exc.code or 0) from None
        print(exc.code, file=sys.stderr)
        raise _Quit(1) from None
    except Exception as exc:
        _report(exc)
        return 1
    except BaseException as exc:
        _report(exc)
        raise _Quit(1) from None
    return 0


def _report(exc: BaseException) -> None:
    """The error that ended a start, on its stderr."""
    from ..workflows._runner import error_details, was_reported
    from ..workflows._traceback import user_traceback

    if was_reported(exc):
        # Its error, with the user's traceback, went to the task server, which shows
        # and logs it: one line here.
        print(f"Error: task failed: {error_details(exc)[0]}", file=sys.stderr)
    else:
        print(user_traceback(exc, header=True), file=sys.stderr)


def _detach_output() -> None:
    """Flush and point fds 1 and 2 at /dev/null, so a start's pipes reach EOF."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


#: ``prctl`` option that makes orphaned descendants the caller's children (Linux 3.4+).
_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    """Make orphaned descendants this process's children; False where that is unavailable.

    A reusable worker checks for leftover processes after every start. As a subreaper, a
    descendant whose parent exited (a daemonizing double fork) becomes its child, so
    ``waitpid`` sees every leftover and no scan of ``/proc`` is needed: the scan costs
    about a millisecond per start with a hundred processes on the machine.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _leftovers(*, scan_session: bool = True) -> bool:
    """Whether the start left a thread or a process behind (the worker is not reused then).

    A reused worker keeps its pid and session, which the task socket admits: a leftover
    could act on the next start's socket.

    Args:
        scan_session: Also look through ``/proc`` for members of this session that are no
            longer our children; not needed in a subreaper, whose orphaned descendants
            become its children.
    """
    if threading.active_count() > 1:
        return True
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            return True  # a child still runs
    if not scan_session:
        return False
    # Descendants no longer our children (orphaned grandchildren) stay in the session.
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False  # no /proc (macOS): threads and children are what can be seen
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                # "pid (comm) state ppid pgrp session ...": comm may hold parentheses.
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == me:
            return True
    return False


def _serve_worker(app: Any, spec: str, channel: socket.socket, first: dict[str, Any]) -> int:
    """Body of a reusable worker: run ``first``, then each start the zygote sends, in turn.

    Returns the exit code when the zygote closes the channel (retired, drained, or gone),
    or when a start ended in a way that must end the process.
    """
    os.setsid()
    subreaper = _become_subreaper()
    start = first
    buffer = b""
    fds: list[int] = []
    while True:
        try:
            code = _run_start(
                app, spec, str(start["mode"]), str(start["socket_path"]), *start["fds"]
            )
        except _Quit as quit_:
            return quit_.code
        _detach_output()
        if _leftovers(scan_session=not subreaper):
            # Exiting ends its threads, and the launcher then kills the process group:
            # nothing of this start can reach the next one (or hold this start's pipes).
            return code
        try:
            channel.sendall(json.dumps({"done": code}).encode() + b"\n")
        except OSError:
            return 0
        while b"\n" not in buffer:
            try:
                data, got, _, _ = socket.recv_fds(channel, _READ_CHUNK, _MAX_FDS)
            except InterruptedError:
                continue
            except OSError:
                data, got = b"", []
            fds.extend(got)
            if not data:
                return 0
            buffer += data
        line, _, buffer = buffer.partition(b"\n")
        start = json.loads(line)
        start["fds"] = (fds.pop(0), fds.pop(0))


class _Worker:
    """The zygote's view of one reusable worker."""

    def __init__(self, *, pid: int, channel: socket.socket, limit: int, start_id: int) -> None:
        self.pid = pid
        self.channel = channel
        #: The most starts it serves; 0 once retired.
        self.limit = limit
        #: The start it is running, or ``None`` between starts.
        self.start_id: int | None = start_id
        self.starts = 1
        #: Released by the launcher and waiting for a start.
        self.idle = False
        self.buffer = b""


class Zygote:
    """The selector loop: start requests in, fork, reap, report exits."""

    def __init__(self, app: Any, spec: str, control: socket.socket) -> None:
        self.app = app
        self.spec = spec
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.buffer = b""
        self.fds: list[int] = []
        self.children: dict[int, int] = {}  # pid -> start id
        self.workers: dict[int, _Worker] = {}  # pid -> reusable worker (also in children)
        self.draining = False
        self.closed = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with contextlib.suppress(OSError):
            self.control.sendall(data)

    def run(self) -> None:
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        # The handler only has to exist: the wakeup fd is what wakes the selector.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.control, selectors.EVENT_READ, "control")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.send({"ev": "ready", "pid": os.getpid()})
        while not (self.closed or (self.draining and not self.children)):
            for key, _ in self.selector.select():
                if key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 4096):
                            pass
                    self.reap()
                elif isinstance(key.data, _Worker):
                    self.read_worker(key.data)
                else:
                    self.read_control()
        self.shutdown()

    def read_control(self) -> None:
        try:
            data, fds, flags, _ = socket.recv_fds(self.control, _READ_CHUNK, _MAX_FDS)
        except InterruptedError:
            return
        except OSError:
            data, fds = b"", []
        self.fds.extend(fds)
        if flags & socket.MSG_CTRUNC:
            # Descriptors were dropped (fd limit reached): the FIFO of pipe ends would no
            # longer match the requests, so stop; the launcher spawns from here on.
            print("zygote: control message truncated; exiting", file=sys.stderr)
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line:
                self.handle(json.loads(line))

    def handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "drain":
            self.draining = True
            for idle in [w for w in self.workers.values() if w.idle]:
                self.retire(idle)
        elif op == "release":
            released = self.workers.get(int(message["pid"]))
            if released is not None and released.start_id is None:
                if self.draining or released.starts >= released.limit:
                    self.retire(released)
                else:
                    released.idle = True
        elif op == "start":
            # The two pipe ends of a start travel with it, in order.
            out_fd, err_fd = self.fds.pop(0), self.fds.pop(0)
            try:
                if int(message.get("reuse", 0)) > 0 and self.hand_to_worker(
                    message, out_fd, err_fd
                ):
                    return
                self.fork(message, out_fd, err_fd)
            finally:
                os.close(out_fd)
                os.close(err_fd)

    def hand_to_worker(self, message: dict[str, Any], out_fd: int, err_fd: int) -> bool:
        """Give a start to an idle worker; ``False`` when there is none (fork one then)."""
        for worker in self.workers.values():
            if not worker.idle:
                continue
            start = {"mode": message["mode"], "socket_path": message["socket_path"]}
            try:
                socket.send_fds(
                    worker.channel, [json.dumps(start).encode() + b"\n"], [out_fd, err_fd]
                )
            except OSError:
                # It is exiting; its reap cleans up.
                self.retire(worker)
                continue
            worker.idle = False
            worker.start_id = int(message["id"])
            worker.starts += 1
            self.children[worker.pid] = worker.start_id
            self.send({"ev": "started", "id": worker.start_id, "pid": worker.pid})
            return True
        return False

    def read_worker(self, worker: _Worker) -> None:
        try:
            data = worker.channel.recv(_READ_CHUNK)
        except InterruptedError:
            return
        except OSError:
            data = b""
        if not data:
            # It exited (its reap reports the start, if one was running) or is exiting.
            self.forget_channel(worker)
            return
        worker.buffer += data
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            if line and worker.start_id is not None:
                code = int(json.loads(line)["done"])
                start_id, worker.start_id = worker.start_id, None
                self.children[worker.pid] = -1
                self.send({"ev": "exit", "id": start_id, "status": code, "reusable": True})

    def retire(self, worker: _Worker) -> None:
        """Close a worker's channel: it exits when it next waits for a start."""
        worker.idle = False
        worker.limit = 0
        self.forget_channel(worker)

    def forget_channel(self, worker: _Worker) -> None:
        if worker.channel.fileno() >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.channel)
            worker.channel.close()

    def fork(self, message: dict[str, Any], out_fd: int, err_fd: int) -> None:
        start_id = int(message["id"])
        reuse = int(message.get("reuse", 0))
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        ours: socket.socket | None = None
        theirs: socket.socket | None = None
        try:
            if reuse > 0:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            pid = os.fork()
        except OSError as exc:
            for end in (ours, theirs):
                if end is not None:
                    end.close()
            self.send({"ev": "fork_failed", "id": start_id, "message": str(exc)})
            return
        if pid == 0:
            code = 1
            try:
                keep = (out_fd, err_fd) if theirs is None else (out_fd, err_fd, theirs.fileno())
                self.after_fork(keep=keep)
                if ours is not None:
                    ours.close()
                mode, socket_path = str(message["mode"]), str(message["socket_path"])
                if theirs is not None:
                    first = {"mode": mode, "socket_path": socket_path, "fds": (out_fd, err_fd)}
                    code = _serve_worker(self.app, self.spec, theirs, first)
                else:
                    code = _run_child(self.app, self.spec, mode, socket_path, out_fd, err_fd)
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(BaseException):
                        stream.flush()
                os._exit(code)
        self.children[pid] = start_id
        if ours is not None and theirs is not None:
            theirs.close()
            worker = _Worker(pid=pid, channel=ours, limit=reuse, start_id=start_id)
            self.workers[pid] = worker
            self.selector.register(ours, selectors.EVENT_READ, worker)
        self.send({"ev": "started", "id": start_id, "pid": pid})

    def after_fork(self, keep: tuple[int, ...]) -> None:
        """In the child: drop the zygote's signal setup and descriptors."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(Exception):
            self.selector.close()
        self.control.close()
        for worker in self.workers.values():
            worker.channel.close()
        for fd in (self.wake_r, self.wake_w, *self.fds):
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            start_id = self.children.pop(pid, None)
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self.forget_channel(worker)
                # Between starts (-1) nobody waits for its exit.
                start_id = worker.start_id
            if start_id is not None:
                self.send(
                    {"ev": "exit", "id": start_id, "status": os.waitstatus_to_exitcode(status)}
                )

    def shutdown(self) -> None:
        if self.closed:
            # The launcher is gone; nobody would observe these children any more.
            for pid in list(self.children):
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(OSError):
                        kill(pid, signal.SIGKILL)
            for pid in list(self.children):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        self.children.clear()


def main(argv: list[str]) -> int:
    """Entry point: ``<module>:<app> fd:<N>``."""
    if len(argv) != 2 or not argv[1].startswith("fd:"):
        print("usage: python -m render_sdk.devserver._zygote module:app fd:N", file=sys.stderr)
        return 2
    control = socket.socket(fileno=int(argv[1][3:]))
    control.setblocking(True)
    # The launcher kills us (and the children) explicitly; the terminal must not.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        app = load_app(argv[0])
    except BaseException as exc:
        traceback.print_exc()
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with contextlib.suppress(OSError):
            control.sendall(json.dumps({"ev": "error", "message": message}).encode() + b"\n")
        return IMPORT_FAILED
    preload(app)
    # Keep the collector off the imported objects, so children do not copy their pages.
    gc.freeze()
    Zygote(app, argv[0], control).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
