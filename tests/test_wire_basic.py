"""Codec basics: both dialects round-trip the documented Render wire JSON."""

from __future__ import annotations

import json

import pytest

from render_sdk import _wire, models
from render_sdk._errors import WireFormatError
from render_sdk.models import tasksocket

DETAILS = {
    "id": "trn-1",
    "taskId": "tsk-1",
    "status": "completed",
    "startedAt": "2026-01-01T00:00:00Z",
    "completedAt": "2026-01-01T00:00:01.500Z",
    "parentTaskRunId": "",
    "rootTaskRunId": "trn-1",
    "retries": 0,
    "attempts": [
        {"attempt": 0, "status": "completed", "startedAt": "2026-01-01T00:00:00Z", "results": [25]}
    ],
    "results": [25],
    "input": [3, 4],
}


def test_rest_round_trip_is_byte_identical() -> None:
    raw = json.dumps(DETAILS, separators=(",", ":")).encode()
    details = _wire.loads(models.TaskRunDetails, raw, _wire.REST)
    assert details.results == [25]
    assert details.input == [3, 4]
    assert details.status == models.TaskRunStatus.COMPLETED
    assert _wire.dumps(details, _wire.REST) == raw


def test_socket_callback_is_base64_of_json() -> None:
    msg = tasksocket.CallbackRequest(complete=tasksocket.TaskComplete(output=b"[25]"))
    assert _wire.to_dict(msg, _wire.SOCKET) == {"complete": {"output": "WzI1XQ=="}}


def test_unknown_status_keeps_raw_string() -> None:
    details = _wire.from_dict(models.TaskRunDetails, {**DETAILS, "status": "archived"}, _wire.REST)
    assert details.status == models.TaskRunStatus.UNSPECIFIED
    assert details.status_text == "archived"
    assert _wire.to_dict(details, _wire.REST)["status"] == "archived"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"id": 5}, "id"),
        ({"attempts": [{"startedAt": "yesterday"}]}, "attempts[0].startedAt"),
        ({"retries": "many"}, "retries"),
        ({"attempts": {}}, "attempts"),
    ],
)
def test_bad_input_names_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(WireFormatError) as info:
        _wire.from_dict(models.TaskRunDetails, payload, _wire.REST)
    assert info.value.field == field
