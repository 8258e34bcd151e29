"""Bad input to the codec: always exactly WireFormatError, and ``.field`` names the field.

Never a KeyError, AssertionError, OverflowError, UnicodeError or bare ValueError from
inside a library; never a message the wire cannot carry.
"""

from __future__ import annotations

import json
import math
from typing import Any

import betterproto2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from render_sdk import _wire, models
from render_sdk._errors import WireFormatError
from render_sdk.models import tasksocket

REST, SOCKET = _wire.REST, _wire.SOCKET


def _raises(fn: Any) -> WireFormatError:
    """Run ``fn``; it must raise WireFormatError and nothing else."""
    try:
        fn()
    except WireFormatError as exc:
        return exc
    except Exception as exc:  # the point of the test: report what escaped
        pytest.fail(f"{type(exc).__name__} escaped instead of WireFormatError: {exc}")
    pytest.fail("no error raised")


# --------------------------------------------------------------------------- whole bodies

MALFORMED_BODIES = {
    "empty": b"",
    "truncated-object": b'{"id":"trn-1"',
    "trailing-garbage": b'{"id":"trn-1"} x',
    "single-quotes": b"{'id': 'trn-1'}",
    "trailing-comma": b'{"id":"trn-1",}',
    "invalid-utf8": b'{"id":"\xff"}',
    "nan-literal": b'{"retries":NaN}',
    "infinity-literal": b'{"retries":Infinity}',
    "minus-infinity-literal": b'{"retries":-Infinity}',
    "deep-nesting": b'{"input":' + b"[" * 100_000 + b"}",
    "int-too-long-to-parse": b'{"input":[' + b"9" * 5000 + b"]}",
}


