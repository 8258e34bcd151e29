"""Resource limits of the local task server: fds, concurrent attempts, accept() errors.

Each running attempt holds a handful of file descriptors (its task socket, its process's
connections to it, two output pipes, a child watcher). Without a bound, a fan-out of a
few hundred subtasks exhausts ``ulimit -n`` and every accept() then fails. This module
derives the bound from the fd limit and the machine, raises the soft fd limit where the
hard limit allows, admits attempts through an :class:`AttemptGate`, and turns the event
loop's per-call accept() errors into one rate-limited line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ._constants import (
    ACCEPT_ERROR_LOG_INTERVAL_S,
    ATTEMPTS_PER_CPU,
    FD_RESERVE,
    FDS_PER_ATTEMPT,
    MIN_CONCURRENCY,
    NOFILE_TARGET,
)

__all__ = [
    "AcceptErrorFilter",
    "AttemptGate",
    "default_concurrency",
    "raise_nofile_limit",
]

logger = logging.getLogger("render_sdk.devserver")

#: The message asyncio's selector loop reports a failing accept() with (it retries later).
_ACCEPT_MESSAGE = "socket.accept() out of system resource"


def raise_nofile_limit(target: int = NOFILE_TARGET) -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard limit (capped at ``target``).

    Returns:
        The soft limit in effect afterwards (unchanged when raising is not allowed).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(hard, target)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return soft


def default_concurrency(*, nofile: int | None = None, cpus: int | None = None) -> int:
    """How many attempts may run at once: what the fd limit and the CPU count allow.

    Args:
        nofile: The soft fd limit (default: this process's).
        cpus: CPU cores (default: those this process may run on).
    """
    if nofile is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        nofile = NOFILE_TARGET if soft == resource.RLIM_INFINITY else soft
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cpus = cpus or os.cpu_count() or 1
    by_fds = (nofile - FD_RESERVE) // FDS_PER_ATTEMPT
    return max(MIN_CONCURRENCY, min(by_fds, cpus * ATTEMPTS_PER_CPU))


class AttemptGate:
    """Admits at most ``limit`` running attempts; the rest wait, first come first served.

    One exception keeps nested fan-outs from deadlocking: when every admitted attempt is
    blocked waiting for its subtasks (see :meth:`blocked`), the next waiter is admitted
    beyond the limit, because nothing could otherwise free a slot.

    Args:
        limit: The most attempts running at once (>= 1).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the concurrency limit must be at least 1, got {limit}")
        self.limit = limit
        self.running = 0
        self._blocked: dict[object, int] = {}
        self._waiters: OrderedDict[str, asyncio.Future[bool]] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Runs waiting for a slot."""
        return len(self._waiters)

    async def acquire(self, run_id: str) -> bool:
        """Wait for a slot; ``False`` when :meth:`withdraw` gave up the wait (canceled)."""
        if not self._waiters and self._free():
            self.running += 1
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[run_id] = future
        try:
            return await future
        except asyncio.CancelledError:
            if self._waiters.get(run_id) is future:
                del self._waiters[run_id]
            elif future.done() and not future.cancelled() and future.result():
                self.release()  # admitted just as the wait was cancelled
            raise

    def withdraw(self, run_id: str) -> None:
        """Stop waiting for ``run_id`` (it was canceled while pending)."""
        future = self._waiters.pop(run_id, None)
        if future is not None and not future.done():
            future.set_result(False)

    def release(self, key: object = None) -> None:
        """A running attempt (``key``, as given to :meth:`blocked`) ended: free its slot."""
        self.running -= 1
        self._blocked.pop(key, None)
        self._wake()

    def blocked(self, key: object, delta: int) -> None:
        """Count an attempt's long polls for subtasks (``+1`` on start, ``-1`` on end)."""
        count = self._blocked.get(key, 0) + delta
        if count > 0:
            self._blocked[key] = count
        else:
            self._blocked.pop(key, None)
        if delta > 0:
            self._wake()

    def _free(self) -> bool:
        return self.running < self.limit or len(self._blocked) >= self.running

    def _wake(self) -> None:
        while self._waiters and self._free():
            _, future = self._waiters.popitem(last=False)
            if future.done():
                continue
            self.running += 1
            future.set_result(True)


class AcceptErrorFilter:
    """An event-loop exception handler that rate-limits accept() failures.

    asyncio reports every failing accept() (EMFILE, ENFILE, ...) with a full traceback
    and retries a second later, per listening socket; with hundreds of sockets that is a
    storm. Those reports become one line per ``interval`` seconds naming how many were
    folded; everything else goes to the previous handler.
    """

    def __init__(
        self,
        *,
        interval: float = ACCEPT_ERROR_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._log = log or logger.warning
        self._last: float | None = None
        self._folded = 0
        self._previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Become ``loop``'s exception handler (chaining to the one it had)."""
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_MESSAGE:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._folded += 1
            return
        folded, self._folded, self._last = self._folded, 0, now
        more = f" ({folded} more since the last report)" if folded else ""
        self._log(f"accept() failed, retrying: {context.get('exception')}{more}")
