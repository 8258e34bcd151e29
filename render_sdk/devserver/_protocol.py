"""The local task server's protocol logic, without I/O.

Run state machine, retry delays, slug resolution, status lines, SSE framing, cursor
encoding, env files and command parsing. The async shells (store, orchestrator, API)
call these; the unit tests drive them directly.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as _dt
import enum
import os
import re
import secrets
import shlex
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from .._wire import EVENTS_REPLAY_HEADER, EVENTS_REPLAY_TERMINAL
from ..models import TERMINAL_STATUSES, TaskRunStatus, status_text
from ..models.tasksocket import TaskParameter
from ._constants import DEFAULT_RETRY_FACTOR

# --------------------------------------------------------------------------- ids

_B32HEX: Final = "0123456789abcdefghijklmnopqrstuv"
_id_lock = threading.Lock()
_id_counter = secrets.randbelow(1 << 24)
_id_machine = secrets.token_bytes(3)


def _xid() -> str:
    """A 20-character, time-sortable id in the xid layout (seconds, machine, pid, counter)."""
    global _id_counter
    with _id_lock:
        _id_counter = (_id_counter + 1) & 0xFFFFFF
        counter = _id_counter
    raw = (
        int(time.time()).to_bytes(4, "big")
        + _id_machine
        + (os.getpid() & 0xFFFF).to_bytes(2, "big")
        + counter.to_bytes(3, "big")
    )
    value = int.from_bytes(raw, "big")
    # 96 bits as 20 base32hex digits: the top digit carries the spare bits.
    return "".join(_B32HEX[(value >> (5 * i)) & 31] for i in reversed(range(20)))


def new_task_id() -> str:
    """A fresh task id: ``tsk-<xid>``."""
    return "tsk-" + _xid()


def new_run_id() -> str:
    """A fresh task run id: ``trn-<xid>`` (the Render CLI checks the prefix)."""
    return "trn-" + _xid()


# --------------------------------------------------------------------------- run states


#: A run's status is the schema's enum (proto ``render.workflows.v1.TaskRunStatus``); the
#: local server produces PENDING, RUNNING, COMPLETED, FAILED and CANCELED.
RunStatus = TaskRunStatus


def is_terminal(status: TaskRunStatus) -> bool:
    """True once nothing can change a run in ``status``."""
    return status in TERMINAL_STATUSES


_STATUS_BY_TEXT: Final = {
    status_text(s): s for s in TaskRunStatus if s != TaskRunStatus.UNSPECIFIED
}


def status_from_text(text: str) -> TaskRunStatus:
    """The status stored as ``text`` (its wire spelling, e.g. ``"completed"``)."""
    try:
        return _STATUS_BY_TEXT[text]
    except KeyError:
        raise ValueError(f"unknown run status {text!r}") from None


class RunEvent(str, enum.Enum):
    """What can happen to a run."""

    START_ATTEMPT = "start_attempt"
    COMPLETE = "complete"
    FAIL_RETRY = "fail_retry"
    FAIL_FINAL = "fail_final"
    CANCEL = "cancel"


class InvalidTransition(Exception):
    """The event is not allowed in the run's current status."""

    def __init__(self, status: RunStatus, event: RunEvent) -> None:
        super().__init__(f"cannot {event.value} a run that is {status_text(status)}")
        self.status = status
        self.event = event


_TRANSITIONS: Final[Mapping[tuple[RunStatus, RunEvent], RunStatus]] = {
    (RunStatus.PENDING, RunEvent.START_ATTEMPT): RunStatus.RUNNING,
    (RunStatus.RUNNING, RunEvent.COMPLETE): RunStatus.COMPLETED,
    (RunStatus.RUNNING, RunEvent.FAIL_RETRY): RunStatus.PENDING,
    (RunStatus.RUNNING, RunEvent.FAIL_FINAL): RunStatus.FAILED,
    (RunStatus.PENDING, RunEvent.CANCEL): RunStatus.CANCELED,
    (RunStatus.RUNNING, RunEvent.CANCEL): RunStatus.CANCELED,
}


def transition(status: RunStatus, event: RunEvent) -> RunStatus:
    """The status after ``event``.

    Raises:
        InvalidTransition: The event is not allowed now (terminal runs never change).
    """
    try:
        return _TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event) from None


# --------------------------------------------------------------------------- retries


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """A task's retry policy as registered.

    Attributes:
        max_retries: Retries after the first attempt (0: none).
        wait_duration_ms: The wait before the first retry.
        factor: Each later wait is the previous one times this.
    """

    max_retries: int = 0
    wait_duration_ms: int = 0
    factor: float = DEFAULT_RETRY_FACTOR

    @classmethod
    def from_wire(cls, max_retries: int, wait_duration_ms: int, factor: float) -> RetryPolicy:
        """Normalise a registration's values: negatives are 0; a missing factor is Render's 2."""
        return cls(
            max_retries=max(0, int(max_retries)),
            wait_duration_ms=max(0, int(wait_duration_ms)),
            factor=float(factor) if factor and factor > 0 else DEFAULT_RETRY_FACTOR,
        )


