"""render_sdk 0.4.0's deprecated module-level task API: ``render_sdk.task`` and ``start``.

0.4.0 kept one process-wide registry behind ``@task`` and ``start()``; here that is
one module-level :class:`Workflows` app, so both paths share the runner.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .._exports import publish
from ._app import Task, TaskDecorator, Workflows
from ._definitions import Options

__all__ = ["start", "task"]

_default_app = Workflows()


def _deprecated(name: str) -> None:
    warnings.warn(
        f"render_sdk.{name} is render_sdk 0.4.0's deprecated module-level API; "
        f"use app = Workflows() and app.{name} instead",
        DeprecationWarning,
        stacklevel=3,
    )


def task(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    options: Options | None = None,
) -> Task[..., Any] | TaskDecorator:
    """Register a function in the process-wide app (deprecated; use ``Workflows().task``).

    Args:
        func: The function (when used as a bare ``@task``).
        name: The registered name; defaults to the function's ``__name__``.
        options: The task's ``Options`` (retry, timeout_seconds, plan).

    Returns:
        The task, or a decorator producing it.

    Raises:
        TaskDefinitionError: The function or an option is invalid, or the name is taken.
    """
    _deprecated("task")
    opts = options or Options()
    decorator = _default_app.task(
        name=name, retry=opts.retry, timeout_seconds=opts.timeout_seconds, plan=opts.plan
    )
    return decorator if func is None else decorator(func)


def start() -> None:
    """Serve the process-wide app's tasks (deprecated; use ``Workflows().start()``).

    Raises:
        RunnerError: ``RENDER_SDK_MODE`` or ``RENDER_SDK_SOCKET_PATH`` is missing or invalid.
    """
    _deprecated("start")
    _default_app.start()


publish(globals(), home="render_sdk")  # users reach them as render_sdk.task / render_sdk.start
