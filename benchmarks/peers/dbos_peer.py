"""DBOS with SQLite, in-process: workflows run on DBOS's thread pool in the client's process.

W3's parent is a workflow that starts its children as child workflows and waits for each.
W5 is this whole process (there is no separate server), after DBOS has launched.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    WARMUP_RUNS,
    blocking_workloads,
    emit,
    idle_rss_mib,
    parse_sizes,
)
from dbos import DBOS, DBOSConfig


@DBOS.workflow()
def noop(x: int) -> list[int]:
    return [x]


@DBOS.workflow()
def fan(n: int) -> list[int]:
    handles = [DBOS.start_workflow(noop, i) for i in range(n)]
    return [len([h.get_result() for h in handles])]


def main() -> None:
    args = parse_sizes()
    sizes = args.sizes
    workdir = Path(tempfile.mkdtemp(prefix="bench-dbos-"))
    try:
        config: DBOSConfig = {
            "name": "bench",
            "system_database_url": f"sqlite:///{workdir / 'dbos.sqlite'}",
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        logging.getLogger("dbos").setLevel(logging.WARNING)
        try:

            def one(i: int) -> None:
                value = DBOS.start_workflow(noop, i).get_result()
                if value != [i]:
                    raise RuntimeError(f"noop({i}) returned {value}")

            for i in range(WARMUP_RUNS):
                one(i)
            w5 = idle_rss_mib([os.getpid()])
            figures = blocking_workloads(
                one, lambda n: DBOS.start_workflow(fan, n).get_result(), sizes
            )
        finally:
            DBOS.destroy()
        emit(
            **figures,
            w5_mib=w5,
            note="in-process; W3 children are child workflows; W2 client CPU includes the runs",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
