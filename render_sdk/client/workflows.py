"""render_sdk 0.4.0's ``render_sdk.client.workflows`` module path."""

from __future__ import annotations

from ._async import AwaitableTaskRun, WorkflowsService

__all__ = ["AwaitableTaskRun", "WorkflowsService"]
