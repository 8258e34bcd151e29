"""Run every benchmark and print one table of medians with same-run baselines.

Usage: python benchmarks/run.py [--quick] [--only NAME ...]

Each module ``benchmarks/bench_*.py`` contributes rows; see benchmarks/_harness.py.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import Row  # noqa: E402


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        if value >= 1:
            return f"{value:.2f} s"
        if value >= 1e-3:
            return f"{value * 1e3:.2f} ms"
        return f"{value * 1e6:.1f} µs"
    return f"{value:,.1f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", nargs="*", default=[], help="bench module names (e.g. codec)")
    args = parser.parse_args()
    # Measured processes cache their bytecode as on a user's machine (see bench_peers.BENCH_ENV).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    modules = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m.removeprefix("bench_") in args.only]
    rows: list[Row] = []
    failed = []
    for name in modules:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(importlib.import_module(f"benchmarks.{name}").run(args.quick))
        except Exception:
            traceback.print_exc()
            failed.append(name)
    header = ("group", "benchmark", "ours", "baseline", "baseline is", "ratio", "note")
    table = [header] + [
        (
            r.group,
            r.name,
            fmt(r.ours, r.unit),
            fmt(r.baseline, r.unit),
            r.baseline_name,
            f"{r.ratio:.1f}x" if r.ratio is not None else "-",
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