@pytest.mark.parametrize("raw", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
@pytest.mark.parametrize("dialect", [REST, SOCKET], ids=["rest", "socket"])
def test_malformed_json_bodies(raw: bytes, dialect: _wire.Dialect) -> None:
    exc = _raises(lambda: _wire.loads(models.TaskRunDetails, raw, dialect))
    assert exc.field == "body"


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"trn-1"', b"null", b"true", b"[{}]"])
def test_non_object_top_level(raw: bytes) -> None:
    exc = _raises(lambda: _wire.loads(models.TaskRunDetails, raw, REST))
    assert exc.field is None  # the payload as a whole (see WireFormatError.field)
    assert "expected a JSON object" in str(exc)


# --------------------------------------------------------------------------- wrong types

WRONG_TYPES: list[tuple[str, type[betterproto2.Message], _wire.Dialect, dict[str, Any], str]] = [
    # string fields
    ("string<-int", models.TaskRunDetails, REST, {"id": 5}, "id"),
    ("string<-bool", models.TaskRunDetails, REST, {"taskId": True}, "taskId"),
    ("string<-list", models.TaskRunDetails, REST, {"error": ["x"]}, "error"),
    ("string<-object", tasksocket.TaskError, SOCKET, {"details": {}}, "details"),
    # int32 / optional int32
    ("int32<-str", models.TaskRunDetails, REST, {"retries": "many"}, "retries"),
    ("int32<-fraction", models.TaskRunDetails, REST, {"retries": 1.5}, "retries"),
    ("int32<-bool", models.TaskRunDetails, REST, {"retries": True}, "retries"),
    ("int32<-2^31", models.TaskRunDetails, REST, {"retries": 2**31}, "retries"),
    ("int32<-exp-string", models.TaskRunDetails, REST, {"retries": "1e3"}, "retries"),
    ("opt-int32<-object", models.TaskRun, REST, {"parentTaskAttempt": {}}, "parentTaskAttempt"),
    ("opt-int32<-huge", tasksocket.GetSubtaskResultRequest, SOCKET, {"wait_ms": 10**20}, "wait_ms"),
    # int64
    (
        "int64<-bad-string",
        tasksocket.RetryConfig,
        SOCKET,
        {"wait_duration_ms": "12a"},
        "wait_duration_ms",
    ),
    ("int64<-2^63", models.PutObjectInput, REST, {"sizeBytes": 2**63}, "sizeBytes"),
    ("int64<-list", models.ObjectMetadata, REST, {"sizeBytes": [1]}, "sizeBytes"),
    # bool
    (
        "bool<-string",
        tasksocket.GetSubtaskResultResponse,
        SOCKET,
        {"still_running": "true"},
        "still_running",
    ),
    (
        "bool<-int",
        tasksocket.GetSubtaskResultResponse,
        SOCKET,
        {"still_running": 1},
        "still_running",
    ),
    ("bool<-int-rest", models.ListObjectsResponse, REST, {"hasNext": 0}, "hasNext"),
    # double
    ("double<-string", tasksocket.RetryConfig, SOCKET, {"factor": "2.0"}, "factor"),
    ("double<-bool", tasksocket.RetryConfig, SOCKET, {"factor": False}, "factor"),
    # enum
    ("enum<-float", models.TaskRun, REST, {"status": 3.5}, "status"),
    ("enum<-bool", models.TaskRun, REST, {"status": True}, "status"),
    ("enum<-list", models.TaskRun, REST, {"status": ["completed"]}, "status"),
    ("enum<-int-beyond-int32", models.TaskRun, REST, {"status": 2**40}, "status"),
    # timestamps
    ("ts<-number", models.TaskRun, REST, {"startedAt": 0}, "startedAt"),
    ("ts<-prose", models.TaskRun, REST, {"startedAt": "yesterday"}, "startedAt"),
    ("ts<-month-13", models.TaskRun, REST, {"completedAt": "2026-13-01T00:00:00Z"}, "completedAt"),
    ("ts<-hour-25", models.Task, REST, {"createdAt": "2026-01-01T25:00:00Z"}, "createdAt"),
    ("ts<-no-zone", models.Task, REST, {"createdAt": "2026-01-01T00:00:00"}, "createdAt"),
    ("ts<-offset-24h", models.Task, REST, {"createdAt": "2026-01-01T00:00:00+24:00"}, "createdAt"),
    (
        "ts<-before-year-1",
        models.Log,
        REST,
        {"timestamp": "0001-01-01T00:00:00+01:00"},
        "timestamp",
    ),
    ("ts<-after-9999", models.Log, REST, {"timestamp": "9999-12-31T23:59:59-01:00"}, "timestamp"),
    ("ts<-socket", tasksocket.RunSubtaskRequest, SOCKET, {"created_at": "now"}, "created_at"),
    # messages and lists
    ("message<-list", models.TaskRunWithCursor, REST, {"taskRun": []}, "taskRun"),
    ("message<-string", models.TaskRunEvent, REST, {"data": "{}"}, "data"),
    ("list<-object", models.TaskRunDetails, REST, {"attempts": {}}, "attempts"),
    ("list<-string", models.TaskRunEventsRequest, REST, {"taskRunIds": "trn-1"}, "taskRunIds"),
    ("list-element", models.TaskRunEventsRequest, REST, {"taskRunIds": ["a", 1]}, "taskRunIds[1]"),
    ("message-element", models.TaskRun, REST, {"attempts": [{}, 5]}, "attempts[1]"),
    (
        "nested-field",
        models.TaskRun,
        REST,
        {"attempts": [{"startedAt": 1}]},
        "attempts[0].startedAt",
    ),
    (
        "deep-socket-field",
        tasksocket.RegisterTasksRequest,
        SOCKET,
        {"tasks": [{"name": "a"}, {"name": "b", "options": {"retry": {"factor": "x"}}}]},
        "tasks[1].options.retry.factor",
    ),
    ("event-data-field", models.TaskRunEvent, REST, {"data": {"retries": "x"}}, "data.retries"),
    # base64 bytes (socket)
    ("b64<-number", tasksocket.GetInputResponse, SOCKET, {"input": 5}, "input"),
    ("b64<-symbols", tasksocket.GetInputResponse, SOCKET, {"input": "!!!!"}, "input"),
    ("b64<-bad-padding", tasksocket.GetInputResponse, SOCKET, {"input": "WzI1XQ=x"}, "input"),
    ("b64<-inner-space", tasksocket.GetInputResponse, SOCKET, {"input": "WzI1 XQ=="}, "input"),
    ("b64<-one-char", tasksocket.RunSubtaskRequest, SOCKET, {"input": "a"}, "input"),
    ("b64<-non-ascii", tasksocket.RunSubtaskRequest, SOCKET, {"input": "é"}, "input"),
    (
        "b64-nested",
        tasksocket.CallbackRequest,
        SOCKET,
        {"complete": {"output": "%%"}},
        "complete.output",
    ),
    (
        "b64-list",
        tasksocket.GetSubtaskResultResponse,
        SOCKET,
        {"complete": {"output": []}},
        "complete.output",
    ),
    # strings no wire can carry
    ("lone-surrogate", models.TaskRun, REST, {"id": "\ud800"}, "id"),
    ("lone-surrogate-nested", tasksocket.TaskError, SOCKET, {"details": "a\udfffb"}, "details"),
]


@pytest.mark.parametrize(
    ("cls", "dialect", "data", "field"),
    [case[1:] for case in WRONG_TYPES],
    ids=[case[0] for case in WRONG_TYPES],
)
def test_wrong_types_name_the_field(
    cls: type[betterproto2.Message], dialect: _wire.Dialect, data: dict[str, Any], field: str
) -> None:
    exc = _raises(lambda: _wire.from_dict(cls, data, dialect))
    assert exc.field == field
    # The same document as bytes fails the same way.
    raw = json.dumps(data).encode()
    assert _raises(lambda: _wire.loads(cls, raw, dialect)).field == field


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"factor":1e400}', "factor"),
        (b'{"factor":-1e400}', "factor"),
    ],
)
def test_overflowing_doubles_are_rejected(raw: bytes, field: str) -> None:
    assert _raises(lambda: _wire.loads(tasksocket.RetryConfig, raw, SOCKET)).field == field


