"""Property tests of the codec: arbitrary payloads and messages round-trip exactly.

Task inputs and results are arbitrary JSON (integers beyond 2^53, unicode, nesting, empty
list vs null, object vs list); every message of proto/ round-trips through REST, SOCKET
and binary, and its binary is byte-identical to Google's runtime (both ways).
"""

from __future__ import annotations

import json
from typing import Any

import betterproto2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from render_sdk import _wire, models
from render_sdk.models import tasksocket

from ._strategies import json_values, messages, task_inputs
from ._support import bp_class, pb2_classes

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The wire annotation schema describes the wires; its messages live only in the
#: descriptors (codegen reads them) and never travel, so they have no Python model.
ANNOTATION_PACKAGE = "render.wire.v1."
ALL_MESSAGES = sorted(
    name
    for name in pb2_classes()
    if name.startswith("render.") and not name.startswith(ANNOTATION_PACKAGE)
)
DIALECT_OF = {
    "render.workflows.v1": _wire.REST,
    "render.objects.v1": _wire.REST,
    "render.tasksocket.v1": _wire.SOCKET,
}


def exact(value: Any) -> str:
    """Type- and order-exact rendering (1 != 1.0 != true, key order kept)."""
    return json.dumps(value, ensure_ascii=False)


def as_input(value: Any) -> bytes:
    return b"" if value is None else _wire.encode_json_value(value)


@SETTINGS
@given(task_input=task_inputs, result=json_values)
def test_rest_task_run_details_round_trips_payloads(task_input: Any, result: Any) -> None:
    results = result if isinstance(result, list) else [result]
    details = models.TaskRunDetails(
        id="trn-1",
        input_json=as_input(task_input),
        results_json=_wire.encode_json_value(results),
        attempts=[models.TaskAttemptDetails(results_json=_wire.encode_json_value(results))],
    )
    raw = _wire.dumps(details, _wire.REST)
    wire = json.loads(raw)
    assert exact(wire["input"]) == exact(task_input)
    assert exact(wire["results"]) == exact(results)
    back = _wire.loads(models.TaskRunDetails, raw, _wire.REST)
    assert exact(back.input) == exact(task_input)
    assert exact(back.results) == exact(results)
    assert exact(back.attempts[0].results) == exact(results)
    assert back == details
    assert _wire.dumps(back, _wire.REST) == raw


@SETTINGS
@given(task_input=task_inputs)
def test_rest_run_task_request_round_trips_payloads(task_input: Any) -> None:
    request = models.RunTaskRequest(task="wf/t", input_json=as_input(task_input))
    raw = _wire.dumps(request, _wire.REST)
    assert exact(json.loads(raw)["input"]) == exact(task_input)
    back = _wire.loads(models.RunTaskRequest, raw, _wire.REST)
    assert exact(back.input) == exact(task_input)
    assert back == request


@SETTINGS
@given(task_input=task_inputs, result=json_values)
def test_socket_envelopes_round_trip_payloads(task_input: Any, result: Any) -> None:
    payload = as_input(task_input)
    output = _wire.encode_json_value(result)
    for msg in (
        tasksocket.GetInputResponse(task_name="t", input=payload),
        tasksocket.RunSubtaskRequest(task_name="t", input=payload, idempotency_key="k"),
        tasksocket.CallbackRequest(complete=tasksocket.TaskComplete(output=output)),
        tasksocket.GetSubtaskResultResponse(complete=tasksocket.TaskComplete(output=output)),
    ):
        raw = _wire.dumps(msg, _wire.SOCKET)
        back = _wire.loads(type(msg), raw, _wire.SOCKET)
        assert back == msg
        assert _wire.dumps(back, _wire.SOCKET) == raw
    back_input = _wire.loads(
        tasksocket.GetInputResponse,
        _wire.dumps(tasksocket.GetInputResponse(input=payload), _wire.SOCKET),
        _wire.SOCKET,
    )
    assert exact(_wire.decode_json_value(back_input.input)) == exact(task_input)


@SETTINGS
@given(task_input=task_inputs, result=json_values)
def test_binary_round_trips_payloads(task_input: Any, result: Any) -> None:
    details = models.TaskRunDetails(
        input_json=as_input(task_input), results_json=_wire.encode_json_value([result])
    )
    back = _wire.from_binary(models.TaskRunDetails, _wire.to_binary(details))
    assert exact(back.input) == exact(task_input)
    assert exact(back.results) == exact([result])
    google = pb2_classes()["render.workflows.v1.TaskRunDetails"].FromString(
        _wire.to_binary(details)
    )
    assert google.input_json == details.input_json
    assert google.results_json == details.results_json


@pytest.mark.parametrize(
    ("task_input", "wire"),
    [(None, "null"), ([], "[]"), ({}, "{}"), ([None], "[null]"), ({"a": []}, '{"a":[]}')],
)
def test_null_empty_list_and_empty_object_stay_distinct(task_input: Any, wire: str) -> None:
    request = models.RunTaskRequest(task="t", input_json=as_input(task_input))
    assert _wire.dumps(request, _wire.REST) == b'{"task":"t","input":' + wire.encode() + b"}"
    back = _wire.loads(models.RunTaskRequest, _wire.dumps(request, _wire.REST), _wire.REST)
    assert exact(back.input) == exact(task_input)


def _messages_of(name: str) -> st.SearchStrategy[Any]:
    return messages(bp_class(name))


@pytest.mark.parametrize("name", ALL_MESSAGES)
def test_every_message_round_trips_through_its_dialect(name: str) -> None:
    dialect = DIALECT_OF[name.rpartition(".")[0]]
    cls = bp_class(name)

    @SETTINGS
    @given(msg=_messages_of(name))
    def check(msg: betterproto2.Message) -> None:
        raw = _wire.dumps(msg, dialect)
        assert b"\n" not in raw  # one line: SSE data and log lines rely on it
        back = _wire.loads(cls, raw, dialect)
        assert back == msg
        assert _wire.dumps(back, dialect) == raw
        assert _wire.from_dict(cls, _wire.to_dict(msg, dialect), dialect) == msg

    check()


@pytest.mark.parametrize("name", ALL_MESSAGES)
def test_every_message_binary_is_googles_both_ways(name: str) -> None:
    cls = bp_class(name)
    google_cls = pb2_classes()[name]

    @SETTINGS
    @given(msg=_messages_of(name))
    def check(msg: betterproto2.Message) -> None:
        ours = _wire.to_binary(msg)
        google = google_cls.FromString(ours)
        assert google.SerializeToString(deterministic=True) == ours
        back = _wire.from_binary(cls, google.SerializeToString())
        assert _wire.to_binary(back) == ours

    check()
