"""render_sdk: define, run and serve Render Workflows tasks.

Public API::

    from render_sdk import Workflows, Retry, Options   # define tasks (worker side)
    from render_sdk import Render, RenderSync          # run tasks (client side)
    from render_sdk.models import TaskRunDetails       # the generated wire models

Names are imported lazily (PEP 562), so that a task process, which only needs
``Workflows``, never pays for the REST client, httpx or the local server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .client import Render, RenderSync
    from .workflows import Options, Retry, Workflows
    from .workflows._legacy import start, task

# ``start`` and ``task`` are render_sdk 0.4.0's deprecated module-level API (they warn).
__all__ = [
    "Options",
    "Render",
    "RenderSync",
    "Retry",
    "Workflows",
    "__version__",
    "start",
    "task",
]

_LAZY = {
    "Options": "render_sdk.workflows",
    "Render": "render_sdk.client",
    "RenderSync": "render_sdk.client",
    "Retry": "render_sdk.workflows",
    "Workflows": "render_sdk.workflows",
    "start": "render_sdk.workflows._legacy",
    "task": "render_sdk.workflows._legacy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'render_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
