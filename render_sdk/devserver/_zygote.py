"""The warm process: imports the user's app once, then forks one child per attempt.

Usage: ``python -m render_sdk.devserver._zygote <module>:<app> fd:<N>``, where ``N`` is a
Unix stream socket inherited from the launcher (:mod:`render_sdk.devserver._launcher`).

Control protocol, one JSON object per line:

- launcher → zygote: ``{"op": "start", "id": n, "mode": ..., "socket_path": ...}`` with the
  run's stdout and stderr pipe write ends attached (SCM_RIGHTS); ``{"op": "drain"}`` (exit
  once every child has exited).
- zygote → launcher: ``{"ev": "ready", "pid": p}`` after the import, or ``{"ev": "error",
  "message": ...}`` before exiting when it failed; ``{"ev": "started", "id": n, "pid": p}``;
  ``{"ev": "fork_failed", "id": n, "message": ...}``; ``{"ev": "exit", "id": n, "status":
  s}`` (``s < 0``: killed by signal ``-s``).

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
    (built lazily on first use) are inherited by every child instead of rebuilt in each."""
    from render_sdk import _wire
    from render_sdk._gen.render.tasksocket import v1

    for value in vars(v1).values():
        if isinstance(value, type) and value.__module__.startswith(v1.__name__):
            with contextlib.suppress(Exception):
                _wire.loads(value, _wire.dumps(value(), _wire.SOCKET), _wire.SOCKET)


def _run_child(app: Any, spec: str, mode: str, socket_path: str, out_fd: int, err_fd: int) -> int:
    """Body of a forked child; returns its exit code."""
    os.setsid()
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
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException as exc:
        from ..workflows._runner import error_details, was_reported
        from ..workflows._traceback import user_traceback

        if was_reported(exc):
            # Its error, with the user's traceback, went to the task server, which shows
            # and logs it: one line here.
            print(f"Error: task failed: {error_details(exc)[0]}", file=sys.stderr)
        else:
            print(user_traceback(exc, header=True), file=sys.stderr)
        return 1
    return 0


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
        elif op == "start":
            # The two pipe ends of a start travel with it, in order.
            out_fd, err_fd = self.fds.pop(0), self.fds.pop(0)
            try:
                self.fork(message, out_fd, err_fd)
            finally:
                os.close(out_fd)
                os.close(err_fd)

    def fork(self, message: dict[str, Any], out_fd: int, err_fd: int) -> None:
        start_id = int(message["id"])
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            self.send({"ev": "fork_failed", "id": start_id, "message": str(exc)})
            return
        if pid == 0:
            code = 1
            try:
                self.after_fork(keep=(out_fd, err_fd))
                mode, socket_path = str(message["mode"]), str(message["socket_path"])
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
        self.send({"ev": "started", "id": start_id, "pid": pid})

    def after_fork(self, keep: tuple[int, int]) -> None:
        """In the child: drop the zygote's signal setup and descriptors."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(Exception):
            self.selector.close()
        self.control.close()
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
