"""Units of the local server's protocol logic (no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest

from render_sdk._console import StatusLine, format_duration
from render_sdk.devserver._protocol import (
    EnvFileError,
    InvalidCursor,
    InvalidTransition,
    LogFilter,
    RetryPolicy,
    RunEvent,
    RunStatus,
    command_source,
    decode_cursor,
    encode_cursor,
    is_app_spec,
    is_terminal,
    new_run_id,
    new_task_id,
    parse_command,
    parse_env_file,
    parse_time_param,
    resolve_slug,
    retry_delay_ms,
    slug_candidates,
    split_ids,
    sse_event_name,
    sse_frame,
    sse_preamble,
    transition,
)
from render_sdk.models import status_text


def test_ids_have_prefixes_and_sort_by_creation() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert all(i.startswith("trn-") and len(i) == 24 for i in ids)
    assert len(set(ids)) == 50
    assert ids == sorted(ids)
    assert new_task_id().startswith("tsk-")


@pytest.mark.parametrize(
    ("status", "event", "after"),
    [
        (RunStatus.PENDING, RunEvent.START_ATTEMPT, RunStatus.RUNNING),
        (RunStatus.RUNNING, RunEvent.COMPLETE, RunStatus.COMPLETED),
        (RunStatus.RUNNING, RunEvent.FAIL_RETRY, RunStatus.PENDING),
        (RunStatus.RUNNING, RunEvent.FAIL_FINAL, RunStatus.FAILED),
        (RunStatus.PENDING, RunEvent.CANCEL, RunStatus.CANCELED),
        (RunStatus.RUNNING, RunEvent.CANCEL, RunStatus.CANCELED),
    ],
)
def test_allowed_transitions(status: RunStatus, event: RunEvent, after: RunStatus) -> None:
    assert transition(status, event) is after


@pytest.mark.parametrize("status", [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED])
@pytest.mark.parametrize("event", list(RunEvent))
def test_terminal_runs_never_change(status: RunStatus, event: RunEvent) -> None:
    assert is_terminal(status)
    with pytest.raises(InvalidTransition, match=status_text(status)):
        transition(status, event)


def test_pending_cannot_complete() -> None:
    with pytest.raises(InvalidTransition):
        transition(RunStatus.PENDING, RunEvent.COMPLETE)


def test_retry_delay_is_wait_times_factor_to_the_n() -> None:
    policy = RetryPolicy(max_retries=3, wait_duration_ms=100, factor=1.5)
    assert retry_delay_ms(policy, 1) == 100
    assert retry_delay_ms(policy, 2) == 150
    assert retry_delay_ms(policy, 3) == pytest.approx(225)
    assert retry_delay_ms(policy, 4) is None


def test_no_retry_policy_never_retries() -> None:
    assert retry_delay_ms(RetryPolicy(), 1) is None


def test_retry_policy_from_wire_defaults_factor_to_two() -> None:
    assert RetryPolicy.from_wire(2, 50, 0).factor == 2.0
    assert RetryPolicy.from_wire(-1, -5, 1.5) == RetryPolicy(0, 0, 1.5)


@pytest.mark.parametrize(
    ("slug", "expected"),
    [
        ("square", "square"),
        ("my-wf/square", "square"),
        ("my-wf/square:v3", "square"),
        ("org/my-wf/square", "square"),
        ("tsk-1", "square"),
        ("nope", None),
        ("my-wf/nope:v1", None),
        ("", None),
    ],
)
def test_resolve_slug(slug: str, expected: str | None) -> None:
    assert resolve_slug(slug, {"square": "tsk-1"}, {"tsk-1": "square"}) == expected


def test_slug_candidates_keep_exact_name_first() -> None:
    assert slug_candidates("wf/a:b") == ("wf/a:b", "a:b", "a")


def test_cursor_round_trip_and_rejects_foreign_text() -> None:
    assert decode_cursor(encode_cursor(42)) == 42
    for bad in ("", "zzz", "trn-abc", encode_cursor(1) + "!!", "YzEuLTE"):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad)


def test_sse_framing() -> None:
    assert sse_preamble(2000) == b"retry: 2000\n\n"
    assert sse_frame(7, "task.completed", b'{"a":1}') == (
        b'id: 7\nevent: task.completed\ndata: {"a":1}\n\n'
    )
    with pytest.raises(ValueError, match="single line"):
        sse_frame(1, "x", b"a\nb")


def test_every_terminal_event_is_named_task_completed() -> None:
    for status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED):
        assert sse_event_name(status) == "task.completed"
    assert sse_event_name(RunStatus.RUNNING) == "task.running"
    assert sse_event_name(RunStatus.PENDING) == "task.pending"


def test_split_ids_accepts_repeated_and_comma_separated() -> None:
    assert split_ids(["a,b", "c", " b ", ""]) == ["a", "b", "c"]


def test_format_duration() -> None:
    assert format_duration(0.0123) == "12ms"
    assert format_duration(1.234) == "1.23s"
    assert format_duration(61) == "1m1.00s"


def test_status_lines() -> None:
    done = StatusLine(
        status=RunStatus.COMPLETED,
        run_id="trn-1",
        task_name="sq",
        input_json=b"[3]",
        output_json=b"[9]",
        duration_s=0.5,
    )
    assert done.render() == "Task completed: trn-1 (sq) input=[3] output=[9] duration=500ms"
    sub = StatusLine(
        status=RunStatus.FAILED,
        run_id="trn-2",
        task_name="c",
        depth=2,
        parent_task_name="p",
        error="boom\n  trace",
        duration_s=1.5,
        attempt=3,
    )
    assert sub.render() == (
        "    Task failed: trn-2 (c) \u21b3 Subtask (parent: p) input=[] attempt=3 "
        "duration=1.50s error=boom trace"
    )
    retry = StatusLine(
        status=RunStatus.PENDING,
        run_id="trn-3",
        task_name="t",
        input_json=b"[1]",
        error="ValueError: x",
        duration_s=0.007,
        retry_in_ms=100,
    )
    assert retry.render() == (
        "Task pending: trn-3 (t) input=[1] attempt=1 retry_in=100ms duration=7ms "
        "error=ValueError: x"
    )
    assert StatusLine(status=RunStatus.PENDING, run_id="r", task_name="t").render() == (
        "Task pending: r (t) input=[]"
    )
    assert StatusLine(
        status=RunStatus.CANCELED, run_id="r", task_name="t", duration_s=2
    ).render() == ("Task canceled: r (t) input=[] duration=2.00s")
    big = StatusLine(
        status=RunStatus.COMPLETED, run_id="r", task_name="t", output_json=b"[" + b"1," * 400
    )
    assert big.render().endswith("... (truncated)")
    running = StatusLine(status=RunStatus.RUNNING, run_id="r", task_name="t", duration_s=1)
    assert running.render() == "Task running: r (t) input=[]"


def test_status_line_words_are_the_wire_statuses() -> None:
    for status in (
        RunStatus.PENDING,
        RunStatus.RUNNING,
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
    ):
        line = StatusLine(status=status, run_id="r", task_name="t").render()
        assert line.startswith(f"Task {status_text(status)}: r (t) ")


def test_log_filter() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    flt = LogFilter(run_ids=frozenset({"a"}), texts=("x", "y"), start=t0, end=t0)
    assert flt.matches("a", "has y", t0)
    assert not flt.matches("b", "has y", t0)
    assert not flt.matches("a", "none", t0)
    assert not flt.matches("a", "x", t0 + dt.timedelta(seconds=1))
    assert LogFilter().matches("", "", t0)


def test_parse_time_param() -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc)
    assert parse_time_param("now", now) == now
    assert parse_time_param("now-10s", now) == now - dt.timedelta(seconds=10)
    assert parse_time_param("2026-01-01T11:00:00Z", now).hour == 11
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time_param("yesterday", now)


def test_parse_env_file() -> None:
    text = (
        "# comment\n"
        "A=1\n"
        "export B = two  # trailing\n"
        "C='lit $A'\n"
        'D="x\\ny ${A}"\n'
        'E="multi\nline"\n'
        "\n"
    )
    assert parse_env_file(text) == {
        "A": "1",
        "B": "two",
        "C": "lit $A",
        "D": "x\ny 1",
        "E": "multi\nline",
    }
    with pytest.raises(EnvFileError, match=r"\.env:1"):
        parse_env_file("not a line")
    with pytest.raises(EnvFileError, match="unterminated"):
        parse_env_file('A="open')


def test_parse_command() -> None:
    assert parse_command(["python main.py"]) == ["python", "main.py"]
    assert parse_command(["python", "main.py"]) == ["python", "main.py"]
    assert parse_command(["sh -c 'echo hi'"]) == ["sh", "-c", "echo hi"]
    with pytest.raises(ValueError, match="command is required"):
        parse_command([])


def test_app_spec_and_source() -> None:
    assert is_app_spec("main:app")
    assert is_app_spec("pkg.tasks:app")
    assert not is_app_spec("python")
    assert not is_app_spec("main.py")
    assert command_source(["render-workflows", "main:app"]) == "main:app"
    assert command_source(["python", "/x/main.py"]) == "main.py"
    assert command_source(["node", "server"]) == "node server"


def test_stored_statuses_are_the_schema_enum_spelled_as_on_the_wire() -> None:
    from render_sdk.devserver._protocol import status_from_text
    from render_sdk.models import TaskRunStatus

    for status in (
        RunStatus.PENDING,
        RunStatus.RUNNING,
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
    ):
        assert isinstance(status, TaskRunStatus)
        assert status_from_text(status_text(status)) is status
    with pytest.raises(ValueError, match="unknown run status"):
        status_from_text("archived")


def test_example_input_samples_each_required_parameter() -> None:
    from render_sdk.devserver._protocol import example_input
    from render_sdk.models.tasksocket import TaskParameter

    def p(name: str, type_: str | None = None, *, default: bool = False) -> TaskParameter:
        return TaskParameter(name=name, type=type_, has_default=default)

    assert example_input([]) == []
    assert example_input([p("a", "int")]) == [3]
    assert example_input(
        [p("a", "int"), p("b", "float"), p("c", "str"), p("d", "bool"), p("e", "list[int]")]
    ) == [3, 1.5, "hello", True, []]
    assert example_input([p("x", "typing.Optional[int]"), p("y", "dict[str, int] | None")]) == [
        3,
        {},
    ]
    # No hint, or one without a sample: null. Parameters from the first default on are left out.
    assert example_input([p("a"), p("b", "Path"), p("c", "int", default=True), p("d", "int")]) == [
        None,
        None,
    ]
