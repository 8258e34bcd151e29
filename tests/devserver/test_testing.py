"""render_sdk.testing: the public surface and async use of LocalServer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import render_sdk.testing
from render_sdk.client import RenderError
from render_sdk.testing import AppRegistrationError, LocalServer, LocalServerError


def test_exported_names() -> None:
    assert render_sdk.testing.__all__ == [
        "AppRegistrationError",
        "LocalServer",
        "LocalServerError",
    ]
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


def test_wrong_app_raises_at_start_with_the_childs_error(app_dir: Path) -> None:
    server = LocalServer(app="mian:app", cwd=app_dir)
    with pytest.raises(AppRegistrationError, match=r"No module named 'mian'") as caught:
        server.start()
    assert isinstance(caught.value, LocalServerError)
    assert isinstance(caught.value, RenderError)
    assert caught.value.details.startswith("start command exited before registering tasks")
    assert "ModuleNotFoundError: No module named 'mian'" in caught.value.details.splitlines()[1]
    assert not server.running  # hot reload would wait for a fix; the test cannot make one


async def test_wrong_app_raises_at_astart(app_dir: Path) -> None:
    (app_dir / "bad.py").write_text("import no_such_dependency_xyz\n")
    server = LocalServer(app="bad:app", cwd=app_dir)
    with pytest.raises(AppRegistrationError, match=r"No module named 'no_such_dependency_xyz'"):
        await server.astart()
    assert not server.running
