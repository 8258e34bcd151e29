"""Shared helpers of the protocol proofs: golden vectors, message classes on both runtimes."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import betterproto2

from render_sdk import _wire, models

ROOT = Path(__file__).resolve().parents[2]
VECTORS_SCRIPT = ROOT / "build_tools" / "vectors.py"
DIALECTS = {"rest": _wire.REST, "socket": _wire.SOCKET}


@functools.cache
def vectors_tool() -> ModuleType:
    """``build_tools/vectors.py`` as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("render_sdk_build_vectors", VECTORS_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pb2_classes() -> dict[str, Any]:
    """Google protobuf (upb) message classes compiled from proto/ at test time, by full name."""
    classes: dict[str, Any] = vectors_tool().compile_pb2()
    return classes


@functools.cache
def bp_class(full_name: str) -> type[betterproto2.Message]:
    """The class apps use for a proto message: ``render_sdk.models.<Name>``."""
    package, _, name = full_name.rpartition(".")
    generated = getattr(importlib.import_module(f"render_sdk._gen.{package}"), name)
    home = models.tasksocket if package == "render.tasksocket.v1" else models
    public = getattr(home, name)
    assert issubclass(public, generated), (public, generated)
    cls: type[betterproto2.Message] = public
    return cls


@dataclasses.dataclass(frozen=True)
class Vector:
    """One golden vector: the hand-written wire case joined with its generated golden data."""

    package: str
    name: str
    message: str
    dialect_name: str
    wire: Any
    raw: str | None
    ordered: bool
    encodes_to: Any
    binary: bytes
    proto_json: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.package}:{self.name}"

    @property
    def dialect(self) -> _wire.Dialect:
        return DIALECTS[self.dialect_name]

    @property
    def cls(self) -> type[betterproto2.Message]:
        return bp_class(self.message)

    @property
    def canonical(self) -> Any:
        """What our encoder must produce for the decoded message."""
        return self.wire if self.encodes_to is None else self.encodes_to


@functools.cache
def load_vectors() -> tuple[Vector, ...]:
    tool = vectors_tool()
    out = []
    for package, cases in tool.load_cases().items():
        golden_path = tool.GOLDEN_DIR / f"{package}.json"
        golden = json.loads(golden_path.read_text(encoding="utf-8"))
        by_name = {g["name"]: g for g in golden["cases"]}
        for case in cases:
            g = by_name[case["name"]]
            assert g["message"] == case["message"], case["name"]
            out.append(
                Vector(
                    package=package,
                    name=case["name"],
                    message=case["message"],
                    dialect_name=tool.DIALECTS[package],
                    wire=tool.case_wire(case),
                    raw=case.get("raw"),
                    ordered=case.get("ordered", True),
                    encodes_to=case.get("encodes_to"),
                    binary=bytes.fromhex(g["binary_hex"]),
                    proto_json=g["proto_json"],
                )
            )
    return tuple(out)


def canonical_json(value: Any) -> str:
    """A type-exact, order-free rendering for comparisons (1 != 1.0 != true)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


def compact_json(value: Any) -> bytes:
    """The compact rendering our codec writes, key order kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
