"""Register mode, end to end: the real runner in a subprocess against a real socket server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from render_sdk import _wire
from render_sdk._gen.render.tasksocket.v1 import RegisterTasksRequest

from .conftest import APPS, RENDER_WORKFLOWS, finish, run_cli, spawn
from .socket_server import SocketServer

RETRY_DEFAULT = {"max_retries": 3, "wait_duration_ms": 1000, "factor": 1.5}

EXPECTED_APP: list[dict[str, Any]] = [
    {
        "name": "defaults_only",
        "options": {"retry": RETRY_DEFAULT, "timeout_seconds": 300, "plan": "standard"},
        "parameters": [{"name": "x", "has_default": False, "type": "int"}],
    },
    {
        "name": "empty_call",
        "options": {"retry": RETRY_DEFAULT, "timeout_seconds": 300, "plan": "standard"},
        "parameters": [],
    },
    {
        "name": "quick_task",
        "options": {"retry": RETRY_DEFAULT, "timeout_seconds": 60, "plan": "starter"},
        "parameters": [{"name": "x", "has_default": False, "type": "int"}],
    },
    {
        "name": "retryable_task",
        "options": {
            "retry": {"max_retries": 5, "wait_duration_ms": 2000, "factor": 2.0},
            "timeout_seconds": 300,
            "plan": "standard",
        },
        "parameters": [{"name": "x", "has_default": False, "type": "int"}],
    },
    {
        "name": "custom-name",
        "options": {"retry": RETRY_DEFAULT, "timeout_seconds": 300, "plan": "pro"},
        "parameters": [
            {"name": "a", "has_default": False},
            {"name": "b", "has_default": True},
            # Parameters other than positional-or-keyword name their kind (an optional
            # field the official runners do not send).
            {"name": "args", "has_default": False, "kind": "var_positional"},
            {
                "name": "c",
                "has_default": True,
                "type": "str",
                "default_value": '"x"',
                "kind": "keyword_only",
            },
            {
                "name": "d",
                "has_default": True,
                "type": "List",
                "default_value": "[1, 2]",
                "kind": "keyword_only",
            },
            {"name": "kwargs", "has_default": False, "kind": "var_keyword"},
        ],
    },
    {
        "name": "annotated",
        "options": {"retry": RETRY_DEFAULT, "timeout_seconds": 300, "plan": "standard"},
        "parameters": [
            {"name": "a", "has_default": False, "type": "int | None"},
            {"name": "b", "has_default": True, "type": "Optional"},
            {"name": "c", "has_default": True, "type": "list", "default_value": "[]"},
            {"name": "d", "has_default": True, "type": "float", "default_value": "1.5"},
            {"name": "e", "has_default": True, "type": "object"},
            {"name": "f", "has_default": True, "type": "dict", "default_value": '{"k": [1, "v"]}'},
        ],
    },
]
EXPECTED_BARE: list[dict[str, Any]] = [
    {
        "name": "no_options",
        "options": {},
        "parameters": [{"name": "a", "has_default": True, "type": "bool", "default_value": "true"}],
    },
    {"name": "timeout_only", "options": {"timeout_seconds": 30}, "parameters": []},
    {"name": "plan_only", "options": {"plan": "pro_max"}, "parameters": []},
    {
        "name": "retry_only",
        "options": {"retry": {"max_retries": 0, "wait_duration_ms": 0, "factor": 1.5}},
        "parameters": [],
    },
]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("options_app:app", EXPECTED_APP),
        ("options_app:bare", EXPECTED_BARE),
        ("options_app:combined", EXPECTED_APP + EXPECTED_BARE),
    ],
)
async def test_register_payload_for_every_option_combination(
    sock_dir: Path, target: str, expected: list[dict[str, Any]]
) -> None:
    path = str(sock_dir / "s.sock")
    async with SocketServer(path) as server:
        done = await run_cli(target, mode="register", socket_path=path)
        assert done.returncode == 0, done.stderr
        calls = server.calls("/register-tasks")
        assert len(calls) == 1
        assert calls[0].method == "POST"
        assert calls[0].headers["content-type"] == "application/json"
        assert calls[0].headers["user-agent"].startswith("render-sdk-python/")
        assert calls[0].json == {"tasks": expected}
        # The body also decodes through the codec into the generated type.
        request = await server.registered()
        assert [t.name for t in request.tasks] == [t["name"] for t in expected]


async def test_register_via_app_start_in_python_c(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")
    async with SocketServer(path) as server:
        proc = await spawn(
            sys.executable,
            "-c",
            "import sample_app; sample_app.app.start()",
            mode="register",
            socket_path=path,
        )
        done = await finish(proc)
        assert done.returncode == 0, done.stderr
        request = await server.registered()
        assert "add_squares" in [t.name for t in request.tasks]
        square = next(t for t in request.tasks if t.name == "square")
        assert square.options.retry is not None
        assert square.options.retry.max_retries == 2


async def test_register_does_not_load_the_client_or_asyncio(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")
    code = (
        "import sys, json, options_app; options_app.app.start(); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    async with SocketServer(path):
        done = await finish(
            await spawn(sys.executable, "-c", code, mode="register", socket_path=path)
        )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    for heavy in ("httpx", "render_sdk.client", "render_sdk.devserver", "starlette", "uvicorn"):
        assert heavy not in loaded
    assert "asyncio" not in loaded  # registration needs no event loop


@pytest.mark.compat
async def test_register_payload_matches_official_0_4_0(sock_dir: Path, sdk040_python: Path) -> None:
    """Same module, registered by render_sdk==0.4.0 and by us: same definitions."""
    official = str(sdk040_python.parent / "render-workflows")
    payloads = []
    for i, command in enumerate((official, RENDER_WORKFLOWS)):
        path = str(sock_dir / f"{i}.sock")
        async with SocketServer(path) as server:
            proc = await spawn(command, "options_app:combined", mode="register", socket_path=path)
            done = await finish(proc)
            assert done.returncode == 0, done.stderr
            payloads.append(server.calls("/register-tasks")[0].body)
    theirs, ours = (_wire.loads(RegisterTasksRequest, p, _wire.SOCKET) for p in payloads)
    # Only ours names a parameter's kind (an optional field 0.4.0 does not know), and
    # only for parameters that are not positional-or-keyword.
    kinds = {(t.name, p.name): p.kind for t in ours.tasks for p in t.parameters if p.kind}
    assert kinds == {
        ("custom-name", "args"): "var_positional",
        ("custom-name", "c"): "keyword_only",
        ("custom-name", "d"): "keyword_only",
        ("custom-name", "kwargs"): "var_keyword",
    }
    assert not any(p.kind for t in theirs.tasks for p in t.parameters)
    for task in ours.tasks:
        for param in task.parameters:
            param.kind = None
    # Field by field through the codec (0.4.0 omits an empty parameter list).
    assert _wire.to_dict(ours, _wire.SOCKET) == _wire.to_dict(theirs, _wire.SOCKET)
    assert APPS.exists()
