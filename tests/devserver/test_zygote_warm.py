"""The zygote warms the codec from the generated wire tables, not from module paths."""

from __future__ import annotations

from pathlib import Path

import httpx
from devserver_helpers import start_run, wait_terminal

from render_sdk import _wire
from render_sdk._gen import wire_tables
from render_sdk.devserver import _zygote
from render_sdk.models import tasksocket
from render_sdk.testing import LocalServer


def test_every_socket_message_is_compiled_before_the_fork() -> None:
    _wire._codecs.clear()
    _zygote._warm_codec()
    warmed = {cls for cls, dialect in _wire._codecs if dialect == _wire.SOCKET.name}
    socket_messages = {
        name.rpartition(".")[2]
        for name, facts in wire_tables.MESSAGES.items()
        if facts.dialect == "socket"
    }
    assert socket_messages == set(tasksocket.__all__)
    assert {cls.__name__ for cls in warmed} >= socket_messages


IMPORT_LOG_APP = """
import os
import sys

from render_sdk import Workflows

LOG = os.environ["IMPORT_LOG"]
ZYGOTE = os.getpid()


def _record(event, args):
    # Imported here, in the zygote, and inherited: every later import is a module no
    # earlier process had loaded.
    if event == "import" and os.getpid() != ZYGOTE:
        with open(LOG, "a") as log:
            log.write(f"{os.getpid()} {args[0]}\\n")


sys.addaudithook(_record)
app = Workflows()


@app.task
def square(x: int) -> list:
    return [os.getpid(), x * x]
"""


def test_an_attempt_imports_nothing_the_zygote_could_have_loaded(
    tmp_path: Path,
) -> None:
    # An import in the forked child is paid by every attempt (and compiled from source on
    # every attempt where bytecode is not cached): the zygote preloads what the runner
    # needs for a whole attempt, from GET /input to POST /callback.
    (tmp_path / "logged.py").write_text(IMPORT_LOG_APP)
    log = tmp_path / "imports.log"
    with (
        LocalServer(
            app="logged:app", cwd=tmp_path, env={"IMPORT_LOG": str(log)}, extra_args=["--no-reload"]
        ) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        pids = []
        for x in (3, 4):
            done = wait_terminal(client, start_run(client, "square", [x]))
            assert done["status"] == "completed", done
            pids.append(done["results"][0])
    lines = log.read_text().splitlines() if log.exists() else []
    late = sorted(
        {name for line in lines for pid, _, name in [line.partition(" ")] if int(pid) in pids}
    )
    assert late == []
