"""examples/tasks.py plus one task that runs long enough to be canceled (TS e2e test)."""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))

from tasks import app

__all__ = ["app"]


@app.task
async def nap(seconds: float) -> float:
    """Sleep, then return how long."""
    await asyncio.sleep(seconds)
    return seconds
