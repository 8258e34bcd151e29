"""Fixtures of the object storage tests: the real local server in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_server import StorageServer


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageServer]:
    """One server shared by a module's tests (each test uses its own owner id)."""
    server = StorageServer(tmp_path_factory.mktemp("server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StorageServer]:
    """A server of this test's own, on its own state dir."""
    srv = StorageServer(tmp_path / "server")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def owner(request: pytest.FixtureRequest) -> str:
    """An owner id unique to the test, so tests sharing a server do not see each other."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"tea-{name}".rstrip("-")
