"""The golden vectors themselves: complete (every message of proto/) and fresh."""

from __future__ import annotations

import collections
import json

from render_sdk import models

from ._support import bp_class, load_vectors, pb2_classes, vectors_tool


def _is_wire_message(name: str) -> bool:
    # render.wire.v1 annotates the wires (read from the descriptors by codegen); its
    # messages never travel, so they have neither a vector nor a Python model.
    return name.startswith("render.") and not name.startswith("render.wire.v1.")


def test_every_message_in_proto_has_a_vector() -> None:
    messages = {name for name in pb2_classes() if _is_wire_message(name)}
    covered = {v.message for v in load_vectors()}
    assert messages - covered == set(), "messages without a golden vector"
    assert covered - messages == set(), "vectors naming messages that do not exist"
    assert len(messages) == 45


def test_every_message_has_a_public_model() -> None:
    for name in pb2_classes():
        if _is_wire_message(name):
            # Task-socket envelopes have their own public namespace.
            home = models.tasksocket if name.startswith("render.tasksocket.") else models
            assert bp_class(name).__name__ in home.__all__


def test_vector_names_are_unique_per_package() -> None:
    counts = collections.Counter(v.id for v in load_vectors())
    assert [k for k, n in counts.items() if n > 1] == []


def test_every_package_has_golden_data_for_each_case() -> None:
    tool = vectors_tool()
    for package, cases in tool.load_cases().items():
        golden = json.loads((tool.GOLDEN_DIR / f"{package}.json").read_text(encoding="utf-8"))
        assert [g["name"] for g in golden["cases"]] == [c["name"] for c in cases]


def test_golden_files_match_a_fresh_generation() -> None:
    """golden/ is what build_tools/vectors.py derives from the hand-written cases today."""
    tool = vectors_tool()
    for package, cases in tool.load_cases().items():
        on_disk = (tool.GOLDEN_DIR / f"{package}.json").read_text(encoding="utf-8")
        assert on_disk == tool.render_golden(tool.golden_for(package, cases)), (
            f"{package}: run python build_tools/vectors.py"
        )


def test_raw_cases_are_compact_documented_bodies() -> None:
    """A ``raw`` body is kept byte for byte: compact JSON as the wire carries it."""
    raws = [v for v in load_vectors() if v.raw is not None]
    assert len(raws) > 60
    for v in raws:
        assert v.raw == json.dumps(v.wire, separators=(",", ":"), ensure_ascii=False), v.id
