"""The built wheel ships the dashboard, and a server run from that wheel serves it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ("index.html", "app.js", "app.css")

_SERVE = """
    import sys
    from pathlib import Path

    import httpx
    import render_sdk
    from render_sdk.testing import LocalServer

    site = Path(sys.argv[1])
    # Imported from the unpacked wheel, not from the source tree.
    assert Path(render_sdk.__file__).is_relative_to(site), render_sdk.__file__
    Path("tinyapp.py").write_text(
        "from render_sdk import Workflows\\napp = Workflows()\\n"
        "@app.task\\ndef one() -> int:\\n    return 1\\n"
    )
    with LocalServer(app="tinyapp:app", cwd=".") as server:
        for name, path in [("index.html", "/"), ("app.js", "/_dashboard/app.js"),
                           ("app.css", "/_dashboard/app.css")]:
            resp = httpx.get(server.url + path)
            assert resp.status_code == 200, (path, resp.status_code)
            sys.stdout.buffer.write(name.encode() + b" " + str(len(resp.content)).encode() + b"\\n")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # No build isolation: hatchling is a dev dependency, so no network is needed.
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", str(ROOT)),
            *("--no-deps", "--no-build-isolation", "-q", "-w", str(out)),
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("render_sdk-*.whl")
    return built


def test_wheel_contains_the_dashboard_assets(wheel: Path) -> None:
    source = ROOT / "render_sdk" / "devserver" / "_dashboard"
    with zipfile.ZipFile(wheel) as zf:
        for name in ASSETS:
            assert (
                zf.read(f"render_sdk/devserver/_dashboard/{name}") == (source / name).read_bytes()
            )


def test_a_server_installed_from_the_wheel_serves_the_dashboard(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    # The unpacked wheel first on the path (its dependencies come from this environment),
    # inherited by the server subprocess LocalServer starts.
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SERVE), str(site)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    source = ROOT / "render_sdk" / "devserver" / "_dashboard"
    assert done.stdout.split() == [
        part for name in ASSETS for part in (name, str(len((source / name).read_bytes())))
    ]
