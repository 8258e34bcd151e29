"""The wire annotations (render.wire.v1 options) say what the codec does today.

Until the codec is compiled from the annotations, this proves the two agree on every
field of every wire message: its key, its bytes encoding and its enum wire strings.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from render_sdk import _wire

from ._support import bp_class, pb2_classes

_OPTIONS = "render.wire.v1.options_pb2"


def _options() -> Any:
    """The compiled options module (pb2_classes() imports every schema's pb2 module)."""
    pb2_classes()
    return sys.modules[_OPTIONS]


WIRE_MESSAGES = sorted(
    n for n in pb2_classes() if n.startswith("render.") and not n.startswith("render.wire.v1.")
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@pytest.mark.parametrize("name", WIRE_MESSAGES)
def test_annotated_keys_and_bytes_encodings_match_the_codec(name: str) -> None:
    opts = _options()
    desc = pb2_classes()[name].DESCRIPTOR
    file_dialect = desc.file.GetOptions().Extensions[opts.dialect]
    assert file_dialect in (opts.DIALECT_REST, opts.DIALECT_SOCKET), desc.file.name
    dialect = _wire.REST if file_dialect == opts.DIALECT_REST else _wire.SOCKET
    codec = _wire._compile(bp_class(name), dialect)
    by_attr = {f.attr: f for f in codec.fields}
    for field in desc.fields:
        wire = field.GetOptions().Extensions[opts.field]
        default = _camel(field.name) if dialect is _wire.REST else field.name
        got = by_attr[field.name]
        if wire.holds_unknown_enum:
            assert got.hidden, field.full_name
            continue
        assert got.key == (wire.name or default), field.full_name
        if field.type == field.TYPE_BYTES:
            inline = wire.bytes == opts.BYTES_ENCODING_INLINE_JSON
            assert inline == (got.encode is _wire._enc_inline_json), field.full_name
            assert wire.empty == opts.EMPTY_ENCODING_NULL, field.full_name
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