def retry_delay_ms(policy: RetryPolicy, attempts_done: int) -> float | None:
    """Milliseconds to wait before the next attempt, or None when no retry is left.

    Render's formula: after ``n`` failed attempts (n >= 1) the run retries while
    ``n - 1 < max_retries``, waiting ``wait_duration_ms * factor ** (n - 1)``.
    """
    retries_done = attempts_done - 1
    if retries_done >= policy.max_retries:
        return None
    return float(policy.wait_duration_ms) * policy.factor ** max(0, retries_done)


# --------------------------------------------------------------------------- slugs


def slug_candidates(slug: str) -> tuple[str, ...]:
    """The names a task slug may mean: ``name``, ``workflow/name`` or ``workflow/name:version``.

    The exact text comes first (task ids and names containing ``/`` or ``:`` win), then
    the part after the last ``/`` with any ``:version`` removed.
    """
    slug = slug.strip()
    out = [slug]
    tail = slug.rsplit("/", 1)[-1]
    if "/" in slug and tail not in out:
        out.append(tail)
    if ":" in tail:
        bare = tail.split(":", 1)[0]
        if bare and bare not in out:
            out.append(bare)
    return tuple(c for c in out if c)


def resolve_slug(slug: str, by_name: Mapping[str, str], by_id: Mapping[str, str]) -> str | None:
    """Resolve a slug or task id to a task name (``by_name``: name→id, ``by_id``: id→name)."""
    if slug in by_id:
        return by_id[slug]
    for candidate in slug_candidates(slug):
        if candidate in by_name:
            return candidate
    return None


# --------------------------------------------------------------------------- cursors

_CURSOR_PREFIX: Final = "c1."


class InvalidCursor(ValueError):
    """A pagination cursor this server did not issue."""


def encode_cursor(seq: int) -> str:
    """The opaque cursor of the list item with sequence number ``seq``."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The sequence number inside a cursor.

    Raises:
        InvalidCursor: The text is not a cursor this server issued.
    """
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor(f"invalid cursor {cursor!r}") from None
    if not text.startswith(_CURSOR_PREFIX) or not text[len(_CURSOR_PREFIX) :].isdigit():
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    return int(text[len(_CURSOR_PREFIX) :])


# --------------------------------------------------------------------------- SSE

SSE_HEADERS: Final[Mapping[str, str]] = {
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
    # Every stream starts with the requested runs already terminal (SSEResponse._initial).
    EVENTS_REPLAY_HEADER: EVENTS_REPLAY_TERMINAL,
}
SSE_PING: Final = b": ping\n\n"


def sse_preamble(retry_ms: int) -> bytes:
    """The first write of every stream: the client's reconnect delay."""
    return f"retry: {retry_ms}\n\n".encode()


def sse_frame(event_id: int, name: str, data: bytes) -> bytes:
    """One event: ``id``, ``event`` and one ``data`` line (data must be one JSON line)."""
    if b"\n" in data or b"\r" in data:
        raise ValueError("SSE data must be a single line")
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), data)


def sse_event_name(status: RunStatus) -> str:
    """The event name for a run in ``status``: every terminal outcome is ``task.completed``.

    The official clients read the outcome from the data (status, error); the TypeScript
    SDK listens for task.completed, not task.succeeded, so no other terminal name is used.
    """
    if is_terminal(status):
        return "task.completed"
    return f"task.{status_text(status)}"


