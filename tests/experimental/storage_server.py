"""The real local server for the object storage tests (imported by conftest and tests)."""

from __future__ import annotations

from pathlib import Path

from render_sdk.testing import LocalServer

OWNER = "tea-test"
REGION = "oregon"

_TASKS = """
from render_sdk import Workflows

app = Workflows()


@app.task
def noop() -> None:
    return None
"""


class StorageServer:
    """The local server (``render-workflows dev``), restartable on the same state dir."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "tasks.py").write_text(_TASKS)
        self.state_dir = root / "state"
        self.local = LocalServer(app="tasks:app", cwd=root, state_dir=self.state_dir)

    @property
    def url(self) -> str:
        return self.local.url

    @property
    def secret(self) -> bytes:
        """The key the server signs presigned URLs with (hex, in its state dir)."""
        return bytes.fromhex((self.state_dir / "devserver.secret").read_text().strip())

    @property
    def pid(self) -> int:
        pid = self.local.pid
        assert pid is not None
        return pid

    def start(self) -> None:
        self.local.start()

    def kill(self) -> None:
        """SIGKILL the server: no cleanup of any kind runs."""
        self.local.stop(kill=True)

    def stop(self) -> None:
        self.local.stop()

    def peak_rss_kib(self) -> int:
        """The server's peak resident memory so far (VmHWM), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM")
