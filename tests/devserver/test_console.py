"""What ``render-workflows dev`` tells the user on its console (issue 11): a failed task's
traceback with ``--debug``, a start-up ``curl`` that works, and what serves runs after a
reload that failed. Real servers, real task processes."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import start_run, wait_terminal

from render_sdk._wire import parse_timestamp
from render_sdk.testing import LocalServer

MakeServer = Callable[..., LocalServer]
ROOT = Path(__file__).resolve().parents[2]

FAILING_APP = textwrap.dedent(
    """\
    from render_sdk import Retry, Workflows

    app = Workflows(default_retry=Retry(max_retries=0, wait_duration_ms=100))


    def parse(text):
        return int(text)


    @app.task
    def convert(text: str) -> int:
        return parse(text)


    @app.task
    async def outer(text: str) -> int:
        return await convert(text)
    """
)
#: The lines of FAILING_APP the tracebacks must name.
PARSE_LINE = FAILING_APP.splitlines().index("    return int(text)") + 1
CONVERT_LINE = FAILING_APP.splitlines().index("    return parse(text)") + 1
OUTER_LINE = FAILING_APP.splitlines().index("    return await convert(text)") + 1


def _failing_server(make_server: MakeServer, app_dir: Path, *flags: str) -> LocalServer:
    (app_dir / "failing.py").write_text(FAILING_APP)
    return make_server(app="failing:app", extra_args=[*flags, "--no-reload"])


def _run_outer(server: LocalServer) -> tuple[str, str]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run_id = start_run(client, "outer", ["x1"])
        assert wait_terminal(client, run_id)["status"] == "failed"
    line = server.wait_for_output(rf"^Task failed: {run_id} ")
    return run_id, line


def test_debug_prints_the_users_traceback_without_ours(
    make_server: MakeServer, app_dir: Path
) -> None:
    server = _failing_server(make_server, app_dir, "--debug")
    run_id, _ = _run_outer(server)
    source = app_dir / "failing.py"
    sub = server.wait_for_output(r"^  Task failed: trn-\w+ \(convert\) ")
    out = server.output
    at = out.index(sub)
    # The subtask's traceback follows its status line, indented under it: the user's
    # frames, innermost last, then the exception.
    assert out[at + 1] == "    | Traceback (most recent call last):"
    assert out[at + 2] == f'    |   File "{source}", line {CONVERT_LINE}, in convert'
    assert out[at + 3] == "    |     return parse(text)"
    trace = out[at + 1 : at + 12]
    assert f'    |   File "{source}", line {PARSE_LINE}, in parse' in trace
    assert "    | ValueError: invalid literal for int() with base 10: 'x1'" in trace
    # The parent's traceback shows where it awaited the subtask.
    top = out.index(next(ln for ln in out if ln.startswith(f"Task failed: {run_id} ")))
    assert out[top + 1] == "  | Traceback (most recent call last):"
    assert out[top + 2] == f'  |   File "{source}", line {OUTER_LINE}, in outer'
    # Not one frame of the runner, the subtask plumbing or the import machinery.
    frames = [ln for ln in out if ln.lstrip(" |").startswith("File ")]
    assert frames, out
    assert all(str(source) in ln for ln in frames), frames
    assert not any("render_sdk" in ln or "importlib" in ln for ln in frames), frames


def test_without_debug_a_failure_is_one_short_line(make_server: MakeServer, app_dir: Path) -> None:
    server = _failing_server(make_server, app_dir)
    run_id, line = _run_outer(server)
    assert re.search(
        r" error=TaskRunError: Subtask 'convert' \(trn-\w+\) failed: "
        r"ValueError: invalid literal for int\(\) with base 10: 'x1'$",
        line,
    ), line
    assert not any("Traceback" in ln or "  | " in ln for ln in server.output), server.output
    # The traceback (the user's frames) is in the run's stderr log for later.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        logs = client.get("/v1/logs", params={"taskRun": run_id}).json()["logs"]
    text = "".join(log["message"] for log in logs)
    assert f"line {OUTER_LINE}, in outer" in text
    frames = [ln for ln in text.splitlines() if ln.lstrip().startswith("File ")]
    assert frames, text
    assert not any("render_sdk" in ln for ln in frames), frames


# --------------------------------------------------------------------------- banner


def test_banner_curl_starts_the_first_task_and_it_completes(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "tasks.py", tmp_path / "tasks.py")
    with LocalServer(app="tasks:app", cwd=tmp_path, extra_args=["--no-reload"]) as server:
        line = server.wait_for_output(r"^Try: curl ")
        argv = shlex.split(line.removeprefix("Try: "))
        assert argv[:3] == ["curl", "-X", "POST"]
        method, url = argv[2], argv[3]
        headers = dict(h.split(": ", 1) for flag, h in itertools.pairwise(argv) if flag == "-H")
        body = argv[argv.index("-d") + 1]
        # The first task of examples/tasks.py is square(a: int): the input must be one int.
        assert json.loads(body) == {"task": "square", "input": [3]}
        with httpx.Client(timeout=30) as client:
            response = client.request(method, url, headers=headers, content=body)
        assert response.status_code == 202, response.text
        with httpx.Client(base_url=server.url, timeout=30) as client:
            done = wait_terminal(client, response.json()["id"])
        assert done["status"] == "completed"
        assert done["results"] == [9]


# --------------------------------------------------------------------------- failed reload


def _info(server: LocalServer) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        info: dict[str, Any] = client.get("/v1/dashboard/info").json()
    return info


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "spawn"])
def test_failed_reload_says_what_serves_runs(
    make_server: MakeServer, app_dir: Path, warm: bool
) -> None:
    server = make_server(warm=warm, extra_args=["--registration-timeout", "20"])
    before = _info(server)
    assert (before["registrationError"], before["serving"]) == (None, "current")
    assert before["registeredAt"].endswith("Z")
    source = app_dir / "tasks.py"
    good = source.read_text()
    source.write_text(good + "\n\ndef oops(:\n")  # a syntax error, typed mid-session
    server.wait_for_output(r"^  \| SyntaxError: ", timeout=60)
    line = server.wait_for_output(r"^Reload failed; ", timeout=60)
    count = len(before["tasks"])
    until = (
        "until tasks:app registers again: fix the error above (it re-registers when files change)"
    )
    if warm:
        assert line.startswith(f"Reload failed; serving the last good version ({count} task(s), ")
    else:
        assert line.startswith(f"Reload failed; the last good {count} task(s) stay listed, ")
        assert "each run starts the current source and fails" in line
    assert line.endswith(until), line
    info = _info(server)
    assert (
        info["registrationError"] == "start command exited before registering tasks: exit status 1"
    )
    assert f'File "{source}", line ' in info["registrationOutput"]
    assert "SyntaxError" in info["registrationOutput"]
    assert info["serving"] == ("last-good" if warm else "broken")
    assert info["registeredAt"] == before["registeredAt"]
    assert [t["name"] for t in info["tasks"]] == [t["name"] for t in before["tasks"]]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        done = wait_terminal(client, start_run(client, "square", [5]))
        if warm:
            # The last good version's import serves the run.
            assert (done["status"], done["results"]) == ("completed", [25])
        else:
            # Each attempt starts the broken source: the run fails, as the line said.
            assert done["status"] == "failed"
    source.write_text(good)
    server.wait_for_output(r"^Reloaded: \d+ task\(s\)", timeout=60)
    fixed = _info(server)
    assert (fixed["registrationError"], fixed["serving"]) == (None, "current")
    assert parse_timestamp(fixed["registeredAt"]) > parse_timestamp(before["registeredAt"])
