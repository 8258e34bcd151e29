"""Frozen task definitions: retry policy, options, parameters, and their validation.

Everything here is plain data plus checks that run at decoration time, so a mistake in
a task definition fails when the module is imported, with a message that says what to
change, instead of at registration or on the first run.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._constants import DEFAULT_BACKOFF_SCALING, MAX_TIMEOUT_SECONDS, PLANS
from ._errors import TaskDefinitionError

__all__ = ["Options", "ParameterInfo", "Retry", "TaskSpec", "extract_parameters"]


def _check_int(value: Any, what: str, *, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TaskDefinitionError(
            f"{what} must be an integer, got {type(value).__name__} {value!r}; {hint}"
        )
    if value < minimum:
        raise TaskDefinitionError(f"{what} must be >= {minimum}, got {value}; {hint}")
    return value


@dataclass(frozen=True)
class Retry:
    """How Render retries a failed task run.

    The wait before retry ``n`` (0-based) is ``wait_duration_ms * backoff_scaling**n``.

    Args:
        max_retries: Retries after the first attempt (0 = never retry).
        wait_duration_ms: The wait before the first retry, in milliseconds.
        backoff_scaling: The factor each further wait is multiplied by.

    Raises:
        TaskDefinitionError: A value is negative or of the wrong type.
    """

    max_retries: int
    wait_duration_ms: int
    backoff_scaling: float = DEFAULT_BACKOFF_SCALING

    def __post_init__(self) -> None:
        _check_int(self.max_retries, "Retry.max_retries", minimum=0, hint="use 0 for no retries")
        _check_int(
            self.wait_duration_ms,
            "Retry.wait_duration_ms",
            minimum=0,
            hint="give the first wait in milliseconds",
        )
        scaling = self.backoff_scaling
        if isinstance(scaling, bool) or not isinstance(scaling, int | float):
            raise TaskDefinitionError(
                f"Retry.backoff_scaling must be a number, got {type(scaling).__name__}"
            )
        if not math.isfinite(scaling) or scaling <= 0:
            raise TaskDefinitionError(
                f"Retry.backoff_scaling must be a positive finite number, got {scaling!r}; "
                "use 1.0 for a constant wait"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Retry:
        """Build a Retry from a mapping with ``max_retries``, ``wait_duration_ms`` and
        optionally ``backoff_scaling``.

        Raises:
            TaskDefinitionError: A key is missing or unknown, or a value is invalid.
        """
        known = {"max_retries", "wait_duration_ms", "backoff_scaling"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskDefinitionError(
                f"unknown Retry field(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
            )
        missing = [k for k in ("max_retries", "wait_duration_ms") if k not in data]
        if missing:
            raise TaskDefinitionError(f"Retry needs {' and '.join(missing)}")
        return cls(**data)


RetryLike = Retry | Mapping[str, Any]


def coerce_retry(value: RetryLike | None, what: str) -> Retry | None:
    """Accept a Retry, a mapping of its fields, or None."""
    if value is None or isinstance(value, Retry):
        return value
    if isinstance(value, Mapping):
        return Retry.from_dict(value)
    raise TaskDefinitionError(
        f"{what} must be a Retry(max_retries=..., wait_duration_ms=...) or a dict of those "
        f"fields, got {type(value).__name__}"
    )


def check_timeout(value: Any, what: str) -> int | None:
    """Validate a timeout in seconds (None means Render's default)."""
    if value is None:
        return None
    _check_int(
        value,
        what,
        minimum=1,
        hint=f"give whole seconds up to {MAX_TIMEOUT_SECONDS}, or None for the default",
    )
    if value > MAX_TIMEOUT_SECONDS:
        raise TaskDefinitionError(
            f"{what} must be at most {MAX_TIMEOUT_SECONDS} seconds (24 h), got {value}"
        )
    return int(value)


def check_plan(value: Any, what: str) -> str | None:
    """Validate a plan name (None means Render's default)."""
    if value is None:
        return None
    if value not in PLANS:
        raise TaskDefinitionError(
            f"{what} {value!r} is not a Render plan; use one of {', '.join(PLANS)}"
        )
    return str(value)


@dataclass(frozen=True, init=False)
class Options:
    """The options a task is registered with.

    Args:
        retry: Retry policy; a dict of Retry's fields is accepted. None: Render's default.
        timeout_seconds: Longest run time in seconds. None: Render's default.
        plan: Compute plan, one of :data:`render_sdk.workflows.PLANS`. None: Render's
            default (``standard``).

    Raises:
        TaskDefinitionError: A value is invalid.
    """

    retry: Retry | None
    timeout_seconds: int | None
    plan: str | None

    def __init__(
        self,
        retry: RetryLike | None = None,
        timeout_seconds: int | None = None,
        plan: str | None = None,
    ) -> None:
        object.__setattr__(self, "retry", coerce_retry(retry, "Options.retry"))
        object.__setattr__(
            self, "timeout_seconds", check_timeout(timeout_seconds, "Options.timeout_seconds")
        )
        object.__setattr__(self, "plan", check_plan(plan, "Options.plan"))


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter of a task function, as registered.

    Attributes:
        name: The parameter's name.
        type_hint: The annotation's ``__name__`` (``"int"``, ``"list"``), else its text
            (``"int | None"``); None when unannotated.
        has_default: Whether the parameter has a default.
        default_json: The default as JSON text, when it has one JSON can carry (None
            defaults are not sent).
        kind: How a caller passes it: ``inspect.Parameter.kind``'s name in lower case
            (``"positional_or_keyword"``, ``"keyword_only"``, ``"var_positional"``, ...).
    """

    name: str
    type_hint: str | None
    has_default: bool
    default_json: str | None = None
    kind: str = "positional_or_keyword"


def _type_hint(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    name = getattr(annotation, "__name__", None)
    return name if isinstance(name, str) else str(annotation)


def _default_json(default: Any) -> str | None:
    if default is None:
        return None
    try:
        # Rendered as Python's json.dumps does by default, like the other Python SDKs.
        return json.dumps(default, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None


def extract_parameters(func: Callable[..., Any]) -> tuple[ParameterInfo, ...]:
    """Describe every parameter of ``func`` in declaration order (``*args`` and
    ``**kwargs`` included, by name)."""
    result = []
    for param in inspect.signature(func).parameters.values():
        has_default = param.default is not inspect.Parameter.empty
        result.append(
            ParameterInfo(
                name=param.name,
                type_hint=_type_hint(param.annotation),
                has_default=has_default,
                default_json=_default_json(param.default) if has_default else None,
                kind=param.kind.name.lower(),
            )
        )
    return tuple(result)


@dataclass(frozen=True)
class TaskSpec:
    """Everything the runner needs to register and run one task."""

    name: str
    func: Callable[..., Any]
    options: Options
    is_async: bool
    parameters: tuple[ParameterInfo, ...] = field(default=())
