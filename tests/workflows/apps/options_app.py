"""Every option combination, for the registration payload tests (also valid for 0.4.0)."""

# typing.List / Optional on purpose: their registered type names differ from list / X | None.
from typing import List, Optional  # noqa: UP035

from render_sdk import Retry, Workflows

app = Workflows(
    default_retry=Retry(max_retries=3, wait_duration_ms=1000),
    default_timeout=300,
    default_plan="standard",
)
bare = Workflows()


@app.task
def defaults_only(x: int) -> int:
    return x


@app.task()
def empty_call() -> None:
    return None


@app.task(timeout=60, plan="starter")
def quick_task(x: int) -> int:
    return x + 1


@app.task(retry=Retry(max_retries=5, wait_duration_ms=2000, backoff_scaling=2.0))
def retryable_task(x: int) -> int:
    return x * 2


@app.task(name="custom-name", plan="pro")
def renamed(a, b=None, *args, c: "str" = "x", d: List[int] = [1, 2], **kwargs):  # noqa: B006, UP006
    return a


@app.task
def annotated(
    a: int | None,
    b: Optional[int] = None,  # noqa: UP045
    c: list[int] = (),  # type: ignore[assignment]
    d: float = 1.5,
    e: object = object(),
    f: dict = {"k": [1, "v"]},  # noqa: B006
) -> None:
    return None


@bare.task
def no_options(a: bool = True) -> bool:
    return a


@bare.task(timeout=30)
def timeout_only() -> None:
    return None


@bare.task(plan="pro_max")
def plan_only() -> None:
    return None


@bare.task(retry=Retry(max_retries=0, wait_duration_ms=0))
def retry_only() -> None:
    return None


combined = Workflows.from_workflows(app, bare)
