"""Cross-check (b): our codec speaks the hand-written Render wire JSON of every vector.

The wire JSON in tests/vectors/cases/ is written from the documented Render facts, and
the golden binary is derived from it by Google's runtime, so none of these expectations
come from render_sdk._wire itself.
"""

from __future__ import annotations

import json

import pytest

from render_sdk import _wire, models

from ._support import Vector, canonical_json, compact_json, load_vectors

VECTORS = load_vectors()


def wire_bytes(v: Vector) -> bytes:
    return v.raw.encode("utf-8") if v.raw is not None else compact_json(v.wire)


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_decoding_the_wire_gives_the_golden_message(v: Vector) -> None:
    from_dict = _wire.from_dict(v.cls, v.wire, v.dialect)
    from_bytes = _wire.loads(v.cls, wire_bytes(v), v.dialect)
    assert isinstance(from_dict, v.cls)
    assert _wire.to_binary(from_dict) == v.binary
    assert _wire.to_binary(from_bytes) == v.binary


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_encoding_the_golden_message_gives_the_wire(v: Vector) -> None:
    msg = _wire.from_binary(v.cls, v.binary)
    assert canonical_json(_wire.to_dict(msg, v.dialect)) == canonical_json(v.canonical)
    encoded = _wire.dumps(msg, v.dialect)
    assert canonical_json(json.loads(encoded)) == canonical_json(v.canonical)
    if v.ordered:
        expected = (
            v.raw.encode("utf-8")
            if v.raw is not None and v.encodes_to is None
            else compact_json(v.canonical)
        )
        assert encoded == expected


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_canonical_wire_round_trips(v: Vector) -> None:
    msg = _wire.from_dict(v.cls, v.canonical, v.dialect)
    again = _wire.loads(v.cls, _wire.dumps(msg, v.dialect), v.dialect)
    assert again == msg
    assert _wire.to_binary(again) == v.binary


@pytest.mark.parametrize(
    "v",
    [v for v in VECTORS if v.message.endswith((".TaskRunDetails", ".RunTaskRequest"))],
    ids=lambda v: v.id,
)
def test_public_accessors_give_the_wire_values(v: Vector) -> None:
    """``.input`` / ``.results`` decode the JSON bytes to exactly the values on the wire."""
    msg = _wire.from_dict(v.cls, v.wire, v.dialect)
    assert canonical_json(msg.input) == canonical_json(v.wire.get("input"))  # type: ignore[attr-defined]
    if isinstance(msg, models.TaskRunDetails):
        assert canonical_json(msg.results) == canonical_json(v.wire.get("results"))
        for attempt, wire_attempt in zip(msg.attempts, v.wire["attempts"], strict=True):
            assert isinstance(attempt, models.TaskAttemptDetails)
            assert canonical_json(attempt.results) == canonical_json(wire_attempt.get("results"))


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_unknown_status_strings_are_kept(v: Vector) -> None:
    """Every status on the wire reads back through status_text() as the same string."""
    msg = _wire.from_dict(v.cls, v.wire, v.dialect)
    for obj, wire_obj in _with_status(msg, v.wire):
        assert models.status_text(obj.status, obj.unknown_status) == wire_obj["status"]


def _with_status(msg: object, wire: object) -> list[tuple[models.TaskRun, dict[str, str]]]:
    found: list[tuple[models.TaskRun, dict[str, str]]] = []
    if isinstance(wire, dict):
        if "status" in wire and hasattr(msg, "unknown_status"):
            found.append((msg, wire))  # type: ignore[arg-type]
        for key, value in wire.items():
            attr = {"taskRun": "task_run"}.get(key, key)
            child = getattr(msg, attr, None)
            if isinstance(value, dict) and child is not None:
                found += _with_status(child, value)
            elif isinstance(value, list) and isinstance(child, list):
                for c, w in zip(child, value, strict=True):
                    found += _with_status(c, w)
    return found
