"""The SQLite store on a real file: persistence, registration, listing, logs."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path

from render_sdk.devserver._protocol import LogFilter, RetryPolicy, RunStatus
from render_sdk.devserver._store import ParameterRecord, Store, TaskDef


def test_runs_attempts_and_outputs_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    store.set_tasks([("sq", RetryPolicy(2, 100, 1.5), 30)])
    root = store.create_run(run_id="trn-root", task_name="sq", input_json=b"[3]")
    store.start_attempt(root)
    store.finish_attempt(
        root,
        attempt_status=RunStatus.FAILED,
        run_status=RunStatus.PENDING,
        error="first",
        next_attempt_at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
    )
    store.start_attempt(root)
    store.finish_attempt(
        root, attempt_status=RunStatus.COMPLETED, run_status=RunStatus.COMPLETED, output=b"[9]"
    )
    child = store.create_run(
        run_id="trn-child",
        task_name="sq",
        input_json=b"[1]",
        parent=root,
        idempotency_key="k",
        idempotency_created_at="t",
    )
    store.close()

    again = Store(path)
    run = again.runs["trn-root"]
    assert run.status == RunStatus.COMPLETED
    assert run.output == b"[9]"
    assert [(a.attempt, a.status, a.error) for a in run.attempts] == [
        (0, RunStatus.FAILED, "first"),
        (1, RunStatus.COMPLETED, None),
    ]
    loaded_child = again.runs["trn-child"]
    assert loaded_child.parent_id == "trn-root"
    assert loaded_child.root_id == "trn-root"
    assert loaded_child.depth == 1
    assert loaded_child.parent_attempt == 1
    assert again.find_idempotent("trn-root", "k", "t") is loaded_child
    assert [r.id for r in again.descendants("trn-root")] == [child.id]
    task = again.tasks["sq"]
    assert task.retry == RetryPolicy(2, 100, 1.5)
    assert task.timeout_seconds == 30
    again.close()


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_set_tasks_replaces_the_set_and_keeps_ids(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    first = {
        t.name: t.id
        for t in store.set_tasks([("a", RetryPolicy(), None), ("b", RetryPolicy(), None)])
    }
    second = {
        t.name: t.id
        for t in store.set_tasks([("b", RetryPolicy(), None), ("c", RetryPolicy(), None)])
    }
    assert set(second) == {"b", "c"}
    assert second["b"] == first["b"]
    assert store.task_id("a") == first["a"]  # old runs still resolve their task id
    assert not store.tasks["a"].registered
    store.close()


def test_list_runs_newest_first_with_filters_and_pages(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    roots = [
        store.create_run(run_id=f"trn-{i}", task_name="a" if i % 2 else "b", input_json=b"[]")
        for i in range(5)
    ]
    store.create_run(run_id="trn-kid", task_name="a", input_json=b"[]", parent=roots[0])
    page, more = store.list_runs(limit=2)
    assert [r.id for r in page] == ["trn-kid", "trn-4"]
    assert more
    page2, _ = store.list_runs(limit=2, before_seq=page[-1].seq)
    assert [r.id for r in page2] == ["trn-3", "trn-2"]
    only_a, more = store.list_runs(task_names=frozenset({"a"}), limit=10)
    assert [r.id for r in only_a] == ["trn-kid", "trn-3", "trn-1"]
    assert not more
    tree, _ = store.list_runs(root_ids=frozenset({"trn-0"}), limit=10)
    assert [r.id for r in tree] == ["trn-kid", "trn-0"]
    store.close()


def test_logs_are_batched_ordered_and_filtered(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.add_log("r1", "stdout", "hello\n")
    store.add_log("r2", "stderr", "oops\n")
    store.add_log("r1", "stdout", "world\n")
    assert store.has_pending_logs
    logs, more = store.query_logs(LogFilter(run_ids=frozenset({"r1"})), limit=10)
    assert [entry.message for entry in logs] == ["hello\n", "world\n"]
    assert not more
    assert logs[0].ts < logs[1].ts
    texts, _ = store.query_logs(LogFilter(texts=("oops", "world")), limit=10)
    assert [entry.message for entry in texts] == ["oops\n", "world\n"]
    first, more = store.query_logs(LogFilter(), limit=1)
    assert more
    rest, _ = store.query_logs(
        LogFilter(start=first[0].ts + dt.timedelta(microseconds=1)), limit=10
    )
    assert len(rest) == 2
    backward, _ = store.query_logs(LogFilter(), limit=10, backward=True)
    assert backward[0].message == "world\n"
    store.close()
    reopened = Store(tmp_path / "s.db")
    assert len(reopened.query_logs(LogFilter(), limit=10)[0]) == 3
    reopened.close()


def test_reusable_child_is_an_earlier_attempts_live_or_completed_identical_call(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "state.sqlite3")
    store.set_tasks([("sq", RetryPolicy(), None), ("other", RetryPolicy(), None)])
    parent = store.create_run(run_id="trn-p", task_name="sq", input_json=b"[]")
    store.start_attempt(parent)  # attempt 0 starts four children

    def child(run_id: str, task: str, input_json: bytes) -> str:
        return store.create_run(
            run_id=run_id, task_name=task, input_json=input_json, parent=parent
        ).id

    child("trn-a", "sq", b"[1]")
    child("trn-b", "sq", b"[1]")
    failed = store.runs[child("trn-f", "sq", b"[2]")]
    store.start_attempt(failed)
    store.finish_attempt(failed, attempt_status=RunStatus.FAILED, run_status=RunStatus.FAILED)
    child("trn-o", "other", b"[1]")
    assert store.reusable_child(parent, 0, "sq", b"[1]", claimed=()) is None, "same attempt"
    store.finish_attempt(parent, attempt_status=RunStatus.FAILED, run_status=RunStatus.PENDING)
    store.start_attempt(parent)  # attempt 1 repeats the calls

    def reuse(task: str, input_json: bytes, claimed: set[str]) -> str | None:
        found = store.reusable_child(parent, 1, task, input_json, claimed=claimed)
        return found.id if found is not None else None

    assert reuse("sq", b"[1]", set()) == "trn-a"  # the oldest first
    assert reuse("sq", b"[1]", {"trn-a"}) == "trn-b"  # the second identical call
    assert reuse("sq", b"[1]", {"trn-a", "trn-b"}) is None  # a third starts anew
    assert reuse("sq", b"[2]", set()) is None  # its child failed
    assert reuse("other", b"[1]", set()) == "trn-o"
    assert reuse("sq", b"[3]", set()) is None  # a call attempt 0 did not make
    child("trn-n", "sq", b"[3]")  # ... which attempt 1 then starts itself
    assert reuse("sq", b"[3]", set()) is None, "not reused by the attempt that started it"
    store.close()


def test_parameters_and_plan_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    params = (
        ParameterRecord(name="a", type="int"),
        ParameterRecord(name="b", type="str", has_default=True, default_json='"x"'),
        ParameterRecord(name="rest", kind="var_positional"),
    )
    with closing(Store(path)) as store:
        store.set_tasks([TaskDef("sq", RetryPolicy(), None, "pro", params)])
    with closing(Store(path)) as again:
        (task,) = again.registered_tasks()
        assert (task.plan, task.parameters) == ("pro", params)


def test_a_version_1_database_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE tasks (name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " created_at TEXT NOT NULL, max_retries INTEGER NOT NULL DEFAULT 0,"
        " wait_duration_ms INTEGER NOT NULL DEFAULT 0, factor REAL NOT NULL DEFAULT 2.0,"
        " timeout_seconds INTEGER, registered INTEGER NOT NULL DEFAULT 1);"
        "INSERT INTO tasks VALUES ('old', 'tsk-old', '2026-01-01T00:00:00+00:00', 1, 5, 2.0,"
        " NULL, 1);"
    )
    db.commit()
    db.close()
    with closing(Store(path)) as store:
        (task,) = store.registered_tasks()
        assert (task.id, task.retry.max_retries, task.plan, task.parameters) == (
            "tsk-old",
            1,
            None,
            (),
        )
        store.set_tasks([TaskDef("old", RetryPolicy(), None, None, (ParameterRecord("x"),))])
    with closing(sqlite3.connect(path)) as check:
        assert check.execute("SELECT value FROM meta").fetchone() == ("2",)
        assert check.execute("SELECT parameters FROM tasks").fetchone()[0].startswith('[{"name"')


def test_list_filters_by_status_and_roots_with_a_cursor(tmp_path: Path) -> None:
    with closing(Store(tmp_path / "s.sqlite3")) as store:
        store.set_tasks([("sq", RetryPolicy(), None)])
        runs = []
        for i in range(6):
            run = store.create_run(run_id=f"trn-{i}", task_name="sq", input_json=b"[]")
            runs.append(run)
            store.create_run(run_id=f"trn-{i}c", task_name="sq", input_json=b"[]", parent=run)
            if i % 2:
                store.cancel(run)
        page, more = store.list_runs(
            statuses=frozenset({RunStatus.CANCELED}), roots_only=True, limit=2
        )
        assert ([r.id for r in page], more) == (["trn-5", "trn-3"], True)
        page, more = store.list_runs(
            statuses=frozenset({RunStatus.CANCELED}),
            roots_only=True,
            before_seq=page[-1].seq,
            limit=2,
        )
        assert ([r.id for r in page], more) == (["trn-1"], False)
        page, _ = store.list_runs(roots_only=True, statuses=frozenset({RunStatus.PENDING}), limit=9)
        assert [r.id for r in page] == ["trn-4", "trn-2", "trn-0"]
