"""Define Render Workflows tasks and run the task process.

Example::

    from render_sdk import Retry, Workflows

    app = Workflows(default_retry=Retry(max_retries=3, wait_duration_ms=1000))

    @app.task
    def square(a: int) -> int:
        return a * a

    @app.task
    async def add_squares(a: int, b: int) -> int:
        return await square(a) + await square(b)

Serve it with ``render-workflows main:app`` (or ``app.start()``). Importing this
package is cheap: the socket runner, asyncio and the wire models load only when the
process starts.
"""

from __future__ import annotations

from .._errors import TaskRunError
from .._exports import publish
from ._app import Task, TaskDecorator, Workflows
from ._constants import PLANS
from ._definitions import Options, ParameterInfo, Retry
from ._errors import RunnerError, TaskContextError, TaskDefinitionError

__all__ = [
    "PLANS",
    "Options",
    "ParameterInfo",
    "Retry",
    "RunnerError",
    "Task",
    "TaskContextError",
    "TaskDecorator",
    "TaskDefinitionError",
    "TaskRunError",
    "Workflows",
]

publish(globals())
