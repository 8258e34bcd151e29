"""Fixtures for the runner tests: short socket paths and real runner subprocesses."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent / "apps"
BIN = Path(sys.executable).parent
RENDER_WORKFLOWS = str(BIN / "render-workflows")


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="rw-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def runner_env(mode: str | None, socket_path: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENDER_SDK_")}
    if mode is not None:
        env["RENDER_SDK_MODE"] = mode
    if socket_path is not None:
        env["RENDER_SDK_SOCKET_PATH"] = socket_path
    return env


async def spawn(
    *argv: str, mode: str | None, socket_path: str | None, cwd: Path = APPS
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        env=runner_env(mode, socket_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60) -> Finished:
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(), err.decode())


async def run_cli(
    target: str, *, mode: str | None, socket_path: str | None, cwd: Path = APPS
) -> Finished:
    proc = await spawn(RENDER_WORKFLOWS, target, mode=mode, socket_path=socket_path, cwd=cwd)
    return await finish(proc)
