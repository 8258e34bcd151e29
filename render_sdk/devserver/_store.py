"""The local task server's state: tasks, runs, attempts, inputs, outputs and logs in SQLite.

Runs live in memory (the server reads them on every request) and every change is
written through to SQLite before the caller sees it, so that a server killed with
SIGKILL finds every accepted run again. One connection does all writes, on the thread
that owns the store (the server's event loop); WAL mode with a busy timeout keeps
readers in other processes (``sqlite3`` on the file) from ever blocking it. Log lines
are the exception: they are batched and committed every few milliseconds.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as _dt
import json
import os
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

from ..models import status_text
from ._protocol import (
    LogFilter,
    RetryPolicy,
    RunStatus,
    is_terminal,
    new_task_id,
    status_from_text,
)

_SCHEMA_VERSION: Final = 2

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    max_retries INTEGER NOT NULL DEFAULT 0,
    wait_duration_ms INTEGER NOT NULL DEFAULT 0,
    factor REAL NOT NULL DEFAULT 2.0,
    timeout_seconds INTEGER,
    registered INTEGER NOT NULL DEFAULT 1,
    plan TEXT,
    parameters TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task_name TEXT NOT NULL,
    status TEXT NOT NULL,
    input BLOB NOT NULL,
    output BLOB,
    error TEXT,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    parent_id TEXT NOT NULL DEFAULT '',
    root_id TEXT NOT NULL,
    depth INTEGER NOT NULL DEFAULT 0,
    parent_attempt INTEGER,
    idempotency_key TEXT,
    idempotency_created_at TEXT,
    next_attempt_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_root ON runs (root_id);
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_id);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    completed_at TEXT,
    error TEXT,
    output BLOB,
    PRIMARY KEY (run_id, attempt)
);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    stream TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_run ON logs (run_id, seq);
"""

#: Columns added after schema version 1, with their declarations: a database written by
#: an older server gets them on open (``ALTER TABLE ... ADD COLUMN`` keeps its rows).
_ADDED_COLUMNS: Final = {
    "tasks": (("plan", "TEXT"), ("parameters", "TEXT NOT NULL DEFAULT '[]'")),
}


def _seq(run: RunRecord) -> int:
    return run.seq


def utcnow() -> _dt.datetime:
    """Now, timezone-aware UTC."""
    return _dt.datetime.now(_dt.timezone.utc)


