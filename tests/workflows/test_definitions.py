"""Task definitions: the decorator forms, option merging, validation messages, exports."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import render_sdk
import render_sdk.workflows as wf
from render_sdk import Options, Retry, Workflows
from render_sdk._errors import RenderError
from render_sdk.workflows import PLANS, TaskContextError, TaskDefinitionError


def test_exports() -> None:
    # isort-style order (constants, then classes), as ruff keeps it.
    assert wf.__all__ == sorted(wf.__all__, key=lambda n: (not n.isupper(), n))
    assert set(wf.__all__) == {
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
    }
    assert render_sdk.Workflows is Workflows
    assert render_sdk.Retry is Retry
    assert render_sdk.Options is Options
    assert wf.TaskRunError is render_sdk._errors.TaskRunError


def test_worker_import_is_lean() -> None:
    code = (
        "import sys, json; from render_sdk import Workflows; print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = set(json.loads(out))
    forbidden = {"httpx", "render_sdk.client", "render_sdk.devserver", "starlette", "uvicorn"}
    # Stronger than the contract: the wire models and the event loop load on start() only.
    forbidden |= {"asyncio", "betterproto2", "render_sdk._gen", "render_sdk._wire", "socket"}
    assert not forbidden & loaded
    assert not {m for m in loaded if m.startswith(("httpx", "render_sdk.client", "starlette"))}


def test_decorator_forms_and_defaults() -> None:
    app = Workflows(default_retry=Retry(3, 1000), default_timeout=300, default_plan="standard")

    @app.task
    def a(x: int) -> int:
        """Doc of a."""
        return x

    @app.task()
    def b() -> None:
        return None

    @app.task(name="c-custom", timeout=60)
    async def c() -> None:
        return None

    @app.task(timeout_seconds=61, plan="pro", retry={"max_retries": 1, "wait_duration_ms": 5})
    def d() -> None:
        return None

    assert list(app.tasks) == ["a", "b", "c-custom", "d"]
    assert a.options == Options(Retry(3, 1000), 300, "standard")
    assert b.options == a.options
    assert c.options == Options(Retry(3, 1000), 60, "standard")
    assert d.options == Options(Retry(1, 5, 1.5), 61, "pro")
    assert (a.__name__, a.__doc__, a.__wrapped__) == ("a", "Doc of a.", a.func)  # type: ignore[attr-defined]
    assert a.func(4) == 4
    assert not a.is_async
    assert c.is_async
    assert repr(app) == "Workflows(tasks=4)"
    with pytest.raises(TypeError):
        app.tasks["x"] = a  # type: ignore[index]


def test_timeout_alias_must_agree() -> None:
    app = Workflows()

    @app.task(timeout=5, timeout_seconds=5)
    def same() -> None:
        return None

    assert same.options.timeout_seconds == 5
    with pytest.raises(TaskDefinitionError, match="disagree; pass only one"):
        app.task(timeout=5, timeout_seconds=6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Retry(-1, 10), "Retry.max_retries must be >= 0, got -1; use 0 for no retries"),
        (lambda: Retry(1, -5), "Retry.wait_duration_ms must be >= 0"),
        (lambda: Retry(1.5, 5), "Retry.max_retries must be an integer, got float"),  # type: ignore[arg-type]
        (lambda: Retry(1, 5, 0), "Retry.backoff_scaling must be a positive finite number"),
        (lambda: Retry.from_dict({"max_retries": 1}), "Retry needs wait_duration_ms"),
        (
            lambda: Retry.from_dict({"max_retries": 1, "wait_duration_ms": 1, "factor": 2}),
            "unknown Retry field(s) factor",
        ),
        (lambda: Options(retry=5), "Options.retry must be a Retry"),  # type: ignore[arg-type]
        (lambda: Options(timeout_seconds=-3), "Options.timeout_seconds must be >= 1, got -3"),
        (lambda: Options(timeout_seconds=0), "must be >= 1, got 0"),
        (lambda: Options(timeout_seconds=10**6), "must be at most 86400 seconds"),
        (
            lambda: Options(plan="huge"),
            "Options.plan 'huge' is not a Render plan; use one of starter",
        ),
        (lambda: Workflows(default_timeout=-1), "default_timeout must be >= 1"),
        (lambda: Workflows(default_plan="gold"), "default_plan 'gold' is not a Render plan"),
        (lambda: Workflows(default_retry={"max_retries": -2, "wait_duration_ms": 1}), ">= 0"),
        (lambda: Workflows().task(plan="mega"), "plan 'mega' is not a Render plan"),
        (lambda: Workflows().task(timeout=-10), "timeout_seconds must be >= 1, got -10"),
        (lambda: Workflows().task(retry=Retry(-1, 1)), "max_retries must be >= 0"),
        (lambda: Workflows().task(42), "app.task expects a function, got int 42"),  # type: ignore[call-overload]
        (lambda: Workflows().task("name"), "write @app.task(name='name')"),  # type: ignore[call-overload]
        (lambda: Workflows().task(name="a/b")(lambda: 1), "task name 'a/b' contains ['/']"),
        (lambda: Workflows().task(name="")(lambda: 1), "cannot name the task"),
    ],
)
def test_invalid_definitions_fail_at_decoration_time(make: Any, message: str) -> None:
    with pytest.raises(TaskDefinitionError) as info:
        make()
    assert message in str(info.value)
    assert isinstance(info.value, RenderError)
    assert isinstance(info.value, ValueError)


def test_plans_constant() -> None:
    assert PLANS[:3] == ("starter", "standard", "pro")
    for plan in PLANS:
        assert Options(plan=plan).plan == plan


def test_duplicate_names() -> None:
    app = Workflows()

    @app.task
    def same() -> None:
        return None

    with pytest.raises(TaskDefinitionError, match="Task 'same' already registered in this app"):

        @app.task
        def same() -> None:
            return None

    with pytest.raises(TaskDefinitionError, match="already a task"):
        Workflows().task(same)


def test_from_workflows() -> None:
    a, b = Workflows(default_plan="pro"), Workflows()

    @a.task
    def one() -> None:
        return None

    @b.task(timeout=30)
    def two() -> None:
        return None

    combined = Workflows.from_workflows(a, b, default_plan="starter")

    @combined.task
    def three() -> None:
        return None

    assert list(combined.tasks) == ["one", "two", "three"]
    assert combined.tasks["one"].options.plan == "pro"  # keeps its own options
    assert combined.tasks["two"].options.timeout_seconds == 30
    assert three.options.plan == "starter"
    assert list(Workflows.from_workflows().tasks) == []
    with pytest.raises(TaskDefinitionError, match="Task 'one' is defined in multiple apps"):
        Workflows.from_workflows(a, b, a)
    with pytest.raises(TaskDefinitionError, match="expects Workflows apps, got int at position 1"):
        Workflows.from_workflows(a, 3)  # type: ignore[arg-type]


def test_calling_a_task_outside_a_run() -> None:
    app = Workflows()

    @app.task
    def square(a: int) -> int:
        return a * a

    with pytest.raises(TaskContextError) as info:
        square(3)
    text = str(info.value)
    assert "square() was called outside a running task" in text
    assert "square.func(...)" in text
    assert "render-workflows dev" in text
    assert not isinstance(info.value, LookupError)
    assert square.func(3) == 9


def test_parameters_follow_the_registration_rules() -> None:
    app = Workflows()

    @app.task
    def f(a, b: int = 3, c: list[int] | None = None, *rest: str, d: float = float("nan"), **kw):  # type: ignore[no-untyped-def]
        return a

    params = [(p.name, p.type_hint, p.has_default, p.default_json) for p in f._spec.parameters]
    assert params == [
        ("a", None, False, None),
        ("b", "int", True, "3"),
        ("c", "list[int] | None", True, None),
        ("rest", "str", False, None),
        ("d", "float", True, None),  # NaN is not JSON
        ("kw", None, False, None),
    ]


def test_callable_objects_are_tasks_too() -> None:
    class Handler:
        name = "shadowed"

        async def __call__(self, x: int) -> int:
            return x

    app = Workflows()
    task = app.task(name="handler")(Handler())
    assert task.is_async
    assert task.name == "handler"
    assert list(app.tasks) == ["handler"]
