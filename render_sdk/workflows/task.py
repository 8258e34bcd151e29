"""render_sdk 0.4.0's ``render_sdk.workflows.task`` module path: the parts that still apply.

0.4.0's registry internals (``TaskRegistry``, ``TaskInfo``, ``_global_registry``) have no
counterpart: tasks live on a :class:`~render_sdk.Workflows` app.
"""

from __future__ import annotations

from ._definitions import Options, ParameterInfo, Retry
from ._legacy import task

__all__ = ["Options", "ParameterInfo", "Retry", "task"]
