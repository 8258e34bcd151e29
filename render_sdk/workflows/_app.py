"""``Workflows``, the ``@app.task`` decorator, and the typed task object it returns."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from ._constants import TASK_NAME_FORBIDDEN_CHARS
from ._context import current_session
from ._definitions import (
    Options,
    RetryLike,
    TaskSpec,
    check_plan,
    check_timeout,
    coerce_retry,
    extract_parameters,
)
from ._errors import TaskContextError, TaskDefinitionError

__all__ = ["Task", "TaskDecorator", "Workflows"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Task(Generic[P, R_co]):
    """A registered task: what ``@app.task`` returns.

    Inside a running async task, calling it starts it as a subtask at once and returns
    an awaitable of its result, so ``await square(3)`` runs ``square`` in its own task
    run, and ``await asyncio.gather(square(1), square(2))`` runs both concurrently.
    Arguments are all positional or all keyword (they travel as a JSON array or object).

    Outside a running task there is no run to attach a subtask to, so calling a task
    raises :class:`TaskContextError`. To run the function itself (in a unit test, say)
    call ``square.func(3)``.

    Attributes:
        name: The registered name (the function's name unless ``name=`` was given).
        func: The original function, unchanged.
        options: The effective options (task values over the app's defaults).
    """

    def __init__(self, spec: TaskSpec) -> None:
        # __name__, __doc__, __wrapped__ ... of the function; not its __dict__, which
        # could shadow the attributes below.
        functools.update_wrapper(self, spec.func, updated=())
        self._spec = spec
        self.name: str = spec.name
        self.func: Callable[P, Any] = spec.func
        self.options = spec.options

    @property
    def is_async(self) -> bool:
        """Whether the task function is ``async def``."""
        return self._spec.is_async

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R_co]:
        """Start this task as a subtask of the running task; await the result.

        Raises:
            TaskContextError: No task is running in this context.
            TypeError: Positional and keyword arguments were mixed.
        """
        session = current_session.get()
        if session is None:
            raise TaskContextError(
                f"{self.name}() was called outside a running task. Calling a task starts it "
                f"as a subtask, which only works inside an async task executed by "
                f"render-workflows. To run it, start it through the Render client "
                f"(render.workflows.run_task) or the local server (render-workflows dev); "
                f"to call the plain function, e.g. in a unit test, use {self.name}.func(...)."
            )
        if args and kwargs:
            raise TypeError(
                f"Cannot mix positional and keyword arguments when calling task "
                f"{self.name!r}: its input is sent as a JSON array or a JSON object. "
                f"Pass all arguments positionally or all by keyword."
            )
        return session.start_subtask(self.name, dict(kwargs) if kwargs else list(args))

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"


def _is_async(fn: Callable[..., Any]) -> bool:
    # Also a callable object whose __call__ is ``async def``.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  # the method itself, not callability
    )


class TaskDecorator(Protocol):
    """What ``app.task(...)`` returns when called with options."""

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R], /) -> Task[P, R]: ...


class Workflows:
    """A set of tasks, and the entry point of the process that runs them.

    Example::

        app = Workflows(default_retry=Retry(max_retries=3, wait_duration_ms=1000))

        @app.task
        def square(a: int) -> int:
            return a * a

        @app.task(timeout_seconds=60, plan="starter")
        async def add_squares(a: int, b: int) -> int:
            return await square(a) + await square(b)

    Run it with ``render-workflows module:app`` (or call ``app.start()``).

    Args:
        default_retry: Retry policy for tasks that do not set one (a dict is accepted).
        default_timeout: Timeout in seconds for tasks that do not set one.
        default_plan: Plan for tasks that do not set one (see ``PLANS``).

    Raises:
        TaskDefinitionError: A default is invalid.
    """

    def __init__(
        self,
        *,
        default_retry: RetryLike | None = None,
        default_timeout: int | None = None,
        default_plan: str | None = None,
    ) -> None:
        self._default_retry = coerce_retry(default_retry, "default_retry")
        self._default_timeout = check_timeout(default_timeout, "default_timeout")
        self._default_plan = check_plan(default_plan, "default_plan")
        self._tasks: dict[str, Task[..., Any]] = {}

    @property
    def tasks(self) -> Mapping[str, Task[..., Any]]:
        """The registered tasks by name, in definition order (read-only)."""
        return MappingProxyType(self._tasks)

    def __repr__(self) -> str:
        return f"Workflows(tasks={len(self._tasks)})"

    @overload
    def task(self, func: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(self, func: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        retry: RetryLike | None = None,
        timeout: int | None = None,
        timeout_seconds: int | None = None,
        plan: str | None = None,
    ) -> TaskDecorator: ...

    def task(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        retry: RetryLike | None = None,
        timeout: int | None = None,
        timeout_seconds: int | None = None,
        plan: str | None = None,
    ) -> Task[..., Any] | TaskDecorator:
        """Register a function as a task: ``@app.task``, ``@app.task()`` or
        ``@app.task(name=..., retry=..., timeout_seconds=..., plan=...)``.

        Each option given here overrides the app's default for that field only.

        Args:
            func: The function (when used as a bare ``@app.task``).
            name: The registered name; defaults to the function's ``__name__``.
            retry: Retry policy (a ``Retry`` or a dict of its fields).
            timeout: Timeout in seconds (alias of ``timeout_seconds``).
            timeout_seconds: Timeout in seconds.
            plan: Compute plan (see ``PLANS``).

        Returns:
            The :class:`Task`, or a decorator producing it.

        Raises:
            TaskDefinitionError: The function or an option is invalid, or the name is
                already taken in this app.
        """
        if timeout is not None and timeout_seconds is not None and timeout != timeout_seconds:
            raise TaskDefinitionError(
                f"timeout={timeout!r} and timeout_seconds={timeout_seconds!r} disagree; "
                "pass only one (timeout is an alias of timeout_seconds)"
            )
        options = Options(
            retry=self._default_retry if retry is None else coerce_retry(retry, "retry"),
            timeout_seconds=check_timeout(
                timeout_seconds if timeout_seconds is not None else timeout, "timeout_seconds"
            )
            or self._default_timeout,
            plan=check_plan(plan, "plan") or self._default_plan,
        )

        def register(fn: Callable[..., Any]) -> Task[..., Any]:
            return self._register(fn, name=name, options=options)

        if func is None:
            return register  # type: ignore[return-value]  # plain function satisfies both overloads
        return register(func)

    def _register(
        self, fn: Callable[..., Any], *, name: str | None, options: Options
    ) -> Task[..., Any]:
        if isinstance(fn, Task):
            raise TaskDefinitionError(
                f"{fn.name!r} is already a task; to serve tasks of several apps together use "
                "Workflows.from_workflows(app_a, app_b)"
            )
        if isinstance(fn, str) and name is None:
            raise TaskDefinitionError(
                f"app.task got the string {fn!r} instead of a function; to set the name write "
                f"@app.task(name={fn!r})"
            )
        if not callable(fn):
            raise TaskDefinitionError(
                f"app.task expects a function, got {type(fn).__name__} {fn!r}; decorate a "
                "def or async def with @app.task"
            )
        task_name = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(task_name, str) or not task_name:
            raise TaskDefinitionError(
                f"cannot name the task for {fn!r}; pass @app.task(name='...')"
            )
        bad = sorted(set(task_name) & TASK_NAME_FORBIDDEN_CHARS)
        if bad:
            raise TaskDefinitionError(
                f"task name {task_name!r} contains {bad!r}; names are used in "
                "'workflow-slug/task-name' identifiers, so use letters, digits, '-' and '_'"
            )
        if task_name in self._tasks:
            raise TaskDefinitionError(
                f"Task '{task_name}' already registered in this app; give one of them another "
                f"name with @app.task(name='...')"
            )
        try:
            parameters = extract_parameters(fn)
        except (TypeError, ValueError) as exc:
            raise TaskDefinitionError(
                f"cannot read the parameters of task {task_name!r}: {exc}"
            ) from exc
        spec = TaskSpec(
            name=task_name,
            func=fn,
            options=options,
            is_async=_is_async(fn),
            parameters=parameters,
        )
        task: Task[..., Any] = Task(spec)
        self._tasks[task_name] = task
        return task

    def specs(self) -> list[TaskSpec]:
        """The frozen definitions of every task, in definition order (used by the runner)."""
        return [t._spec for t in self._tasks.values()]

    @classmethod
    def from_workflows(
        cls,
        *apps: Workflows,
        default_retry: RetryLike | None = None,
        default_timeout: int | None = None,
        default_plan: str | None = None,
    ) -> Workflows:
        """Combine the tasks of several apps into a new app.

        Tasks keep the options they were defined with; the new app's defaults apply
        only to tasks defined on it afterwards.

        Raises:
            TaskDefinitionError: Two apps define a task with the same name, or an
                argument is not a Workflows app.
        """
        combined = cls(
            default_retry=default_retry, default_timeout=default_timeout, default_plan=default_plan
        )
        for position, app in enumerate(apps):
            if not isinstance(app, Workflows):
                raise TaskDefinitionError(
                    f"from_workflows expects Workflows apps, got {type(app).__name__} at "
                    f"position {position}"
                )
            for task_name, task in app._tasks.items():
                if task_name in combined._tasks:
                    raise TaskDefinitionError(
                        f"Task '{task_name}' is defined in multiple apps; rename one of them "
                        f"with @app.task(name='...')"
                    )
                combined._tasks[task_name] = task
        return combined

    def start(self) -> None:
        """Serve this process's role for the task server that started it.

        Reads ``RENDER_SDK_MODE`` (``register`` or ``run``) and
        ``RENDER_SDK_SOCKET_PATH``: in register mode sends every task definition, in
        run mode executes the one task run the server asks for and reports its outcome.

        Raises:
            RunnerError: The environment is missing or invalid.
            Exception: In run mode, the task's own exception after it was reported, so
                the process exits non-zero.
        """
        from ._runner import start

        start(self)