def split_ids(values: Iterable[str]) -> list[str]:
    """Ids given repeated (``?a=1&a=2``), comma-separated (``?a=1,2``) or both; order kept."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in seen:
                seen.add(part)
                out.append(part)
    return out


# --------------------------------------------------------------------------- banner

#: A sample argument per type hint, for the start-up banner's example request.
_SAMPLE_BY_TYPE: Final[Mapping[str, object]] = {
    "int": 3,
    "float": 1.5,
    "str": "hello",
    "bool": True,
    "list": [],
    "tuple": [],
    "set": [],
    "dict": {},
    "bytes": "",
}


def _sample(type_hint: str | None) -> object:
    if not type_hint:
        return None
    # "typing.Optional[int]" / "int | None" / "list[int]" / "List[int]": the first
    # alternative's outer type decides.
    hint = type_hint.strip().removeprefix("typing.")
    if hint.startswith("Optional[") and hint.endswith("]"):
        hint = hint[len("Optional[") : -1]
    hint = hint.split("|")[0].strip().split("[")[0].strip().lower()
    return _SAMPLE_BY_TYPE.get(hint)


def example_input(parameters: Sequence[TaskParameter]) -> list[object]:
    """Positional arguments that a task with ``parameters`` accepts, for an example call.

    Every parameter up to the first one with a default gets a sample of its type hint
    (``int`` → 3, ``str`` → "hello", ...; ``null`` when there is no usable hint); the
    ones with defaults are left to their defaults.
    """
    values: list[object] = []
    for param in parameters:
        if param.has_default:
            break
        values.append(_sample(param.type))
    return values


# --------------------------------------------------------------------------- logs


@dataclasses.dataclass(frozen=True)
class LogFilter:
    """The filters of GET /v1/logs."""

    run_ids: frozenset[str] = frozenset()
    texts: tuple[str, ...] = ()
    start: _dt.datetime | None = None
    end: _dt.datetime | None = None

    def matches(self, run_id: str, message: str, ts: _dt.datetime) -> bool:
        """True when a log line passes every filter (texts are OR-ed substrings)."""
        if self.run_ids and run_id not in self.run_ids:
            return False
        if self.start is not None and ts < self.start:
            return False
        if self.end is not None and ts > self.end:
            return False
        return not self.texts or any(t in message for t in self.texts)


_RELATIVE_TIME: Final = re.compile(r"now(?:-(\d+)([smhd]))?$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_param(text: str, now: _dt.datetime) -> _dt.datetime:
    """An RFC 3339 time, or ``now`` / ``now-10s`` (the Render CLI sends that form).

    Raises:
        ValueError: Neither form.
    """
    from .. import _wire

    m = _RELATIVE_TIME.match(text.strip())
    if m:
        if not m.group(1):
            return now
        return now - _dt.timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    return _wire.parse_timestamp(text.strip())


# --------------------------------------------------------------------------- env files and commands

_ENV_LINE: Final = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$")
_ENV_REF: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class EnvFileError(ValueError):
    """An env file line that is neither ``KEY=value``, a comment nor blank."""


def parse_env_file(text: str, *, name: str = ".env") -> dict[str, str]:
    """Parse dotenv text: ``KEY=value``, ``export KEY=value``, quotes, ``#`` comments.

    Double-quoted values expand ``\\n`` escapes and ``${VAR}`` references to earlier keys;
    single-quoted values are literal; unquoted values end at `` #``.

    Raises:
        EnvFileError: A line that cannot be parsed (the message names file and line).
    """
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _ENV_LINE.match(line)
        if m is None:
            raise EnvFileError(f"{name}:{i}: expected KEY=value, got {line.strip()!r}")
        key, value = m.group(1), m.group(2).strip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            body = value[1:]
            # A quoted value may span lines until its closing quote.
            while not _closes(body, quote) and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            if not _closes(body, quote):
                raise EnvFileError(f"{name}:{i}: unterminated {quote} quote for {key}")
            end = _close_index(body, quote)
            value = body[:end]
            if quote == '"':
                value = (
                    value.replace("\\n", "\n")
                    .replace("\\t", "\t")
                    .replace('\\"', '"')
                    .replace("\\\\", "\\")
                )
                value = _expand(value, out)
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
            value = _expand(value, out)
        out[key] = value
    return out


def _close_index(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if body[i] == "\\" and quote == '"':
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _closes(body: str, quote: str) -> bool:
    return _close_index(body, quote) >= 0


def _expand(value: str, known: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        return known.get(key, os.environ.get(key, ""))

    return _ENV_REF.sub(sub, value)


def parse_command(args: Sequence[str]) -> list[str]:
    """The child command from the CLI's trailing arguments.

    ``module:app`` alone is shorthand for ``render-workflows module:app``; a single
    argument containing whitespace (``-- "python main.py"``) is split like a shell would.

    Raises:
        ValueError: No command.
    """
    args = list(args)
    if not args:
        raise ValueError(
            "a command is required: render-workflows dev main:app "
            "(module:app) or render-workflows dev -- <command ...>"
        )
    if len(args) == 1 and any(c.isspace() for c in args[0]):
        args = shlex.split(args[0])
        if not args:
            raise ValueError(
                "a command is required: render-workflows dev main:app "
                "(module:app) or render-workflows dev -- <command ...>"
            )
    return args


_APP_SPEC: Final = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_app_spec(text: str) -> bool:
    """True for ``module:app`` (the shorthand of ``render-workflows dev``)."""
    return bool(_APP_SPEC.match(text))


def command_source(command: Sequence[str]) -> str:
    """What the startup banner names: the last argument if it looks like a file or app."""
    last = command[-1] if command else ""
    if "." in last or ":" in last:
        return os.path.basename(last) if "/" in last else last
    return " ".join(command)
