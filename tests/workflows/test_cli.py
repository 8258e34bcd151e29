"""The render-workflows command: every error path, run as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from render_sdk.workflows import _cli

from .conftest import APPS, RENDER_WORKFLOWS, runner_env


def cli(*args: str, cwd: Path = APPS, mode: str | None = None, socket: str | None = None):
    return subprocess.run(
        [RENDER_WORKFLOWS, *args],
        cwd=cwd,
        env=runner_env(mode, socket),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Error: missing <module>:<app> argument; run `render-workflows main:app`"),
        (("sample_app",), "Error: Invalid app path 'sample_app': expected <module>:<app_variable>"),
        ((":app",), "Error: Invalid app path ':app'"),
        (("sample_app:",), "Error: Invalid app path 'sample_app:'"),
        (
            ("no_such_module:app",),
            "Error: Could not import module 'no_such_module': ModuleNotFoundError: "
            "No module named 'no_such_module' (looked in ",
        ),
        (
            ("pkg.missing:app",),
            "Error: Could not import module 'pkg.missing': ModuleNotFoundError: "
            "No module named 'pkg' (looked in ",
        ),
        (("sample_app:nope",), "Error: Module 'sample_app' has no attribute 'nope'"),
        (
            ("sample_app:square",),
            "Error: 'square' in module 'sample_app' is a Task, which has no start() method; "
            "expected a Workflows instance",
        ),
        (("os:path",), "Error: 'path' in module 'os' is a module, which has no start() method"),
    ],
)
def test_error_paths_print_one_line_and_exit_1(args: tuple[str, ...], message: str) -> None:
    done = cli(*args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(message), done.stderr


@pytest.mark.parametrize(
    ("mode", "socket", "message"),
    [
        (None, "/tmp/x.sock", "Error: RENDER_SDK_MODE environment variable is required"),
        ("run", None, "Error: RENDER_SDK_SOCKET_PATH environment variable is required"),
        ("serve", "/tmp/x.sock", "Error: Unknown mode: 'serve'; RENDER_SDK_MODE must be"),
    ],
)
def test_environment_errors_are_one_line(
    mode: str | None, socket: str | None, message: str
) -> None:
    done = cli("sample_app:app", mode=mode, socket=socket)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(message)


def test_module_import_from_the_working_directory_and_last_colon(tmp_path: Path) -> None:
    (tmp_path / "weird").mkdir()
    (tmp_path / "weird" / "__init__.py").write_text("")
    (tmp_path / "weird" / "mod.py").write_text(
        "class App:\n    def start(self):\n        print('started')\n"
        "holder = type('H', (), {'app': App()})\n"
    )
    done = cli("weird.mod:holder.app", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "started\n"
    done = cli("weird:mod:app", cwd=tmp_path)  # split on the last colon
    assert done.stderr.startswith("Error: Could not import module 'weird:mod'")


def test_import_error_shows_the_users_frames(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import conf\n")
    (tmp_path / "conf.py").write_text("\n\nvalue = {'a': 1}['b']\n")
    done = cli("app:app", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: Could not import module 'app':",
        "Traceback (most recent call last):",
        f'  File "{tmp_path / "app.py"}", line 1, in <module>',
        "    import conf",
        f'  File "{tmp_path / "conf.py"}", line 3, in <module>',
        "    value = {'a': 1}['b']",
        *done.stderr.splitlines()[6:-1],  # the carets Python 3.11+ adds under the error
        "KeyError: 'b'",
    ]
    assert all(set(line.strip()) <= {"^", "~"} for line in done.stderr.splitlines()[6:-1])


def test_help() -> None:
    done = cli("--help")
    assert done.returncode == 0
    assert "render-workflows <module>:<app>" in done.stdout
    for command in ("dev ", "tasks list", "start <task>", "runs list|show|cancel", "logs <run-id>"):
        assert f"  {command}" in done.stdout


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "render_sdk.workflows", "sample_app:nope"],
        cwd=APPS,
        env=runner_env(None, None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == "Error: Module 'sample_app' has no attribute 'nope'\n"


def test_missing_subcommand_module_gives_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli._delegate("render_sdk.not_installed._cli", [], "the thing")
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: the thing (render_sdk.not_installed._cli) is not available")


def test_subcommands_dispatch_lazily() -> None:
    """`dev` goes to the devserver CLI and `tasks` to the client CLI, each with its argv."""
    code = (
        "import sys, types\n"
        "from render_sdk.workflows import _cli\n"
        "fakes = (('render_sdk.devserver._cli', 'dev'), ('render_sdk.client._cli', 'cl'))\n"
        "for name, rec in fakes:\n"
        "    m = types.ModuleType(name)\n"
        "    m.main = (lambda rec: lambda argv: print(rec, argv) or 7)(rec)\n"
        "    sys.modules[name] = m\n"
        "print(_cli.main(['rw', 'dev', '--port', '0', 'x:app']))\n"
        "print(_cli.main(['rw', 'tasks', 'list']))\n"
        "print(_cli.main(['rw', 'logs']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == [
        "dev ['--port', '0', 'x:app']",
        "7",
        "cl ['tasks', 'list']",
        "7",
        "cl ['logs']",
        "7",
    ]
