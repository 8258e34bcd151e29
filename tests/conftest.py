"""Fixtures shared by the whole suite."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The official SDKs from PyPI, each in its own virtualenv (made by build_tools/dev.py setup).
OFFICIAL_VENVS = ROOT / ".venvs"


def _load_dev_script() -> ModuleType:
    """build_tools/dev.py as a module: it declares what the test externals are."""
    spec = importlib.util.spec_from_file_location("_dev_script", ROOT / "build_tools" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_DEV = _load_dev_script()
#: What build_tools/dev.py's `externals` step makes; each file exists once its part is set up.
EXTERNALS = (
    *(_DEV.OFFICIAL_VENVS / name / ".installed" for name in _DEV.OFFICIAL_SDKS),
    _DEV.NODE_DIR / "node_modules" / ".installed",
    *(_DEV.BENCH_PEER_VENVS / module / ".installed" for module in _DEV.BENCH_PEERS_FOR_TESTS),
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Install what the tests need beside the project (official SDKs, Node packages) when absent.

    ``python3 build_tools/dev.py setup`` does it up front; an environment made otherwise
    (``poetry install``, tox) gets it here, once, before any test's timeout starts.
    """
    if all(path.exists() for path in EXTERNALS):
        return
    print("\nsetting up the official SDKs and Node packages (build_tools/dev.py externals)")
    subprocess.run(
        [sys.executable, str(ROOT / "build_tools" / "dev.py"), "externals"], cwd=ROOT, check=False
    )


def ensure_externals(missing: Path) -> None:
    """Fail with what to run when a part of the test externals is still missing."""
    if not missing.exists():
        pytest.fail(f"{missing} is missing: run `python3 build_tools/dev.py externals`")


def official_python(name: str) -> Path:
    """The interpreter of an official SDK's virtualenv: "render_sdk-0.4.0" or "render-1.5.0"."""
    python = OFFICIAL_VENVS / name / "bin" / "python"
    ensure_externals(OFFICIAL_VENVS / name / ".installed")
    return python


@pytest.fixture
def sdk040_python() -> Path:
    """Python of the official render_sdk==0.4.0 virtualenv."""
    return official_python("render_sdk-0.4.0")


@pytest.fixture
def render150_python() -> Path:
    """Python of the official render==1.5.0 virtualenv."""
    return official_python("render-1.5.0")


@pytest.fixture
def node_packages() -> Path:
    """build_tools/node with its npm packages installed (protobuf-es, for the cross-check)."""
    node_dir = ROOT / "build_tools" / "node"
    ensure_externals(node_dir / "node_modules" / ".installed")
    return node_dir


@pytest.fixture
def bench_peers_for_tests() -> None:
    """The benchmark peers' virtualenvs that tests/test_bench_peers.py runs (Huey)."""
    for module in _DEV.BENCH_PEERS_FOR_TESTS:
        ensure_externals(_DEV.BENCH_PEER_VENVS / module / ".installed")