def _ts(value: _dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _sortable(value: _dt.datetime) -> str:
    """UTC, fixed-width ISO text: compares in SQL exactly as the instants do."""
    return value.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")


def _dt_or_none(text: str | None) -> _dt.datetime | None:
    return None if text is None else _dt.datetime.fromisoformat(text)


class StoreError(Exception):
    """The database could not be opened or written (message says which and why)."""


#: The parameter kinds a runner may name (inspect.Parameter's, in lower case).
PARAMETER_KINDS: Final = frozenset(
    {"positional_only", "positional_or_keyword", "keyword_only", "var_positional", "var_keyword"}
)


@dataclasses.dataclass(frozen=True)
class ParameterRecord:
    """One parameter of a registered task, as its runner described it.

    Attributes:
        name: The parameter's name.
        type: The annotation as text (``"int"``, ``"list[str]"``); None when unannotated.
        has_default: Whether the parameter has a default (then it is optional).
        default_json: The default as JSON text, when the runner sent one.
        kind: ``"positional_or_keyword"`` (the default), ``"positional_only"``,
            ``"keyword_only"``, ``"var_positional"`` or ``"var_keyword"``.
    """

    name: str
    type: str | None = None
    has_default: bool = False
    default_json: str | None = None
    kind: str = "positional_or_keyword"

    def to_json(self) -> dict[str, Any]:
        """The record as stored (and as the dashboard reads it)."""
        return {
            "name": self.name,
            "type": self.type,
            "hasDefault": self.has_default,
            "default": self.default_json,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParameterRecord:
        """The inverse of :meth:`to_json`."""
        return cls(
            name=str(data["name"]),
            type=data.get("type"),
            has_default=bool(data.get("hasDefault")),
            default_json=data.get("default"),
            kind=str(data.get("kind") or "positional_or_keyword"),
        )


class TaskDef(NamedTuple):
    """What a registration says about one task."""

    name: str
    retry: RetryPolicy
    timeout_seconds: int | None
    plan: str | None = None
    parameters: tuple[ParameterRecord, ...] = ()


@dataclasses.dataclass
class TaskRecord:
    """A registered task."""

    name: str
    id: str
    created_at: _dt.datetime
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    timeout_seconds: int | None = None
    registered: bool = True
    plan: str | None = None
    parameters: tuple[ParameterRecord, ...] = ()


@dataclasses.dataclass
class AttemptRecord:
    """One attempt of a run (0-indexed)."""

    attempt: int
    status: RunStatus
    started_at: _dt.datetime
    completed_at: _dt.datetime | None = None
    error: str | None = None
    output: bytes | None = None


@dataclasses.dataclass
class RunRecord:
    """A task run with every attempt it has had."""

    seq: int
    id: str
    task_name: str
    status: RunStatus
    input: bytes
    created_at: _dt.datetime
    root_id: str
    parent_id: str = ""
    depth: int = 0
    parent_attempt: int | None = None
    output: bytes | None = None
    error: str | None = None
    completed_at: _dt.datetime | None = None
    idempotency_key: str | None = None
    idempotency_created_at: str | None = None
    next_attempt_at: _dt.datetime | None = None
    attempts: list[AttemptRecord] = dataclasses.field(default_factory=list)

    @property
    def current_attempt(self) -> AttemptRecord | None:
        """The latest attempt, if one has started."""
        return self.attempts[-1] if self.attempts else None


@dataclasses.dataclass(frozen=True)
class LogRecord:
    """One chunk of a run's stdout or stderr."""

    seq: int
    run_id: str
    ts: _dt.datetime
    stream: str
    message: str


class Store:
    """Tasks, runs and logs: in memory for reads, written through to SQLite.

    Not thread-safe: use it from the thread that created it (the server's loop).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                # Create the database owner-only before SQLite opens it (its -wal and
                # -shm files take the main file's permissions).
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            path.chmod(0o600)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.executescript(_SCHEMA)
            self._add_columns()
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(_SCHEMA_VERSION),),
            )
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc
        self.tasks: dict[str, TaskRecord] = {}
        self.runs: dict[str, RunRecord] = {}
        self._order: list[RunRecord] = []
        self.children: dict[str, list[str]] = {}
        self._idem: dict[tuple[str, str, str], str] = {}
        self._pending_logs: list[tuple[str, str, str, str]] = []
        #: Called with the run ids of each committed batch of log lines (live log streams).
        self.log_watchers: set[Callable[[set[str]], None]] = set()
        self._log_seq = 0
        self._last_log_ts: _dt.datetime | None = None
        self._load()

    # ------------------------------------------------------------------ loading

    def _add_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
        self._db.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
            (str(_SCHEMA_VERSION), _SCHEMA_VERSION),
        )

    def _load(self) -> None:
        for row in self._db.execute(
            "SELECT name, id, created_at, max_retries, wait_duration_ms, factor,"
            " timeout_seconds, registered, plan, parameters FROM tasks"
        ):
            self.tasks[row[0]] = TaskRecord(
                name=row[0],
                id=row[1],
                created_at=_dt.datetime.fromisoformat(row[2]),
                retry=RetryPolicy.from_wire(row[3], row[4], row[5]),
                timeout_seconds=row[6],
                registered=bool(row[7]),
                plan=row[8],
                parameters=tuple(ParameterRecord.from_json(p) for p in json.loads(row[9])),
            )
        attempts: dict[str, list[AttemptRecord]] = {}
        for row in self._db.execute(
            "SELECT run_id, attempt, status, started_at, completed_at, error, output"
            " FROM attempts ORDER BY run_id, attempt"
        ):
            attempts.setdefault(row[0], []).append(
                AttemptRecord(
                    attempt=row[1],
                    status=status_from_text(row[2]),
                    started_at=_dt.datetime.fromisoformat(row[3]),
                    completed_at=_dt_or_none(row[4]),
                    error=row[5],
                    output=row[6],
                )
            )
        for row in self._db.execute(
            "SELECT seq, id, task_name, status, input, output, error, created_at, completed_at,"
            " parent_id, root_id, depth, parent_attempt, idempotency_key,"
            " idempotency_created_at, next_attempt_at FROM runs ORDER BY seq"
        ):
            run = RunRecord(
                seq=row[0],
                id=row[1],
                task_name=row[2],
                status=status_from_text(row[3]),
                input=row[4],
                output=row[5],
                error=row[6],
                created_at=_dt.datetime.fromisoformat(row[7]),
                completed_at=_dt_or_none(row[8]),
                parent_id=row[9],
                root_id=row[10],
                depth=row[11],
                parent_attempt=row[12],
                idempotency_key=row[13],
                idempotency_created_at=row[14],
                next_attempt_at=_dt_or_none(row[15]),
                attempts=attempts.get(row[1], []),
            )
            self._index(run)
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM logs").fetchone()
        self._log_seq = int(row[0])

    def _index(self, run: RunRecord) -> None:
        self.runs[run.id] = run
        self._order.append(run)
        if run.parent_id:
            self.children.setdefault(run.parent_id, []).append(run.id)
        if run.idempotency_key:
            key = (run.parent_id, run.idempotency_key, run.idempotency_created_at or "")
            self._idem[key] = run.id

    # ------------------------------------------------------------------ tasks

    def set_tasks(
        self, defs: Sequence[TaskDef | tuple[str, RetryPolicy, int | None]]
    ) -> list[TaskRecord]:
        """Replace the registered task set; names keep their ids across registrations."""
        now = utcnow()
        items = [TaskDef(*d) for d in defs]
        names = {d.name for d in items}
        with self._tx():
            for task in self.tasks.values():
                if task.name not in names and task.registered:
                    task.registered = False
                    self._db.execute("UPDATE tasks SET registered = 0 WHERE name = ?", (task.name,))
            for d in items:
                known = self.tasks.get(d.name)
                if known is None:
                    known = TaskRecord(name=d.name, id=new_task_id(), created_at=now)
                    self.tasks[d.name] = known
                task = known
                task.retry = d.retry
                task.timeout_seconds = d.timeout_seconds
                task.plan = d.plan
                task.parameters = d.parameters
                task.registered = True
                self._db.execute(
                    "INSERT INTO tasks (name, id, created_at, max_retries, wait_duration_ms,"
                    " factor, timeout_seconds, registered, plan, parameters)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET max_retries = excluded.max_retries,"
                    " wait_duration_ms = excluded.wait_duration_ms, factor = excluded.factor,"
                    " timeout_seconds = excluded.timeout_seconds, registered = 1,"
                    " plan = excluded.plan, parameters = excluded.parameters",
                    (
                        d.name,
                        task.id,
                        task.created_at.isoformat(),
                        d.retry.max_retries,
                        d.retry.wait_duration_ms,
                        d.retry.factor,
                        d.timeout_seconds,
                        d.plan,
                        json.dumps([p.to_json() for p in d.parameters]),
                    ),
                )
        return self.registered_tasks()

    def registered_tasks(self) -> list[TaskRecord]:
        """The tasks of the current registration, by id (creation order)."""
        return sorted((t for t in self.tasks.values() if t.registered), key=lambda t: t.id)

    def task_id(self, name: str) -> str:
        """The id of a task name (kept for runs of tasks no longer registered)."""
        task = self.tasks.get(name)
        return task.id if task is not None else ""

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        *,
        run_id: str,
        task_name: str,
        input_json: bytes,
        parent: RunRecord | None = None,
        idempotency_key: str | None = None,
        idempotency_created_at: str | None = None,
    ) -> RunRecord:
        """Record a new run (status pending) and return it."""
        now = utcnow()
        cur = self._db.execute(
            "INSERT INTO runs (id, task_name, status, input, created_at, parent_id, root_id,"
            " depth, parent_attempt, idempotency_key, idempotency_created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                task_name,
                status_text(RunStatus.PENDING),
                input_json,
                now.isoformat(),
                parent.id if parent else "",
                parent.root_id if parent else run_id,
                parent.depth + 1 if parent else 0,
                len(parent.attempts) - 1 if parent and parent.attempts else None,
                idempotency_key,
                idempotency_created_at,
            ),
        )
        run = RunRecord(
            seq=int(cur.lastrowid or 0),
            id=run_id,
            task_name=task_name,
            status=RunStatus.PENDING,
            input=input_json,
            created_at=now,
            root_id=parent.root_id if parent else run_id,
            parent_id=parent.id if parent else "",
            depth=parent.depth + 1 if parent else 0,
            parent_attempt=len(parent.attempts) - 1 if parent and parent.attempts else None,
            idempotency_key=idempotency_key,
            idempotency_created_at=idempotency_created_at,
        )
        self._index(run)
        return run

    def find_idempotent(self, parent_id: str, key: str, created_at: str) -> RunRecord | None:
        """The run an earlier call with the same idempotency key created, if any.

        Subtasks are keyed by (parent, idempotency_key, created_at); root runs by
        ("", idempotencyKey, "").
        """
        run_id = self._idem.get((parent_id, key, created_at))
        return self.runs.get(run_id) if run_id else None

    def reusable_child(
        self,
        parent: RunRecord,
        attempt: int,
        task_name: str,
        input_json: bytes,
        *,
        claimed: Collection[str],
    ) -> RunRecord | None:
        """The oldest child an earlier attempt of ``parent`` started with this task and
        input that is still alive or completed (not failed, not canceled) and not in
        ``claimed``: what a retried parent's identical subtask call reuses."""
        for child_id in self.children.get(parent.id, ()):
            child = self.runs[child_id]
            if (
                child.task_name == task_name
                and child.input == input_json
                and child.parent_attempt is not None
                and child.parent_attempt < attempt
                and child.status not in (RunStatus.FAILED, RunStatus.CANCELED)
                and child_id not in claimed
            ):
                return child
        return None

    def start_attempt(self, run: RunRecord) -> AttemptRecord:
        """Open the run's next attempt: the run is running from now."""
        attempt = AttemptRecord(
            attempt=len(run.attempts), status=RunStatus.RUNNING, started_at=utcnow()
        )
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO attempts (run_id, attempt, status, started_at)"
                " VALUES (?, ?, ?, ?)",
                (
                    run.id,
                    attempt.attempt,
                    status_text(attempt.status),
                    attempt.started_at.isoformat(),
                ),
            )
            self._db.execute(
                "UPDATE runs SET status = ?, completed_at = NULL, error = NULL, output = NULL,"
                " next_attempt_at = NULL WHERE id = ?",
                (status_text(RunStatus.RUNNING), run.id),
            )
        run.attempts.append(attempt)
        run.status = RunStatus.RUNNING
        run.completed_at = None
        run.error = None
        run.output = None
        run.next_attempt_at = None
        return attempt

    def finish_attempt(
        self,
        run: RunRecord,
        *,
        attempt_status: RunStatus,
        run_status: RunStatus,
        output: bytes | None = None,
        error: str | None = None,
        next_attempt_at: _dt.datetime | None = None,
    ) -> None:
        """Close the current attempt and move the run to ``run_status``.

        ``run_status`` pending means a retry is scheduled at ``next_attempt_at``.
        """
        now = utcnow()
        attempt = run.current_attempt
        with self._tx():
            if attempt is not None and attempt.completed_at is None:
                attempt.status = attempt_status
                attempt.completed_at = now
                attempt.error = error
                attempt.output = output
                self._db.execute(
                    "UPDATE attempts SET status = ?, completed_at = ?, error = ?, output = ?"
                    " WHERE run_id = ? AND attempt = ?",
                    (
                        status_text(attempt_status),
                        now.isoformat(),
                        error,
                        output,
                        run.id,
                        attempt.attempt,
                    ),
                )
            terminal = is_terminal(run_status)
            run.status = run_status
            run.output = output if run_status == RunStatus.COMPLETED else None
            run.error = error if run_status == RunStatus.FAILED else None
            run.completed_at = now if terminal else None
            run.next_attempt_at = next_attempt_at
            self._db.execute(
                "UPDATE runs SET status = ?, output = ?, error = ?, completed_at = ?,"
                " next_attempt_at = ? WHERE id = ?",
                (
                    status_text(run.status),
                    run.output,
                    run.error,
                    _ts(run.completed_at),
                    _ts(next_attempt_at),
                    run.id,
                ),
            )

    def cancel(self, run: RunRecord) -> None:
        """Mark a pending or running run canceled (its open attempt too)."""
        self.finish_attempt(run, attempt_status=RunStatus.CANCELED, run_status=RunStatus.CANCELED)

    def list_runs(
        self,
        *,
        task_names: frozenset[str] | None = None,
        root_ids: frozenset[str] | None = None,
        statuses: frozenset[RunStatus] | None = None,
        roots_only: bool = False,
        before_seq: int | None = None,
        limit: int,
    ) -> tuple[list[RunRecord], bool]:
        """Runs newest first, filtered, starting after ``before_seq``; and whether more remain.

        Runs are kept in memory in creation order, so a page is a reverse walk that stops
        after ``limit`` matches: no query, however many runs are stored.
        """
        out: list[RunRecord] = []
        order = self._order
        # Runs are appended with increasing seq: start the walk just below the cursor.
        end = len(order) if before_seq is None else bisect.bisect_left(order, before_seq, key=_seq)
        for i in range(end - 1, -1, -1):
            run = order[i]
            if task_names is not None and run.task_name not in task_names:
                continue
            if root_ids is not None and run.root_id not in root_ids:
                continue
            if statuses is not None and run.status not in statuses:
                continue
            if roots_only and run.parent_id:
                continue
            if len(out) == limit:
                return out, True
            out.append(run)
        return out, False

    def descendants(self, run_id: str) -> Iterator[RunRecord]:
        """Every run below ``run_id`` (children first, depth-first)."""
        stack = list(self.children.get(run_id, ()))
        while stack:
            child_id = stack.pop()
            child = self.runs.get(child_id)
            if child is not None:
                yield child
                stack.extend(self.children.get(child_id, ()))

    def unfinished_runs(self) -> list[RunRecord]:
        """Runs that are pending or running, oldest first."""
        return [r for r in self._order if not is_terminal(r.status)]

    # ------------------------------------------------------------------ logs

    def add_log(self, run_id: str, stream: str, message: str) -> None:
        """Buffer one output chunk; :meth:`flush_logs` commits the batch."""
        ts = utcnow()
        # Strictly increasing timestamps make nextStartTime pagination exact.
        if self._last_log_ts is not None and ts <= self._last_log_ts:
            ts = self._last_log_ts + _dt.timedelta(microseconds=1)
        self._last_log_ts = ts
        self._pending_logs.append((run_id, _sortable(ts), stream, message))

    @property
    def has_pending_logs(self) -> bool:
        """True while log lines wait for :meth:`flush_logs`."""
        return bool(self._pending_logs)

    def flush_logs(self) -> None:
        """Commit buffered log lines in one transaction."""
        if not self._pending_logs:
            return
        batch, self._pending_logs = self._pending_logs, []
        with self._tx():
            self._db.executemany(
                "INSERT INTO logs (run_id, ts, stream, message) VALUES (?, ?, ?, ?)", batch
            )
        runs = {run_id for run_id, _, _, _ in batch}
        for watcher in list(self.log_watchers):
            watcher(runs)

    def query_logs(
        self, flt: LogFilter, *, limit: int, backward: bool = False, after_seq: int = 0
    ) -> tuple[list[LogRecord], bool]:
        """Logs matching ``flt`` in time order (newest first when ``backward``), and has-more.

        ``after_seq`` skips every line up to that :attr:`LogRecord.seq` (a stream's resume point).
        """
        self.flush_logs()
        where: list[str] = []
        params: list[Any] = []
        if after_seq:
            where.append("seq > ?")
            params.append(after_seq)
        if flt.run_ids:
            where.append(f"run_id IN ({','.join('?' * len(flt.run_ids))})")
            params.extend(sorted(flt.run_ids))
        if flt.start is not None:
            where.append("ts >= ?")
            params.append(_sortable(flt.start))
        if flt.end is not None:
            where.append("ts <= ?")
            params.append(_sortable(flt.end))
        if flt.texts:
            where.append("(" + " OR ".join("instr(message, ?) > 0" for _ in flt.texts) + ")")
            params.extend(flt.texts)
        sql = "SELECT seq, run_id, ts, stream, message FROM logs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY seq {'DESC' if backward else 'ASC'} LIMIT ?"
        params.append(limit + 1)
        rows = self._db.execute(sql, params).fetchall()
        logs = [
            LogRecord(
                seq=r[0],
                run_id=r[1],
                ts=_dt.datetime.fromisoformat(r[2]),
                stream=r[3],
                message=r[4],
            )
            for r in rows[:limit]
        ]
        return logs, len(rows) > limit

    # ------------------------------------------------------------------ plumbing

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        """Flush logs and close the database (idempotent)."""
        try:
            self.flush_logs()
            self._db.close()
        except sqlite3.Error:
            pass


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT around a group of writes (ROLLBACK on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
