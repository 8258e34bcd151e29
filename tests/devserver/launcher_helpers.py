"""Helpers shared by the launcher tests: output capture and /proc process checks."""

from __future__ import annotations

import asyncio
import os


class Output:
    """Collects on_output chunks per stream."""

    def __init__(self) -> None:
        self.chunks: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def __call__(self, stream: str, chunk: bytes) -> None:
        self.chunks[stream] += chunk

    @property
    def stdout(self) -> str:
        return self.chunks["stdout"].decode()

    @property
    def stderr(self) -> str:
        return self.chunks["stderr"].decode()

    async def wait_for(self, stream: str, text: str, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while text not in self.chunks[stream].decode(errors="replace"):
            assert asyncio.get_running_loop().time() < deadline, f"no {text!r} in {stream}"
            await asyncio.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def gone(pid: int, timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while alive(pid):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
