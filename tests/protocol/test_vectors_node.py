"""Cross-check (c) from pytest: protobuf-es in Node decodes every golden vector.

The gate also runs ``node build_tools/node/check_vectors.mjs`` on its own; this test
makes a mismatch visible in a plain pytest run too (about a second).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._support import ROOT


def test_protobuf_es_decodes_every_golden_vector(node_packages: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the cross-language check")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [node, str(node_packages / "check_vectors.mjs")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all match" in result.stdout
