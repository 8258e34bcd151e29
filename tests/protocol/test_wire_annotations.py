"""The codec is compiled from the wire annotations (render.wire.v1 options), nothing else.

Each check reads the annotations straight from Google's descriptors (compiled from
proto/ at test time) and compares them with what the codec does: the key of every field
of every wire message, its bytes encoding, its unknown-enum sibling and every enum
value's wire string. The generated tables the codec reads must say the same.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from render_sdk import _wire, models
from render_sdk._gen import wire_tables
from render_sdk.models import tasksocket

from ._support import bp_class, pb2_classes

_OPTIONS = "render.wire.v1.options_pb2"


def _options() -> Any:
    """The compiled options module (pb2_classes() imports every schema's pb2 module)."""
    pb2_classes()
    return sys.modules[_OPTIONS]


WIRE_MESSAGES = sorted(
    n for n in pb2_classes() if n.startswith("render.") and not n.startswith("render.wire.v1.")
)


def _dialect(desc: Any) -> _wire.Dialect:
    opts = _options()
    file_dialect = desc.file.GetOptions().Extensions[opts.dialect]
    assert file_dialect in (opts.DIALECT_REST, opts.DIALECT_SOCKET), desc.file.name
    return _wire.REST if file_dialect == opts.DIALECT_REST else _wire.SOCKET


@pytest.mark.parametrize("name", WIRE_MESSAGES)
def test_annotated_keys_and_bytes_encodings_match_the_codec(name: str) -> None:
    opts = _options()
    desc = pb2_classes()[name].DESCRIPTOR
    dialect = _dialect(desc)
    assert wire_tables.MESSAGES[name].dialect == dialect.name
    codec = _wire._compile(bp_class(name), dialect)
    by_attr = {f.attr: f for f in codec.fields}
    for field in desc.fields:
        wire = field.GetOptions().Extensions[opts.field]
        default = field.json_name if dialect is _wire.REST else field.name
        got = by_attr[field.name]
        if wire.holds_unknown_enum:
            assert got.hidden, field.full_name
            continue
        assert got.key == (wire.name or default), field.full_name
        assert set(wire.aliases) <= set(got.keys), field.full_name
        if field.type == field.TYPE_BYTES:
            inline = wire.bytes == opts.BYTES_ENCODING_INLINE_JSON
            assert inline == (got.encode is _wire._enc_inline_json), field.full_name
        if wire.unknown_enum_field:
            assert got.enum_unknown_attr == wire.unknown_enum_field, field.full_name


def test_every_enum_value_has_the_wire_string_the_codec_emits() -> None:
    opts = _options()
    desc = pb2_classes()["render.workflows.v1.TaskRun"].DESCRIPTOR.fields_by_name["status"]
    codec = _wire._compile(bp_class("render.workflows.v1.TaskRun"), _wire.REST)
    status = next(f for f in codec.fields if f.attr == "status")
    for value in desc.enum_type.values:
        wire = value.GetOptions().Extensions[opts.value]
        assert wire.name, value.name
        assert status.encode(status.enum_cls(value.number)) == f'"{wire.name}"', value.name
        assert status.decode(wire.name, "status") is status.enum_cls(value.number)


def test_the_default_dialect_is_the_messages_own() -> None:
    details = models.TaskRunDetails(id="trn-1", results_json=b"[25]")
    assert _wire.dumps(details) == _wire.dumps(details, _wire.REST)
    call = tasksocket.RunSubtaskRequest(task_name="square", input=b"[3]")
    assert _wire.dumps(call) == _wire.dumps(call, _wire.SOCKET)
    assert b'"task_name"' in _wire.dumps(call)
    assert _wire.loads(tasksocket.RunSubtaskRequest, _wire.dumps(call)) == call


def test_an_annotated_alias_decodes_and_is_never_written() -> None:
    request = _wire.from_dict(models.ListLogsRequest, {"taskRunID": ["trn-1"]})
    assert request.task_run == ["trn-1"]
    assert b"taskRunID" not in _wire.dumps(request)


def test_a_class_outside_the_schemas_is_refused() -> None:
    class Stray(models.Task):
        """A subclass of a generated class: it has its base's wire facts."""

    assert _wire._wire_facts(Stray) is wire_tables.MESSAGES["render.workflows.v1.Task"]
    with pytest.raises(TypeError, match="not a message generated from proto"):
        _wire._wire_facts(int)
