"""Payload limits shared by the client, the task runner and the local task server.

Each process checks them before it sends anything (the client before ``POST
/v1/task-runs``, the runner before a subtask call or its result callback) and the local
server checks them again on arrival, so a payload over a limit fails at once with a
message naming its size and the limit, whichever SDK sent it. Imports nothing: the task
worker reads it too.
"""

from __future__ import annotations

from typing import Final

#: Largest encoded JSON input of a task run (``POST /v1/task-runs``'s ``input``, a
#: subtask call's arguments). Render documents a 4 MB limit on task arguments.
MAX_INPUT_BYTES: Final = 4 * 1024 * 1024
#: Largest encoded JSON result of a task run (kept to the same order as inputs, and well
#: under the local server's task-socket body cap).
MAX_RESULT_BYTES: Final = 10 * 1024 * 1024


#: What an over-limit message suggests instead.
STORE_ELSEWHERE: Final = (
    "store large data elsewhere (for example object storage) and pass a reference to it"
)


def over_limit(what: str, size: int, limit: int) -> str | None:
    """The message for a ``what`` of ``size`` encoded bytes, or None within ``limit``."""
    if size <= limit:
        return None
    return f"{what} is {size} bytes as JSON, over the limit of {limit} bytes; {STORE_ELSEWHERE}"
