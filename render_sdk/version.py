"""render_sdk 0.4.0's ``render_sdk.version`` helpers."""

from __future__ import annotations

from ._version import __version__
from .client._core import user_agent

__all__ = ["get_user_agent", "get_version"]


def get_version() -> str:
    """This SDK's version (``render_sdk.__version__``)."""
    return __version__


def get_user_agent() -> str:
    """The User-Agent sent on every request.

    For example ``render-sdk-python/0.5.0 (cpython/3.12.3; linux/x86_64)``.
    """
    return user_agent()
