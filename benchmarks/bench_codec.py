"""Codec cost per envelope: render_sdk._wire next to Google's json_format and betterproto2.

Each row times one call on the same message: ours (``_wire.loads``/``_wire.dumps``, bytes in
and out, dataclasses produced) against Google protobuf's ``json_format`` (``Parse`` /
``MessageToJson`` on ``_pb2`` classes compiled from proto/ at run time, upb backend) as the
baseline. The note gives betterproto2's own ``from_dict``/``to_dict`` (with ``json``) on
the same message and its ratio to ours.

The messages: a TaskRunDetails as SSE and GET /task-runs/{id} carry it, the four socket
envelopes a task process exchanges per run, and a GET /task-runs page of 100 items.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._harness import Row, measure, repeats  # noqa: E402
from render_sdk import _wire, models  # noqa: E402
from render_sdk.models import tasksocket  # noqa: E402

GROUP = "codec"
BASELINE = "protobuf json_format (upb)"
_T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def _pb2() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location(
        "render_sdk_build_vectors", ROOT / "build_tools" / "vectors.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes: dict[str, Any] = module.compile_pb2()
    return classes


def _details() -> models.TaskRunDetails:
    ms = dt.timedelta(milliseconds=1)
    return models.TaskRunDetails(
        id="trn-d4f5a6b7c8d9e0f1a2b3",
        task_id="tsk-a1b2c3d4e5f6a7b8c9d0",
        status=models.TaskRunStatus.COMPLETED,
        started_at=_T0,
        completed_at=_T0 + 1500 * ms,
        parent_task_run_id="trn-0a1b2c3d4e5f6a7b8c9d",
        parent_task_attempt=0,
        root_task_run_id="trn-0a1b2c3d4e5f6a7b8c9d",
        retries=1,
        attempts=[
            models.TaskAttemptDetails(
                attempt=0,
                status=models.TaskRunStatus.FAILED,
                started_at=_T0,
                completed_at=_T0 + 400 * ms,
                error="ConnectionError: upstream reset",
            ),
            models.TaskAttemptDetails(
                attempt=1,
                status=models.TaskRunStatus.COMPLETED,
                started_at=_T0 + 900 * ms,
                completed_at=_T0 + 1500 * ms,
                results_json=b'[{"sum":25,"items":[9,16],"label":"squares"}]',
            ),
        ],
        results_json=b'[{"sum":25,"items":[9,16],"label":"squares"}]',
        input_json=b'{"a":3,"b":4,"options":{"mode":"fast"}}',
    )


def _task_run(i: int) -> models.TaskRunWithCursor:
    run_id = f"trn-{i:020d}"
    return models.TaskRunWithCursor(
        cursor=run_id,
        task_run=models.TaskRun(
            id=run_id,
            task_id="tsk-a1b2c3d4e5f6a7b8c9d0",
            status=models.TaskRunStatus.COMPLETED,
            started_at=_T0,
            completed_at=_T0 + dt.timedelta(seconds=1),
            parent_task_run_id="",
            root_task_run_id=run_id,
            retries=0,
            attempts=[
                models.TaskAttempt(
                    attempt=0,
                    status=models.TaskRunStatus.COMPLETED,
                    started_at=_T0,
                    completed_at=_T0 + dt.timedelta(seconds=1),
                )
            ],
        ),
    )


def _socket_envelopes() -> list[tuple[str, Any]]:
    return [
        ("GetInputResponse", tasksocket.GetInputResponse(task_name="add_squares", input=b"[3, 4]")),
        (
            "CallbackRequest",
            tasksocket.CallbackRequest(complete=tasksocket.TaskComplete(output=b"[25]")),
        ),
        (
            "RunSubtaskRequest",
            tasksocket.RunSubtaskRequest(
                task_name="square",
                input=b"[3]",
                idempotency_key="0b6f9a52-5d8e-4b1c-9a43-2f1d3e4c5b6a",
                created_at=_T0,
            ),
        ),
        (
            "GetSubtaskResultResponse",
            tasksocket.GetSubtaskResultResponse(
                still_running=False, complete=tasksocket.TaskComplete(output=b"[9]")
            ),
        ),
    ]


def _timer(quick: bool) -> Callable[[Callable[[], Any]], float]:
    budget = 0.004 if quick else 0.02  # seconds per sample

    def timed(fn: Callable[[], Any]) -> float:
        fn()  # warm caches (compiled codecs, descriptor pools)
        number, started = 1, time.perf_counter()
        fn()
        once = max(time.perf_counter() - started, 1e-7)
        number = max(1, int(budget / once))
        return measure(fn, repeat=repeats(quick), number=number)

    return timed


def _note(bp: float, ours: float) -> str:
    return f"betterproto2 {_fmt(bp)} ({bp / ours:.0f}x ours)"


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def run(quick: bool) -> list[Row]:
    from google.protobuf import json_format

    pb2 = _pb2()
    timed = _timer(quick)
    rows: list[Row] = []

    def add(
        name: str, ours: Callable[[], Any], google: Callable[[], Any], bp: Callable[[], Any]
    ) -> None:
        t_ours = timed(ours)
        rows.append(
            Row(
                group=GROUP,
                name=name,
                ours=t_ours,
                baseline=timed(google),
                baseline_name=BASELINE,
                note=_note(timed(bp), t_ours),
            )
        )

    # ---- TaskRunDetails, REST (SSE data, GET /task-runs/{id})
    details = _details()
    d_cls = pb2["render.workflows.v1.TaskRunDetails"]
    d_raw = _wire.dumps(details, _wire.REST)
    d_google = d_cls.FromString(_wire.to_binary(details))
    d_google_json = json_format.MessageToJson(d_google)
    d_bp_json = json.dumps(details.to_dict())
    assert _wire.loads(models.TaskRunDetails, d_raw, _wire.REST) == details
    add(
        "TaskRunDetails REST decode",
        lambda: _wire.loads(models.TaskRunDetails, d_raw, _wire.REST),
        lambda: json_format.Parse(d_google_json, d_cls()),
        lambda: models.TaskRunDetails.from_dict(json.loads(d_bp_json)),
    )
    add(
        "TaskRunDetails REST encode",
        lambda: _wire.dumps(details, _wire.REST),
        lambda: json_format.MessageToJson(d_google),
        lambda: json.dumps(details.to_dict()),
    )

    # ---- socket envelopes, one decode and one encode each
    for name, msg in _socket_envelopes():
        cls = type(msg)
        g_cls = pb2[f"render.tasksocket.v1.{name}"]
        raw = _wire.dumps(msg, _wire.SOCKET)
        g_msg = g_cls.FromString(_wire.to_binary(msg))
        g_json = json_format.MessageToJson(g_msg)
        bp_json = json.dumps(msg.to_dict())
        assert _wire.loads(cls, raw, _wire.SOCKET) == msg
        add(
            f"socket {name} decode",
            lambda cls=cls, raw=raw: _wire.loads(cls, raw, _wire.SOCKET),
            lambda g_cls=g_cls, g_json=g_json: json_format.Parse(g_json, g_cls()),
            lambda cls=cls, bp_json=bp_json: cls.from_dict(json.loads(bp_json)),
        )
        add(
            f"socket {name} encode",
            lambda msg=msg: _wire.dumps(msg, _wire.SOCKET),
            lambda g_msg=g_msg: json_format.MessageToJson(g_msg),
            lambda msg=msg: json.dumps(msg.to_dict()),
        )

    # ---- GET /task-runs page of 100 items (a JSON array of TaskRunWithCursor)
    page = [_task_run(i) for i in range(100)]
    p_cls = pb2["render.workflows.v1.TaskRunWithCursor"]
    p_google = [p_cls.FromString(_wire.to_binary(item)) for item in page]
    p_raw = b"[" + b",".join(_wire.dumps(item, _wire.REST) for item in page) + b"]"
    p_google_json = json.dumps([json_format.MessageToDict(m) for m in p_google])
    p_bp_json = json.dumps([item.to_dict() for item in page])

    def ours_decode_page() -> list[models.TaskRunWithCursor]:
        items = _wire.parse_json(p_raw)
        return [_wire.from_dict(models.TaskRunWithCursor, item, _wire.REST) for item in items]

    def ours_encode_page() -> bytes:
        return b"[" + b",".join([_wire.dumps(item, _wire.REST) for item in page]) + b"]"

    assert ours_decode_page() == page
    assert ours_encode_page() == p_raw
    add(
        "list page 100 TaskRunWithCursor decode",
        ours_decode_page,
        lambda: [json_format.ParseDict(d, p_cls()) for d in json.loads(p_google_json)],
        lambda: [models.TaskRunWithCursor.from_dict(d) for d in json.loads(p_bp_json)],
    )
    add(
        "list page 100 TaskRunWithCursor encode",
        ours_encode_page,
        lambda: json.dumps([json_format.MessageToDict(m) for m in p_google]),
        lambda: json.dumps([item.to_dict() for item in page]),
    )
    return rows
