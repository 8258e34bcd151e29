"""Fixtures of the local server's end-to-end tests: app modules in tmp_path, real servers."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import APP, RAW_RUNNER

from render_sdk.testing import LocalServer


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory holding tasks.py (our runner's app) and raw.py (the hand-written runner)."""
    (tmp_path / "tasks.py").write_text(textwrap.dedent(APP))
    (tmp_path / "raw.py").write_text(RAW_RUNNER)
    return tmp_path


@pytest.fixture
def make_server(app_dir: Path) -> Iterator[Callable[..., LocalServer]]:
    """Start LocalServers in app_dir; all are stopped at the end."""
    servers: list[LocalServer] = []

    def make(*args: Any, **kwargs: Any) -> LocalServer:
        kwargs.setdefault("cwd", app_dir)
        if not args and "command" not in kwargs:
            kwargs.setdefault("app", "tasks:app")
        server = LocalServer(*args, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One app directory for the module-wide server."""
    path = tmp_path_factory.mktemp("app")
    (path / "tasks.py").write_text(textwrap.dedent(APP))
    (path / "raw.py").write_text(RAW_RUNNER)
    return path


@pytest.fixture(scope="module")
def server(shared_dir: Path) -> Iterator[LocalServer]:
    """A server running tasks.py with our runner, shared by a test module."""
    with LocalServer(app="tasks:app", cwd=shared_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def raw_server(shared_dir: Path) -> Iterator[LocalServer]:
    """A server running the hand-written socket runner."""
    with LocalServer(command=[sys.executable, "raw.py"], cwd=shared_dir, state_dir=".raw") as srv:
        yield srv


@pytest.fixture
def client(server: LocalServer) -> Iterator[httpx.Client]:
    """An HTTP client for the shared server."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def raw_client(raw_server: LocalServer) -> Iterator[httpx.Client]:
    """An HTTP client for the raw-runner server."""
    with httpx.Client(base_url=raw_server.url, timeout=30) as c:
        yield c