@pytest.mark.parametrize(
    "raw", [b'{"task":"t","input":[1e400]}', b'{"task":"t","input":{"x":-1e999}}']
)
def test_overflowing_numbers_inside_task_input_are_rejected(raw: bytes) -> None:
    assert _raises(lambda: _wire.loads(models.RunTaskRequest, raw, REST)).field == "input"


def test_oneof_with_both_members_names_the_oneof() -> None:
    data = {"complete": {"output": "WzI1XQ=="}, "error": {"details": "boom"}}
    exc = _raises(lambda: _wire.from_dict(tasksocket.CallbackRequest, data, SOCKET))
    assert exc.field == "result"
    assert "complete" in str(exc)
    assert "error" in str(exc)


# --------------------------------------------------------------------------- encoding


def test_nan_and_infinity_in_double_fields_are_not_encoded() -> None:
    for value in (math.nan, math.inf, -math.inf):
        exc = _raises(lambda v=value: _wire.dumps(tasksocket.RetryConfig(factor=v), SOCKET))
        assert exc.field == "factor"


def test_encoding_error_path_has_list_indexes_like_decoding() -> None:
    request = tasksocket.RegisterTasksRequest(
        tasks=[
            tasksocket.TaskDefinition(name="ok"),
            tasksocket.TaskDefinition(
                name="bad",
                options=tasksocket.TaskOptions(retry=tasksocket.RetryConfig(factor=math.inf)),
            ),
        ]
    )
    exc = _raises(lambda: _wire.dumps(request, SOCKET))
    assert exc.field == "tasks[1].options.retry.factor"


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        (models.TaskRun(id=5), "id"),  # type: ignore[arg-type]
        (models.TaskRun(retries="x"), "retries"),  # type: ignore[arg-type]
        (models.TaskRun(retries=1.5), "retries"),  # type: ignore[arg-type]
        (models.TaskRun(started_at="2026-01-01"), "startedAt"),  # type: ignore[arg-type]
        (models.TaskRun(id="\ud800"), "id"),
        (tasksocket.TaskError(details="x", stack_trace="\udc00"), "stack_trace"),
    ],
    ids=["str<-int", "int<-str", "int<-float", "ts<-str", "surrogate", "surrogate-optional"],
)
def test_encoding_values_the_schema_cannot_carry(msg: betterproto2.Message, field: str) -> None:
    dialect = SOCKET if isinstance(msg, tasksocket.TaskError) else REST
    assert _raises(lambda: _wire.dumps(msg, dialect)).field == field
    assert _raises(lambda: _wire.to_dict(msg, dialect)).field == field


@pytest.mark.parametrize("raw", [b"{not json", b"[1,", b"\xff\xfe", b"NaN", b"[1] [2]"])
def test_invalid_json_bytes_in_json_fields_are_not_encoded(raw: bytes) -> None:
    """``*_json`` bytes go inline: invalid JSON there would corrupt the whole body."""
    msg = models.RunTaskRequest(task="t", input_json=raw)
    exc = _raises(lambda: _wire.dumps(msg, REST))
    assert exc.field == "input"


def test_json_fields_with_whitespace_are_encoded_on_one_line() -> None:
    """SSE data lines carry TaskRunDetails JSON: it must be one line whatever the bytes hold."""
    details = models.TaskRunDetails(
        id="trn-1", input_json=b'{\n  "a": [1,\n 2]\n}', results_json=b"[\r\n25\r\n]"
    )
    raw = _wire.dumps(details, REST)
    assert b"\n" not in raw
    assert b"\r" not in raw
    assert json.loads(raw)["input"] == {"a": [1, 2]}
    assert json.loads(raw)["results"] == [25]


def test_encode_json_value_names_the_unserializable_type() -> None:
    exc = _raises(lambda: _wire.encode_json_value({"when": object()}, what="input"))
    assert exc.field == "input"
    assert "object" in str(exc)
    for value in (math.nan, [math.inf], {"x": -math.inf}):
        assert _raises(lambda v=value: _wire.encode_json_value(v, what="result")).field == "result"


# --------------------------------------------------------------------------- fuzz

_bodies = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["id", "status", "attempts", "input", "results", "startedAt", "retries", "x"]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=12,
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=200, deadline=None)
@given(raw=_bodies)
def test_arbitrary_bodies_decode_or_raise_wire_format_error(raw: bytes) -> None:
    """Whatever arrives, decoding either works (and re-encodes) or raises WireFormatError."""
    for cls, dialect in (
        (models.TaskRunDetails, REST),
        (tasksocket.CallbackRequest, SOCKET),
        (tasksocket.GetSubtaskResultResponse, SOCKET),
    ):
        try:
            msg = _wire.loads(cls, raw, dialect)
        except WireFormatError:
            continue
        again = _wire.dumps(msg, dialect)
        assert _wire.loads(cls, again, dialect) == msg
