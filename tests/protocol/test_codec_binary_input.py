"""Binary decoding: public models, and truncated or malformed protobuf bytes.

Google's runtime (upb) is the judge of which byte strings are valid messages.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import DecodeError

from render_sdk import _wire, models
from render_sdk._errors import WireFormatError

from ._support import Vector, load_vectors, pb2_classes

VECTORS = [v for v in load_vectors() if len(v.binary) > 0]


def test_binary_decoding_builds_the_public_models() -> None:
    """Nested TaskAttemptDetails / TaskRunDetails come back with their accessors, as from JSON."""
    details = models.TaskRunDetails(
        id="trn-1",
        attempts=[models.TaskAttemptDetails(attempt=0, results_json=b"[25]")],
        results_json=b"[25]",
    )
    parsed = _wire.from_binary(models.TaskRunDetails, _wire.to_binary(details))
    assert type(parsed.attempts[0]) is models.TaskAttemptDetails
    assert parsed.attempts[0].results == [25]
    assert parsed == details
    event = models.TaskRunEvent(event="task.completed", id="1", data=details)
    parsed_event = _wire.from_binary(models.TaskRunEvent, _wire.to_binary(event))
    assert type(parsed_event.data) is models.TaskRunDetails
    assert parsed_event == event


def _last_top_level_field(desc: Any, data: bytes) -> str | None:
    """The top-level field whose bytes the end of ``data`` cuts: ``name`` or ``name[i]``."""
    pos, name = 0, None
    seen: dict[str, int] = {}
    while pos < len(data):
        tag = data[pos]  # every field number of ours is < 16: one tag byte
        field = desc.fields_by_number.get(tag >> 3)
        name = None
        if field is not None:
            name = field.name
            if field.is_repeated:
                name += f"[{seen.get(field.name, 0)}]"
                seen[field.name] = seen.get(field.name, 0) + 1
        pos += 1
        wire_type = tag & 7
        if wire_type == 0:
            while pos < len(data) and data[pos] & 0x80:
                pos += 1
            pos += 1
        elif wire_type == 2:
            length, shift = 0, 0
            while pos < len(data):
                byte = data[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
    return name


def _prefixes(v: Vector) -> tuple[list[bytes], list[tuple[bytes, Any]]]:
    """The prefixes of a vector's binary Google rejects, and those it parses (with the parse)."""
    google = pb2_classes()[v.message]
    rejected, accepted = [], []
    for cut in range(1, len(v.binary)):
        prefix = v.binary[:cut]
        try:
            accepted.append((prefix, google.FromString(prefix)))
        except DecodeError:
            rejected.append(prefix)
    return rejected, accepted


def test_truncated_bytes_google_rejects_raise_wire_format_error() -> None:
    """Every prefix of every vector: rejected like Google, or parsed to Google's message.

    One test over all vectors (not one per vector) so that a regression reads as one
    failure listing the offending vectors and cut lengths.
    """
    silently_parsed: dict[str, list[int]] = {}
    for v in VECTORS:
        rejected, accepted = _prefixes(v)
        for prefix in rejected:
            try:
                _wire.from_binary(v.cls, prefix)
            except WireFormatError:
                continue
            silently_parsed.setdefault(v.id, []).append(len(prefix))
        for prefix, expected in accepted:  # field boundaries: a valid, shorter message
            ours = _wire.from_binary(v.cls, prefix)
            assert _wire.to_binary(ours) == expected.SerializeToString(deterministic=True)
    assert silently_parsed == {}, "truncated bytes parsed without an error (vector: cut lengths)"


def test_truncated_bytes_error_names_the_cut_field() -> None:
    wrong: dict[str, list[tuple[int, str | None, str | None]]] = {}
    for v in VECTORS:
        desc = pb2_classes()[v.message].DESCRIPTOR
        for prefix in _prefixes(v)[0]:
            expected = _last_top_level_field(desc, prefix)
            try:
                _wire.from_binary(v.cls, prefix)
            except WireFormatError as exc:
                if exc.field == expected:
                    continue
                wrong.setdefault(v.id, []).append((len(prefix), expected, exc.field))
            else:
                wrong.setdefault(v.id, []).append((len(prefix), expected, "<no error>"))
    assert wrong == {}, "(cut length, expected field, WireFormatError.field) per vector"


@pytest.mark.parametrize(
    "data",
    [b"\xff", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x07", b"\x00"],
    ids=["bad-tag", "overlong-length", "wire-type-7", "field-zero"],
)
def test_malformed_bytes_raise_wire_format_error(data: bytes) -> None:
    google = pb2_classes()["render.workflows.v1.TaskRunDetails"]
    with pytest.raises(DecodeError):
        google.FromString(data)
    with pytest.raises(WireFormatError):
        _wire.from_binary(models.TaskRunDetails, data)


@pytest.mark.parametrize(
    "data",
    [b"\x0b\x0c", b"\x08\x01", b"\x1a\x00", b"\x0d\x01\x02\x03\x04"],
    ids=["group-on-string", "varint-on-string", "bytes-on-enum", "fixed32-on-string"],
)
def test_wrong_wire_type_is_an_unknown_field_like_google(data: bytes) -> None:
    """A known field number with another wire type is skipped (Google keeps it as unknown);
    it must never land in the dataclass as a value of the wrong type."""
    google = pb2_classes()["render.workflows.v1.TaskRunDetails"].FromString(data)
    assert google.id == ""
    assert google.status == 0
    ours = _wire.from_binary(models.TaskRunDetails, data)
    assert ours == models.TaskRunDetails()
    assert _wire.dumps(ours, _wire.REST) == _wire.dumps(models.TaskRunDetails(), _wire.REST)


def test_binary_with_invalid_utf8_string_is_rejected() -> None:
    data = b"\x0a\x02\xc3\x28"  # id = invalid UTF-8
    google = pb2_classes()["render.workflows.v1.TaskRunDetails"]
    with pytest.raises(DecodeError):
        google.FromString(data)
    with pytest.raises(WireFormatError) as info:
        _wire.from_binary(models.TaskRunDetails, data)
    assert info.value.field == "id"
