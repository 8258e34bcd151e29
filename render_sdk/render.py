"""render_sdk 0.4.0's ``render_sdk.render`` module path."""

from __future__ import annotations

from .client import Render

__all__ = ["Render"]
