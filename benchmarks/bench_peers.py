"""Peers side by side: what a Python developer would pick instead for local task execution.

Each peer lives in its own benchmark-only virtualenv (``.venvs/bench-peers/<module>``), created
on first use with pip, so neither the project's ``.venv`` nor the CI gate depends on them, and
one peer's optional dependencies cannot slow another's import (Huey imports redis when present).
A peer that cannot be installed or imported is skipped with a note instead of failing the run.

Measured so far: W4, ``python -c "import <sdk>"`` wall time, ours and every peer in the same
interleaved rounds (one sample of each per round, medians over rounds), so machine noise hits
all of them alike. Each row's ratio compares ours to one peer (above 1: we are faster).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

from benchmarks._harness import Row, repeats

ROOT = Path(__file__).resolve().parent.parent
PEER_VENVS = ROOT / ".venvs" / "bench-peers"
OURS_PY = ROOT / ".venv" / "bin" / "python"

#: Peer name -> (pip requirement, module a user imports).
PEERS: dict[str, tuple[str, str]] = {
    "Huey (SQLite)": ("huey", "huey"),
    "DBOS (SQLite)": ("dbos", "dbos"),
    "Celery + Redis": ("celery[redis]", "celery"),
}

#: Rounds of W4 (each round times ours and every peer once, in turn).
MIN_ROUNDS = 5


def _imports(python: Path, module: str) -> bool:
    result = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
    return result.returncode == 0


def _peer_python(module: str) -> Path:
    return PEER_VENVS / module / "bin" / "python"


def _ensure_peer_venvs() -> list[str]:
    """Create each peer's virtualenv once and install what it can; return skip notes."""
    notes: list[str] = []
    for name, (requirement, module) in PEERS.items():
        python = _peer_python(module)
        if python.exists() and _imports(python, module):
            continue
        venv.EnvBuilder(with_pip=True, clear=True).create(python.parent.parent)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", requirement],
            capture_output=True,
            check=False,
        )
        if not _imports(python, module):
            notes.append(f"{name} skipped: pip install {requirement} failed")
    return notes


def _import_time(python: Path, module: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(python), "-c", f"import {module}"], check=True, capture_output=True)
    return time.perf_counter() - started


def run(quick: bool) -> list[Row]:
    notes = _ensure_peer_venvs()
    for note in notes:
        print(note, file=sys.stderr)
    candidates: dict[str, tuple[Path, str]] = {"ours": (OURS_PY, "render_sdk")}
    for name, (_, module) in PEERS.items():
        if _imports(_peer_python(module), module):
            candidates[name] = (_peer_python(module), module)
    for python, module in candidates.values():  # warm OS caches and bytecode once
        _import_time(python, module)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(max(MIN_ROUNDS, repeats(quick) * 2)):
        for name, (python, module) in candidates.items():  # interleaved rounds
            samples[name].append(_import_time(python, module))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ours = medians.pop("ours")
    name = "W4 python -c 'import <sdk>'"
    note = "; ".join(notes)
    if not medians:
        return [Row("peers", name, ours, note=note or "no peer could be installed")]
    return [
        Row("peers", name, ours, baseline=peer, baseline_name=peer_name, note=note)
        for peer_name, peer in sorted(medians.items(), key=lambda item: item[1])
    ]
