"""Size limits end to end: a real server, our runner, results at and over the limit."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
from devserver_helpers import start_run, wait_terminal

from render_sdk.testing import LocalServer
from render_sdk.workflows._constants import MAX_RESULT_BYTES

MakeServer = Callable[..., LocalServer]

BIG_APP = """
from render_sdk import Workflows

app = Workflows()

@app.task
def big(n: int) -> str:
    return "x" * n
"""

#: `["` and `"]` around the string: the encoded result's overhead.
OVERHEAD = 4


def test_result_at_limit_completes_and_over_limit_fails_at_once(
    make_server: MakeServer, tmp_path: Path
) -> None:
    (tmp_path / "big_app.py").write_text(textwrap.dedent(BIG_APP))
    server = make_server(app="big_app:app", cwd=tmp_path)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        at = wait_terminal(c, start_run(c, "big", [MAX_RESULT_BYTES - OVERHEAD]), 60)
        assert at["status"] == "completed"
        assert len(at["results"][0]) == MAX_RESULT_BYTES - OVERHEAD
        over = wait_terminal(c, start_run(c, "big", [MAX_RESULT_BYTES - OVERHEAD + 1]), 60)
    assert over["status"] == "failed", over["status"]
    assert f"{MAX_RESULT_BYTES + 1} bytes" in over["error"], over["error"]
    assert f"limit of {MAX_RESULT_BYTES} bytes" in over["error"], over["error"]
    assert over["results"] in (None, []), "no partial result"
    assert len(over["attempts"]) == 1, "one attempt, failed by the runner's own check"
