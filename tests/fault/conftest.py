"""The fault-and-load suite's fixtures and its report.

Each scenario records its figures (runs accepted, lost, stuck, the server's peak RSS,
wall time, and what else it measured) through the ``figures`` fixture. At the end of the
session they are printed, one line per scenario, in pytest's terminal summary (so CI logs
show them) and written to ``test-artifacts/fault/report.json`` and ``report.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from fault_support import FAULT_APP, FaultServer, Figures, Reaper

ROOT = Path(__file__).resolve().parents[2]
#: Where the figures of the last run of the suite are written (gitignored).
REPORT_DIR = ROOT / "test-artifacts" / "fault"


_FIGURES = pytest.StashKey[list[Figures]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Figures]]:
    """``figures("name")`` starts a scenario's record (and its clock)."""
    made: list[Figures] = []

    def start(scenario: str) -> Figures:
        made.append(Figures(scenario))
        return made[-1]

    yield start
    for fig in made:
        if not fig.passed:
            fig.wall_s = round(time.monotonic() - fig._started, 1)
    request.config.stash.setdefault(_FIGURES, []).extend(made)


@pytest.fixture
def fault_dir(tmp_path: Path) -> Path:
    """The test's app directory, holding fault_app.py."""
    (tmp_path / "fault_app.py").write_text(FAULT_APP)
    return tmp_path


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    """Kills, at teardown, what a SIGKILLed server left running."""
    r = Reaper()
    yield r
    r.reap()


@pytest.fixture
def fault_server(fault_dir: Path, reaper: Reaper) -> Iterator[Callable[..., FaultServer]]:
    """Start FaultServers in fault_dir (state in fault_dir/state); all stopped at the end."""
    servers: list[FaultServer] = []

    def make(**kwargs: Any) -> FaultServer:
        kwargs.setdefault("cwd", fault_dir)
        kwargs.setdefault("state_dir", fault_dir / "state")
        server = FaultServer(**kwargs)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        if server.pid is not None:
            reaper.adopt([server.pid])
        server.stop()


def _markdown(figs: list[Figures]) -> str:
    lines = [
        "| scenario | runs | lost | stuck | peak RSS (MiB) | wall (s) | also measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figs:
        extra = ", ".join(f"{k} {v}" for k, v in f.extra.items())
        lines.append(
            f"| {f.scenario}{'' if f.passed else ' (FAILED)'} | {f.runs} | {f.lost} | "
            f"{f.stuck} | {f.peak_rss_mib:g} | {f.wall_s:g} | {extra} |"
        )
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One line per fault scenario that ran, and the report files."""
    figs = config.stash.get(_FIGURES, [])
    if not figs:
        return
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    data = [{k: v for k, v in asdict(f).items() if not k.startswith("_")} for f in figs]
    (REPORT_DIR / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    (REPORT_DIR / "report.md").write_text(_markdown(figs))
    terminalreporter.section("fault-and-load figures")
    for fig in figs:
        terminalreporter.write_line(fig.summary())
    terminalreporter.write_line(f"(written to {REPORT_DIR.relative_to(ROOT)}/report.md)")
