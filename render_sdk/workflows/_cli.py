"""The ``render-workflows`` command.

``render-workflows <module>:<app>`` imports the app and runs the task process
(``app.start()``). ``render-workflows dev ...`` starts the local task server and
``render-workflows tasks|start|runs|logs ...`` are the client commands; those load only
when asked for, so the task process stays lean.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = (
    "usage: render-workflows <module>:<app> | <command> ...\n"
    "\n"
    "commands:\n"
    "  <module>:<app>             run the app's task process (e.g. render-workflows main:app)\n"
    "  dev [options] <module>:<app> | dev [options] -- <command ...>\n"
    "                             start the local task server (render-workflows dev --help)\n"
    "  tasks list                 list the registered tasks\n"
    "  start <task> --input JSON  start a task run and wait for its result\n"
    "  runs list|show|cancel      list, inspect or cancel task runs\n"
    "  logs <run-id> [--follow]   print a task run's logs\n"
    "\n"
    "Client commands talk to RENDER_LOCAL_DEV_URL (or --url); each takes --help."
)
_CLIENT_COMMANDS = frozenset({"tasks", "start", "runs", "logs"})


def _fail(message: str) -> int:
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; ``argv`` defaults to ``sys.argv`` (``argv[0]`` is the program)."""
    args = list(sys.argv if argv is None else argv)
    if len(args) < 2 or not args[1]:
        return _fail(
            "missing <module>:<app> argument; run `render-workflows main:app` "
            "(see render-workflows --help)"
        )
    command = args[1]
    if command in ("-h", "--help", "help"):
        print(_USAGE)
        return 0
    if command == "dev":
        return _delegate("render_sdk.devserver._cli", args[2:], "the local task server")
    if command in _CLIENT_COMMANDS:
        return _delegate("render_sdk.client._cli", args[1:], "the client commands")
    return _serve(command)


def _delegate(module_name: str, argv: list[str], what: str) -> int:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return _fail(f"{what} ({module_name}) is not available in this installation: {exc}")
        raise
    result: int = module.main(argv)
    return result


def user_traceback(exc: BaseException) -> str:
    """``exc`` as the user reads it (their frames only), with a hint for a missing module.

    A ``ModuleNotFoundError`` without a user frame (the app module itself is missing)
    says where it looked.
    """
    from ._traceback import user_traceback as frames_of_user

    text = frames_of_user(exc)
    if isinstance(exc, ModuleNotFoundError) and "\n" not in text:
        text += f" (looked in {os.getcwd()} and sys.path: is that the app's directory?)"
    return text


def _serve(target: str) -> int:
    from ._errors import RunnerError

    module_name, sep, attr_path = target.rpartition(":")
    if not sep or not module_name or not attr_path:
        return _fail(
            f"Invalid app path '{target}': expected <module>:<app_variable>, "
            "e.g. render-workflows main:app"
        )
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        # So that the user's module in the working directory imports, as with `python -m`.
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        # The user's error, as the user would see it running their module: their frames
        # only (ours and importlib's say nothing about what to fix).
        report = user_traceback(exc)
        sep = "\n" if "\n" in report else " "  # a traceback starts on its own line
        return _fail(f"Could not import module '{module_name}':{sep}{report}")
    app: object = module
    for part in attr_path.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            return _fail(f"Module '{module_name}' has no attribute '{attr_path}'")
    start = getattr(app, "start", None)
    if not callable(start):
        return _fail(
            f"'{attr_path}' in module '{module_name}' is a {type(app).__name__}, which has no "
            "start() method; expected a Workflows instance"
        )
    try:
        start()
    except RunnerError as exc:
        return _fail(str(exc))
    except Exception as exc:
        from ._runner import error_details, was_reported

        if was_reported(exc):
            # Its error, with the user's traceback, went to the task server, which shows
            # and logs it: one line here.
            return _fail(f"task failed: {error_details(exc)[0]}")
        # Never the runner's frames: the user's, as if they had called it themselves.
        sys.stderr.write(user_traceback(exc) + "\n")
        return 1
    return 0
