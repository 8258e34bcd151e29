"""mypy sees through @app.task: ``await square(3)`` is an ``int``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mypy import api


def test_task_decorator_types() -> None:
    target = Path(__file__).with_name("typing_check.py")
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--cache-dir",
            str(Path(tempfile.gettempdir()) / "render_sdk-typing-mypy-cache"),
            "--warn-unused-ignores",
            "--python-version",
            "3.11",
            str(target),
        ]
    )
    assert status == 0, stdout + stderr
    assert "Success" in stdout
