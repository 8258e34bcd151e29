"""The official SDKs' task runners under ``--reuse-workers`` (see test_compat).

Their interpreter has no zygote, so every attempt is spawned as before: the option changes
nothing for them, and the server says why it spawns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_compat import test_official_runners

from render_sdk.testing import LocalServer

__all__ = ["test_official_runners"]

pytestmark = pytest.mark.compat


@pytest.fixture
def make_server(make_server: Callable[..., LocalServer]) -> Callable[..., LocalServer]:
    """test_compat's servers, with reusable workers asked for."""

    def make(*args: Any, **kwargs: Any) -> LocalServer:
        kwargs.setdefault("reuse_workers", True)
        server = make_server(*args, **kwargs)
        assert "--reuse-workers" in server.argv()
        return server

    return make
