"""``render-workflows tasks|start|runs|logs``: drive a local task server from the shell.

Mirrors the Render CLI's ``--local`` commands::

    render-workflows tasks list
    render-workflows start my-workflow/square --input '[3]'
    render-workflows runs list [--limit N] [--task SLUG]
    render-workflows runs show <run-id>
    render-workflows runs cancel <run-id>
    render-workflows logs <run-id> [--follow]

``--url`` defaults to ``RENDER_LOCAL_DEV_URL`` or ``http://localhost:8120``; add
``--json`` for machine-readable output. Exit status: 0 on success, 1 when the task run
failed or a request failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, TextIO

from .. import _wire
from .._console import StatusLine, status_line_of
from .._errors import ClientError, RenderError, ServerError, TaskRunError
from ..models import TaskRun, TaskRunDetails
from . import _constants as C
from . import _protocol as P
from ._sync import RenderSync

__all__ = ["main"]

PROG: Final = "render-workflows"


def _default_url() -> str:
    return os.environ.get(C.ENV_LOCAL_DEV_URL, "").strip() or C.DEFAULT_LOCAL_DEV_URL


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a value given before the sub-command survives the sub-parser's defaults.
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"task server URL (default: ${C.ENV_LOCAL_DEV_URL} or {C.DEFAULT_LOCAL_DEV_URL})",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON output"
    )

    parser = argparse.ArgumentParser(prog=PROG, description="Run and inspect task runs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser("tasks", help="registered tasks", parents=[common])
    tasks_cmd = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    tasks_cmd.add_parser("list", help="list the registered tasks", parents=[common])

    start = commands.add_parser("start", help="start a task run", parents=[common])
    start.add_argument("task", help="task slug (my-workflow/my-task) or task name")
    start.add_argument(
        "--input",
        default="[]",
        help="JSON array of positional arguments or object of keyword arguments",
    )
    start.add_argument("--no-wait", action="store_true", help="print the run id and exit")
    start.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")

    runs = commands.add_parser("runs", help="task runs", parents=[common])
    runs_cmd = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    runs_list = runs_cmd.add_parser("list", help="list task runs", parents=[common])
    runs_list.add_argument("--limit", type=int, default=None)
    runs_list.add_argument("--task", default=None, help="only runs of this task")
    show = runs_cmd.add_parser("show", help="show one task run", parents=[common])
    show.add_argument("run_id")
    cancel = runs_cmd.add_parser("cancel", help="cancel a task run", parents=[common])
    cancel.add_argument("run_id")

    logs = commands.add_parser("logs", help="print a task run's logs", parents=[common])
    logs.add_argument("run_id")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the run ends"
    )
    return parser


class _Out:
    def __init__(self, as_json: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.as_json = as_json
        self.stdout = stdout
        self.stderr = stderr

    def line(self, text: str) -> None:
        print(text, file=self.stdout, flush=True)

    def data(self, value: Any) -> None:
        print(json.dumps(value, ensure_ascii=False), file=self.stdout, flush=True)

    def error(self, text: str) -> None:
        print(f"error: {text}", file=self.stderr, flush=True)


def _task_names(render: RenderSync) -> dict[str, str]:
    """Task id -> name, so run listings show what a reader typed, not an opaque id."""
    return {task.id: task.name for task in render.workflows.list_tasks()}


def _run_summary(run: TaskRun | TaskRunDetails, names: dict[str, str]) -> str:
    started = _wire.format_timestamp(run.started_at) if run.started_at else "-"
    task = names.get(run.task_id, run.task_id)
    return f"{run.id}  {P.status_of(run):<10} {task:<28} {started}"


def _tasks_list(render: RenderSync, out: _Out) -> int:
    tasks = render.workflows.list_tasks()
    if out.as_json:
        out.data([_wire.to_dict(task, _wire.REST) for task in tasks])
    elif not tasks:
        out.line("no tasks registered")
    else:
        for task in tasks:
            out.line(f"{task.name:<32} {task.id}")
    return 0


def _parse_input(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--input is not valid JSON: {exc}") from None
    if not isinstance(value, list | dict):
        raise ValueError(
            "--input must be a JSON array (positional arguments) or object (keyword arguments)"
        )
    return value


def _start(render: RenderSync, args: argparse.Namespace, out: _Out) -> int:
    task_input = _parse_input(args.input)
    try:
        handle = render.workflows.run_task(args.task, task_input)
    except ClientError as exc:
        if exc.status_code != 404:
            raise
        names = sorted(_task_names(render).values())
        close = difflib.get_close_matches(args.task, names, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}?" if close else f"registered: {', '.join(names)}"
        out.error(f"{exc} ({hint})" if names else f"{exc} (no tasks are registered)")
        return 1
    if args.no_wait:
        if out.as_json:
            out.data(_wire.to_dict(handle.task_run, _wire.REST))
        else:
            out.line(handle.id)
        return 0
    if not out.as_json:
        # The same lines as the server's console (one format, render_sdk._console).
        started = StatusLine(
            status=handle.task_run.status,
            run_id=handle.id,
            task_name=args.task,
            input_json=json.dumps(task_input, separators=(",", ":")).encode(),
        )
        out.line(started.render())
    final: TaskRunDetails | None = None
    for event in render.workflows.task_run_events([handle.id], timeout=args.timeout):
        if not out.as_json:
            out.line(status_line_of(event, args.task).render())
        if event.is_terminal:
            final = event
    if final is None:  # pragma: no cover - the iterator ends only on a final state
        final = render.workflows.get_task_run(handle.id)
    error = P.outcome_error(final)
    if out.as_json:
        out.data(_wire.to_dict(final, _wire.REST))
    elif error is None:
        out.line(json.dumps(final.results, ensure_ascii=False))
    if error is not None:
        out.error(str(error))
        return 1
    return 0


def _runs(render: RenderSync, args: argparse.Namespace, out: _Out) -> int:
    if args.action == "list":
        params = P.ListTaskRunsParams(limit=args.limit, task_slug=args.task)
        runs = render.workflows.list_task_runs(params)
        if out.as_json:
            out.data([_wire.to_dict(run, _wire.REST) for run in runs])
        elif not runs:
            out.line("no task runs")
        else:
            names = _task_names(render)
            for run in runs:
                out.line(_run_summary(run, names))
        return 0
    if args.action == "show":
        details = render.workflows.get_task_run(args.run_id)
        if out.as_json:
            out.data(_wire.to_dict(details, _wire.REST))
            return 0
        out.line(_run_summary(details, _task_names(render)))
        out.line(f"input:   {json.dumps(details.input, ensure_ascii=False)}")
        out.line(f"results: {json.dumps(details.results, ensure_ascii=False)}")
        if details.error:
            out.line(f"error:   {details.error}")
        if details.parent_task_run_id:
            out.line(f"parent:  {details.parent_task_run_id}")
        out.line(f"attempts: {len(details.attempts)}")
        return 0
    render.workflows.cancel_task_run(args.run_id)
    if out.as_json:
        out.data({"id": args.run_id, "canceled": True})
    else:
        out.line(f"canceled {args.run_id}")
    return 0


def _logs(render: RenderSync, args: argparse.Namespace, out: _Out) -> int:
    # An unknown run id is an error (404 -> exit 1), not an empty log.
    render.workflows.get_task_run(args.run_id)
    printed = 0

    def print_new() -> None:
        nonlocal printed
        logs = render.workflows._logs(args.run_id).logs
        for log in logs[printed:]:
            if out.as_json:
                out.data(_wire.to_dict(log, _wire.REST))
            else:
                out.stdout.write(log.message if log.message.endswith("\n") else log.message + "\n")
        out.stdout.flush()
        printed = max(printed, len(logs))

    while True:
        print_new()
        if not args.follow:
            return 0
        if render.workflows.get_task_run(args.run_id).is_terminal:
            print_new()  # output written just before the run ended
            return 0
        time.sleep(C.LOG_POLL_INTERVAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a ``tasks|start|runs|logs`` command; return the exit status.

    Args:
        argv: The arguments after ``render-workflows`` (``["start", "wf/t", ...]``);
            defaults to ``sys.argv[1:]``.
    """
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    out = _Out(getattr(args, "json", False), sys.stdout, sys.stderr)
    url = getattr(args, "url", None) or _default_url()
    try:
        with RenderSync(base_url=url) as render:
            if args.command == "tasks":
                return _tasks_list(render, out)
            if args.command == "start":
                return _start(render, args, out)
            if args.command == "runs":
                return _runs(render, args, out)
            return _logs(render, args, out)
    except TaskRunError as exc:
        out.error(str(exc))
        return 1
    except ServerError as exc:
        out.error(str(exc))
        if exc.status_code is None:
            out.error(f"is the task server running at {url}? (start it with `{PROG} dev`)")
        return 1
    except (RenderError, ValueError, TypeError) as exc:
        out.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
