"""Golden vectors: derive the protobuf binary and canonical ProtoJSON of each wire case.

The wire cases in ``tests/vectors/cases/*.json`` are written by hand from the documented
Render wire facts (shared/reference). This script turns each case into a message with
**Google's** protobuf runtime (never with render_sdk's codec, which the vectors check),
using an independent, deliberately plain implementation of the wire conventions written
in the ``.proto`` files, and stores that message's binary (hex) and its ProtoJSON as
``google.protobuf.json_format`` prints it in ``tests/vectors/golden/*.json``.

Usage::

    python build_tools/vectors.py            # (re)write tests/vectors/golden/
    python build_tools/vectors.py --check    # exit 1 when golden/ is stale

The ``_pb2`` modules are compiled at run time into a temporary directory with
``python -m grpc_tools.protoc --python_out``; they are never committed.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
VECTORS_DIR = ROOT / "tests" / "vectors"
CASES_DIR = VECTORS_DIR / "cases"
GOLDEN_DIR = VECTORS_DIR / "golden"
#: Wire dialect of each proto package: REST is camelCase, SOCKET snake_case.
DIALECTS = {
    "render.workflows.v1": "rest",
    "render.objects.v1": "rest",
    "render.tasksocket.v1": "socket",
}
_JSON_SUFFIX = "_json"
_UNKNOWN_PREFIX = "unknown_"

_pb2_cache: dict[str, Any] = {}
_pb2_tmp: list[tempfile.TemporaryDirectory[str]] = []


def proto_files() -> list[Path]:
    """Every ``.proto`` file of the buf module, sorted."""
    return sorted(PROTO_DIR.rglob("*.proto"))


def compile_pb2() -> dict[str, Any]:
    """Compile ``proto/`` with grpc_tools' protoc and return message classes by full name.

    Compiled once per process into a temporary directory (Google's descriptor pool is
    process-wide, so the modules are imported only once).
    """
    if _pb2_cache:
        return _pb2_cache
    import grpc_tools
    from google.protobuf import message_factory

    tmp = tempfile.TemporaryDirectory(prefix="render-sdk-pb2-")
    _pb2_tmp.append(tmp)  # removed at interpreter exit
    include = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_DIR)) for p in proto_files()]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp.name}",
            *files,
        ],
        check=True,
    )
    sys.path.insert(0, tmp.name)
    try:
        for rel in files:
            module = importlib.import_module(rel[: -len(".proto")].replace("/", ".") + "_pb2")
            for desc in module.DESCRIPTOR.message_types_by_name.values():
                _pb2_cache[desc.full_name] = message_factory.GetMessageClass(desc)
    finally:
        sys.path.remove(tmp.name)
    return _pb2_cache


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def wire_key(field_name: str, dialect: str) -> str:
    """The key a field travels under (see the conventions in the .proto files)."""
    base = field_name[: -len(_JSON_SUFFIX)] if field_name.endswith(_JSON_SUFFIX) else field_name
    return _camel(base) if dialect == "rest" else base


def _enum_value_name(enum_desc: Any, wire: str) -> str | None:
    """``"completed"`` -> ``"TASK_RUN_STATUS_COMPLETED"`` when the enum has that value."""
    prefix = enum_desc.values[0].name.removesuffix("UNSPECIFIED")
    name = prefix + wire.upper()
    return name if name in enum_desc.values_by_name else None


def _element_to_proto_json(field: Any, value: Any, dialect: str) -> Any:
    from google.protobuf.descriptor import FieldDescriptor as F

    if field.type == F.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return value  # RFC 3339 on both
        return wire_to_proto_json(field.message_type, value, dialect)
    if field.type == F.TYPE_BYTES:
        if dialect == "rest" and field.name.endswith(_JSON_SUFFIX):
            # Inline JSON on the wire; the message holds its compact UTF-8 text.
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            return base64.b64encode(text.encode("utf-8")).decode("ascii")
        return value  # base64 on both
    return value


def wire_to_proto_json(desc: Any, wire: dict[str, Any], dialect: str) -> dict[str, Any]:
    """Translate a Render wire JSON object of message ``desc`` into ProtoJSON (a dict).

    ``null`` means absent; unknown keys are ignored; an enum string the schema does not
    know goes to the ``unknown_<field>`` sibling, as the conventions say.
    """
    from google.protobuf.descriptor import FieldDescriptor as F

    if not isinstance(wire, dict):
        raise TypeError(f"{desc.full_name}: expected an object, got {wire!r}")
    by_key = {wire_key(f.name, dialect): f for f in desc.fields}
    out: dict[str, Any] = {}
    for key, value in wire.items():
        field = by_key.get(key)
        if field is None or value is None or field.name.startswith(_UNKNOWN_PREFIX):
            continue
        if field.type == F.TYPE_ENUM:
            name = _enum_value_name(field.enum_type, value)
            if name is None:
                unknown = desc.fields_by_name[_UNKNOWN_PREFIX + field.name]
                out[unknown.json_name] = value
            else:
                out[field.json_name] = name
            continue
        if field.is_repeated:
            out[field.json_name] = [_element_to_proto_json(field, v, dialect) for v in value]
        else:
            out[field.json_name] = _element_to_proto_json(field, value, dialect)
    return out


def case_wire(case: dict[str, Any]) -> Any:
    """A case's wire JSON: ``raw`` (a documented body, byte for byte) or ``wire``."""
    return json.loads(case["raw"]) if "raw" in case else case["wire"]


def load_cases() -> dict[str, list[dict[str, Any]]]:
    """The hand-written cases, by proto package."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))["cases"]
        for path in sorted(CASES_DIR.glob("*.json"))
    }


def golden_for(package: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Binary and ProtoJSON of every case of one package, via Google's runtime."""
    from google.protobuf import json_format

    classes = compile_pb2()
    dialect = DIALECTS[package]
    out = []
    for case in cases:
        cls = classes[case["message"]]
        proto_json = wire_to_proto_json(cls.DESCRIPTOR, case_wire(case), dialect)
        msg = json_format.ParseDict(proto_json, cls())
        out.append(
            {
                "name": case["name"],
                "message": case["message"],
                "binary_hex": msg.SerializeToString(deterministic=True).hex(),
                "proto_json": json_format.MessageToDict(msg),
            }
        )
    return {
        "generated_by": "build_tools/vectors.py from tests/vectors/cases/" + package + ".json",
        "dialect": dialect,
        "cases": out,
    }


def render_golden(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when golden/ is stale")
    args = parser.parse_args(argv)
    stale = []
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    expected_files = set()
    for package, cases in load_cases().items():
        target = GOLDEN_DIR / f"{package}.json"
        expected_files.add(target.name)
        text = render_golden(golden_for(package, cases))
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT)} ({len(cases)} cases)")
    for extra in sorted(p.name for p in GOLDEN_DIR.glob("*.json")):
        if extra not in expected_files:
            stale.append(extra)
    if stale:
        print(f"stale golden vectors: {', '.join(stale)}; run python build_tools/vectors.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
