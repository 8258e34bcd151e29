"""``render-workflows dev``: run the local task server.

Usage::

    render-workflows dev [--port 8120] [--host 127.0.0.1] [--state-dir .render]
                         [--env-file .env ...] [--api-key KEY] -- <command ...>
    render-workflows dev <module>:<app>      # shorthand for -- render-workflows <module>:<app>
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._constants import (
    BODY_MIN_BYTES,
    BODY_TIMEOUT_S,
    DEFAULT_ENV_FILE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    HEADER_TIMEOUT_S,
    MAX_ATTEMPTS_PER_WORKER,
)
from ._protocol import EnvFileError, is_app_spec, parse_command, parse_env_file

_EPILOG = """\
examples:
  render-workflows dev main:app
  render-workflows dev -- python main.py
  render-workflows dev --port 0 --env-file .env.local -- render-workflows tasks:app

The server prints "Listening on http://HOST:PORT" once the tasks are registered.
Clients reach it with RENDER_USE_LOCAL_DEV=true (and RENDER_LOCAL_DEV_URL for a
non-default port).
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="render-workflows dev",
        description="Run Render Workflows tasks locally behind Render's REST + SSE API.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: a free port)")
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to bind (default loopback; any other address requires an API key)",
    )
    p.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        help="directory of the run database and local object storage (default .render)",
    )
    p.add_argument(
        "--env-file",
        action="append",
        default=None,
        metavar="PATH",
        help="env file for the task processes; repeatable, later files win (default .env)",
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="require `Authorization: Bearer KEY` on the API (default $RENDER_API_KEY "
        "when binding a non-loopback host); visible in ps: prefer --api-key-file or the "
        "environment",
    )
    p.add_argument(
        "--api-key-file",
        default=None,
        metavar="PATH",
        help="read the API key from this file (first line), keeping it out of ps",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept requests whose Host is NAME (repeatable; default: only the "
        "address the server listens on, and loopback names on loopback)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="accept browser requests from ORIGIN, e.g. http://localhost:3000 (repeatable; "
        "'*' for any; default: same-origin only)",
    )
    p.add_argument("--debug", action="store_true", help="echo the task processes' output here")
    p.add_argument(
        "--no-warm",
        action="store_true",
        help="start a fresh interpreter per attempt instead of forking a warm one",
    )
    p.add_argument(
        "--reuse-workers",
        action="store_true",
        help="run many attempts in turn in each warm worker process (module state persists "
        "between runs; faster for test suites and fan-outs). Default: a fresh process per "
        "attempt",
    )
    p.add_argument(
        "--max-attempts-per-worker",
        type=int,
        default=MAX_ATTEMPTS_PER_WORKER,
        metavar="N",
        help=f"with --reuse-workers, replace a worker after N attempts "
        f"(default {MAX_ATTEMPTS_PER_WORKER})",
    )
    p.add_argument(
        "--no-reload", action="store_true", help="do not re-register when source files change"
    )
    p.add_argument(
        "--registration-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long the command may take to register its tasks (default 30)",
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="run at most N attempts at once; more runs wait in pending (default: what "
        "the open-file limit and the CPU count allow)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=HEADER_TIMEOUT_S,
        metavar="SECONDS",
        help="close a connection (REST or task socket) that has not sent a request's "
        f"headers this long after connecting or the previous answer (default {HEADER_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=BODY_TIMEOUT_S,
        metavar="SECONDS",
        help=f"close a connection whose request body brings less than {BODY_MIN_BYTES // 1024} "
        f"KiB in a window this long (default {BODY_TIMEOUT_S:g})",
    )
    p.add_argument("--sse-ping", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command that runs your app")
    return p


def _load_env(files: list[str] | None, cwd: Path) -> tuple[dict[str, str], list[str]]:
    explicit = files is not None
    merged: dict[str, str] = {}
    loaded: list[str] = []
    for name in files or [DEFAULT_ENV_FILE]:
        path = Path(name) if Path(name).is_absolute() else cwd / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if explicit:
                raise EnvFileError(f"env file {name} not found") from None
            continue
        except OSError as exc:
            raise EnvFileError(f"env file {name}: {exc}") from None
        merged.update(parse_env_file(text, name=name))
        loaded.append(name)
    return merged, loaded


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``render-workflows dev``; returns the exit code."""
    from ._server import ServerConfig, is_loopback, run_server

    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] == "dev":
        args_in = args_in[1:]
    parser = _parser()
    # argparse's REMAINDER would swallow flags after a bare module:app; split at "--".
    if "--" in args_in:
        idx = args_in.index("--")
        opts, command = args_in[:idx], args_in[idx + 1 :]
        args = parser.parse_args(opts)
        if args.command:
            parser.error(f"unexpected arguments before --: {' '.join(args.command)}")
    else:
        args = parser.parse_args(args_in)
        command = list(args.command)
        if len(command) == 1 and is_app_spec(command[0]):
            command = ["render-workflows", command[0]]
        elif command and not (len(command) == 1 and " " in command[0]):
            parser.error(
                "put the command after --, e.g. `render-workflows dev -- python main.py`, "
                "or give module:app"
            )
    try:
        command = parse_command(command)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if args.reuse_workers and args.no_warm:
        parser.error("--reuse-workers needs warm workers; it cannot be combined with --no-warm")
    if args.max_attempts_per_worker < 1:
        parser.error(
            f"--max-attempts-per-worker must be at least 1, got {args.max_attempts_per_worker}"
        )
    if args.max_concurrency is not None and args.max_concurrency < 1:
        parser.error(f"--max-concurrency must be at least 1, got {args.max_concurrency}")
    for flag, value in (
        ("--header-timeout", args.header_timeout),
        ("--body-timeout", args.body_timeout),
    ):
        if not value > 0:
            parser.error(f"{flag} must be a positive number of seconds, got {value:g}")
    api_key = args.api_key or None
    if args.api_key_file:
        if api_key:
            parser.error("give --api-key or --api-key-file, not both")
        try:
            api_key = Path(args.api_key_file).read_text().strip() or None
        except OSError as exc:
            parser.error(f"cannot read --api-key-file {args.api_key_file}: {exc}")
        if api_key is None:
            parser.error(f"--api-key-file {args.api_key_file} is empty")
    if not is_loopback(args.host):
        api_key = api_key or os.environ.get("RENDER_API_KEY") or None
        if not api_key:
            parser.error(
                f"--host {args.host} is reachable from other machines: give --api-key "
                "(or set RENDER_API_KEY) so that the API requires it"
            )
    cwd = Path.cwd()
    try:
        env_vars, loaded = _load_env(args.env_file, cwd)
    except EnvFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = {**os.environ, **env_vars}
    config = ServerConfig(
        command=command,
        cwd=cwd,
        env=env,
        host=args.host,
        port=args.port,
        state_dir=Path(args.state_dir),
        api_key=api_key,
        warm=not args.no_warm,
        reuse_workers=args.reuse_workers,
        max_attempts_per_worker=args.max_attempts_per_worker,
        debug=args.debug,
        reload=not args.no_reload,
        loaded_env_files=loaded,
        allowed_hosts=tuple(args.allow_host),
        allowed_origins=tuple(args.allow_origin),
        max_concurrency=args.max_concurrency,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        **(
            {"registration_timeout": args.registration_timeout} if args.registration_timeout else {}
        ),
        **({"sse_ping_s": args.sse_ping} if args.sse_ping else {}),
    )
    return run_server(config)


if __name__ == "__main__":
    sys.exit(main())
