"""Status fields behave like render_sdk 0.4.0's ``TaskRunStatus(str, Enum)``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from render_sdk import _wire
from render_sdk.models import TaskAttempt, TaskRun, TaskRunDetails, TaskRunStatus

from ._support import pb2_classes


def test_a_status_is_its_wire_string() -> None:
    status = TaskRunStatus.COMPLETED
    assert str(status) == "completed"
    assert f"Status: {status}" == "Status: completed"
    assert f"{status:>10}" == " completed"
    assert status == "completed"
    assert isinstance(status, str)
    assert json.dumps({"status": status}) == '{"status": "completed"}'
    assert TaskRunStatus("completed") is status
    assert TaskRunStatus(3) is status
    assert status.number == 3
    with pytest.raises(ValueError, match="archived"):
        TaskRunStatus("archived")


@pytest.mark.parametrize("cls", [TaskRun, TaskRunDetails, TaskAttempt])
def test_fields_default_to_and_decode_into_the_wire_enum(cls: type) -> None:
    assert type(cls().status) is TaskRunStatus
    assert cls().status == "unspecified"
    decoded = _wire.loads(cls, b'{"status":"failed"}', _wire.REST)
    assert type(decoded.status) is TaskRunStatus
    assert decoded.status == "failed"
    parsed = _wire.from_binary(cls, _wire.to_binary(decoded))
    assert parsed.status is TaskRunStatus.FAILED


def test_an_unknown_status_string_is_kept() -> None:
    run = _wire.loads(TaskRunDetails, b'{"id":"trn-1","status":"archived"}', _wire.REST)
    assert run.status is TaskRunStatus.UNSPECIFIED
    assert run.unknown_status == "archived"
    assert run.status_text == "archived"
    assert json.loads(_wire.dumps(run, _wire.REST))["status"] == "archived"


def test_an_unknown_status_number_is_kept_byte_for_byte() -> None:
    pb = pb2_classes()["render.workflows.v1.TaskRun"]
    google = pb(id="trn-1", status=9).SerializeToString()
    run = _wire.from_binary(TaskRun, google)
    assert run.status.number == 9
    assert str(run.status) == "9"
    assert _wire.to_binary(run) == google
    assert json.loads(_wire.dumps(run, _wire.REST))["status"] == 9


def test_binary_encoding_matches_googles_runtime_for_every_status() -> None:
    pb = pb2_classes()["render.workflows.v1.TaskRunDetails"]
    for status in TaskRunStatus:
        ours = _wire.to_binary(TaskRunDetails(id="trn-1", status=status))
        assert ours == pb(id="trn-1", status=status.number).SerializeToString(), status


def test_reprs_show_decoded_inputs_and_results() -> None:
    raw = (
        b'{"id":"trn-1","status":"completed","results":[25],"input":{"a":3},'
        b'"attempts":[{"status":"completed","results":[25]}]}'
    )
    run = _wire.loads(TaskRunDetails, raw, _wire.REST)
    text = repr(run)
    assert "results=[25]" in text
    assert "input={'a': 3}" in text
    assert (
        "attempts=[TaskAttemptDetails(status=<TaskRunStatus.COMPLETED: 'completed'>, results=[25])]"
        in text
    )
    assert "_json" not in text
    # Bytes that are not JSON are shown as they are rather than failing the repr.
    assert repr(TaskRunDetails(results_json=b"nope")) == "TaskRunDetails(results_json=b'nope')"


def test_betterproto2_protojson_still_round_trips_statuses() -> None:
    run = TaskRunDetails(id="trn-1", status=TaskRunStatus.CANCELED)
    assert run.to_dict() == {"id": "trn-1", "status": "TASK_RUN_STATUS_CANCELED"}
    assert TaskRunDetails.from_dict(run.to_dict()).status is TaskRunStatus.CANCELED
    # Unset is falsy and omitted, as with the protobuf number.
    assert not TaskRunStatus.UNSPECIFIED
    assert TaskRunDetails(id="trn-1").to_dict() == {"id": "trn-1"}


def test_generated_messages_hold_the_wire_enum_without_runtime_rebinding() -> None:
    # Codegen makes betterproto2's message modules import the wire-string enum, so the
    # generated classes alone (render_sdk.models never imported) already use it.
    code = (
        "import sys\n"
        "from render_sdk._gen.enums import TaskRunStatus\n"
        "from render_sdk._gen.render.workflows.v1 import TaskRunDetails\n"
        "assert 'render_sdk.models' not in sys.modules\n"
        "run = TaskRunDetails(id='trn-1')\n"
        "assert run.status is TaskRunStatus.UNSPECIFIED, run.status\n"
        "assert TaskRunDetails._betterproto.cls_by_field['status'] is TaskRunStatus\n"
        "parsed = TaskRunDetails.parse(bytes([0x18, 3]))\n"
        "assert parsed.status is TaskRunStatus.COMPLETED, parsed.status\n"
        "print(TaskRunStatus.__module__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "render_sdk.models"
