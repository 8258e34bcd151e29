"""render_sdk.testing: the public surface and async use of LocalServer."""

from __future__ import annotations

from pathlib import Path

import httpx

import render_sdk.testing
from render_sdk.testing import LocalServer


def test_exported_names() -> None:
    assert render_sdk.testing.__all__ == ["LocalServer", "LocalServerError"]
    assert sorted(render_sdk.testing.__all__) == render_sdk.testing.__all__


def test_app_or_command_is_required() -> None:
    import pytest

    with pytest.raises(ValueError, match="exactly one"):
        LocalServer()
    with pytest.raises(ValueError, match="exactly one"):
        LocalServer("a:b", command=["x"])


async def test_async_context_manager(app_dir: Path) -> None:
    async with LocalServer(app="tasks:app", cwd=app_dir) as server:
        assert server.running
        assert server.api_url == server.url + "/v1"
        assert server.client_env() == {
            "RENDER_USE_LOCAL_DEV": "true",
            "RENDER_LOCAL_DEV_URL": server.url,
        }
        async with httpx.AsyncClient(base_url=server.url) as client:
            r = await client.post("/v1/task-runs", json={"task": "square", "input": [4]})
            assert r.status_code == 202
    assert not server.running


def test_restart_keeps_port_and_state(app_dir: Path) -> None:
    with LocalServer(app="tasks:app", cwd=app_dir) as server:
        url = server.url
        with httpx.Client(base_url=url) as c:
            run_id = c.post("/v1/task-runs", json={"task": "square", "input": [2]}).json()["id"]
        server.restart()
        assert server.url == url
        with httpx.Client(base_url=url) as c:
            assert c.get(f"/v1/task-runs/{run_id}").status_code == 200
