"""The peers benchmark's harness runs end to end and fills its table (no timing assertions).

It runs ``benchmarks/bench_peers.py`` with tiny workloads for ours and Huey (the cheapest
peer: pure Python, SQLite; its virtualenv comes from ``build_tools/dev.py externals``).
"""

from __future__ import annotations

import pytest

from benchmarks import bench_peers as B
from benchmarks.peers._common import KEYS, Sizes

TINY = Sizes(w1=3, w2=12, w2_concurrency=4, w3=4)


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("bench_peers_for_tests")
def test_quick_run_fills_every_column_for_ours_and_huey() -> None:
    systems, notes = B.run_peers(sizes=TINY, rounds=1, names=["ours", "huey"], seed=1)
    names = [s.name for s in systems]
    assert names[0] == B.OURS
    assert any(name.startswith("Huey") for name in names)
    assert all(s.failure is None for s in systems), [s.failure for s in systems]
    for system in systems:
        assert len(system.results) == 1
        assert set(KEYS) | {"w4_s"} <= set(system.results[0]), system.name
        assert all(value > 0 for value in system.results[0].values()), system.results

    lines = B.report(systems, TINY, notes)
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["workload", *names, "best peer", "ours ÷ best peer"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:8]]
    assert [row[0].split(" ")[0] for row in rows] == ["W1", "W2", "W2", "W3", "W4", "W5"]
    for row in rows:
        assert len(row) == len(header)
        assert "-" not in row, row  # every system measured every workload; ratios computed
        assert row[-1].endswith("x")
    targets = "\n".join(lines)
    for target in B.TARGETS:
        assert target.text in targets
    # Each target ours was measured for is judged; without the reuse mode its rows say so.
    assert "PASS" in targets or "FAIL" in targets
    if B.OURS_REUSE not in names:
        assert "not measured" in targets
        assert any("reuse_workers" in note for note in notes)

    # benchmarks/run.py's rows: every workload of each mode of ours, against the best peer.
    modes = [m for m in (B.OURS, B.OURS_REUSE) if m in names]
    summary = B.rows(systems, TINY)
    assert [row.note for row in summary] == [m for _ in B.WORKLOADS for m in modes]
    assert all(row.baseline is not None and row.ratio is not None for row in summary)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("reuse", [False, True], ids=["per-attempt", "reusable"])
def test_cpu_split_reports_each_process_per_run(reuse: bool) -> None:
    from benchmarks import cpu_split

    lines = cpu_split.measure(reuse=reuse, runs=30, in_flight=4, profile=False)
    assert lines[0].startswith("reusable workers" if reuse else "one process per attempt")
    figures = {}
    for line in lines[1:]:
        name, _, rest = line.strip().partition(" ")
        if name == "zygote":
            rest = rest.rpartition(") ")[2]
        figures[name] = float(rest.split()[0])
    assert set(figures) == {"client", "server", "zygote", "workers"}
    assert figures["client"] > 0
    assert figures["server"] > 0
    assert all(value >= 0 for value in figures.values()), figures
    if not reuse:
        # 30 forked attempts, reaped by the zygote: their time is its children's time
        # (/proc counts in clock ticks, too coarse for 30 reused starts of a trivial task).
        assert figures["workers"] > 0
