"""The README's self-contained examples run as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_quick_start_has_exactly_two_commands() -> None:
    section = README.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["python3 build_tools/dev.py demo", "python3 build_tools/dev.py test"]


def test_local_server_testing_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (snippet,) = [b for b in python_blocks() if "LocalServer" in b]
    shutil.copy(ROOT / "examples" / "tasks.py", tmp_path / "main.py")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    test = namespace["test_add_squares"]
    assert callable(test)
    test(tmp_path / "state")
