"""Cross-check (a): betterproto2's binary encoding is Google protobuf's (upb), both ways.

The ``_pb2`` modules are compiled from proto/ at test time (build_tools/vectors.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from render_sdk import _wire

from ._support import Vector, load_vectors, pb2_classes

VECTORS = load_vectors()


def google_class(v: Vector) -> Any:
    return pb2_classes()[v.message]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_golden_binary_is_canonical_for_google(v: Vector) -> None:
    msg = google_class(v).FromString(v.binary)
    assert msg.SerializeToString(deterministic=True) == v.binary
    assert json_format.MessageToDict(msg) == v.proto_json


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_betterproto2_reencodes_golden_binary_identically(v: Vector) -> None:
    ours = _wire.from_binary(v.cls, v.binary)
    assert _wire.to_binary(ours) == v.binary


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_google_parses_betterproto2_bytes_to_the_same_message(v: Vector) -> None:
    ours = _wire.from_binary(v.cls, v.binary)
    theirs = google_class(v).FromString(_wire.to_binary(ours))
    assert theirs == google_class(v).FromString(v.binary)
    assert json_format.MessageToDict(theirs) == v.proto_json


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.id)
def test_betterproto2_parses_google_bytes_like_our_json_decoder(v: Vector) -> None:
    """Google's bytes -> betterproto2 equals the message our codec decodes from the wire JSON."""
    google_bytes = google_class(v).FromString(v.binary).SerializeToString()
    from_google = _wire.from_binary(v.cls, google_bytes)
    from_wire = _wire.from_dict(v.cls, v.wire, v.dialect)
    assert _wire.to_binary(from_wire) == google_bytes
    assert from_google == from_wire
