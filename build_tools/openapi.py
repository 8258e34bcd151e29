"""The OpenAPI 3.1 document of the REST API, derived from the buf module's descriptors.

``build_tools/codegen.py`` calls :func:`document_text` with the compiled descriptor set
and writes the result to :data:`OUTPUT` (``--check`` compares instead), so the document
is generated like ``render_sdk/_gen`` and never edited by hand. Every fact in it comes
from the schemas:

- one operation per ``rpc`` of every service whose ``(render.wire.v1.service_http)``
  transport is ``https`` (the task socket is not part of the REST API); its method, path
  template, body, query parameters, success status, SSE and raw bodies come from the
  rpc's ``(render.wire.v1.http)`` option, its summary from the rpc's comment;
- one schema per message those operations carry, in the REST dialect: keys are the
  ``(render.wire.v1.field).name`` or the lowerCamel proto name, inline-JSON ``bytes`` are
  free-form JSON (``{}``), enums are their ``(render.wire.v1.value)`` wire strings, and
  every field the codec always emits (no ``optional``, not a message, not
  ``EMPTY_ENCODING_OMIT``) is ``required``; ``unknown_*`` enum siblings, which never
  travel, are left out.

Two facts are not annotations, because they hold for every route alike and mirror how
the local server answers (``render_sdk/devserver/_api.py``): errors are the
``render.workflows.v1.Error`` message (``{"message": ...}``) with the statuses in
:data:`ERROR_STATUSES`, and routes under ``/v1`` take a bearer token while the other
base paths are presigned URLs authenticated by their signature.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
#: Where the document is committed (shipped in the package; the local server serves it).
OUTPUT: Final = ROOT / "render_sdk" / "devserver" / "openapi.json"

#: The error message every non-2xx answer carries.
ERROR_MESSAGE: Final = "render.workflows.v1.Error"
#: The error statuses any route may answer, and why (the local server's and Render's).
ERROR_STATUSES: Final = {
    400: "The request is invalid (a parameter, the path or the body); `message` says which.",
    401: "The API key is missing or wrong (`Authorization: Bearer <key>`).",
    403: "Refused: a cross-origin browser request, or a presigned URL that is expired or "
    "whose signature does not match.",
    404: "No such task, task run, object or route.",
    409: "Conflicts with the current state (an idempotency key reused with another call, "
    "canceling a finished run).",
    413: "The request body is larger than the route accepts.",
    415: "A JSON route got a body that is not `application/json`.",
    421: "The `Host` header is not an address of this server (DNS rebinding guard).",
    429: "Rate limited (Render's API; the local server does not limit).",
    500: "An internal error.",
    503: "Temporarily unavailable (Render's API).",
}
#: Routes under this prefix take the API key; other base paths are presigned URLs.
BEARER_PREFIX: Final = "/v1"

_OPTIONS_PACKAGE: Final = "render.wire.v1"
_TRANSPORT_REST: Final = "https"
_DIALECT_REST: Final = 1
_BYTES_INLINE_JSON: Final = 2
_EMPTY_OMIT: Final = 2
#: Well-known types as their JSON mapping (ProtoJSON's, which the codec follows).
_WELL_KNOWN: Final[dict[str, dict[str, Any]]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"},
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.Value": {},
    ".google.protobuf.ListValue": {"type": "array"},
}
_EMPTY: Final = ".google.protobuf.Empty"
_JSON: Final = "application/json"
_SSE: Final = "text/event-stream"

# descriptor.proto's field numbers of the source-info paths read for comments.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED = 2, 3
_SERVICE_METHOD = 2


class _Pool:
    """The descriptor set with its options decoded and its comments indexed."""

    def __init__(self, fds_bytes: bytes) -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        self.fds = descriptor_pb2.FileDescriptorSet.FromString(fds_bytes)
        pool = descriptor_pool.DescriptorPool()
        for file in self.fds.file:
            pool.Add(file)
        self._pool = pool
        self._factory = message_factory
        self.messages: dict[str, Any] = {}
        self.enums: dict[str, Any] = {}
        self.comments: dict[str, str] = {}
        self.dialects: dict[str, int] = {}
        for file in self.fds.file:
            file_dialect = self.option(file.options, "FileOptions", "dialect")
            docs = {
                tuple(loc.path): loc.leading_comments.strip()
                for loc in file.source_code_info.location
                if loc.leading_comments
            }
            prefix = f".{file.package}" if file.package else ""
            for i, msg in enumerate(file.message_type):
                self._index_message(msg, prefix, (_FILE_MESSAGE, i), docs, file_dialect)
            for i, enum in enumerate(file.enum_type):
                name = f"{prefix}.{enum.name}"
                self.enums[name] = enum
                self.comments[name] = docs.get((_FILE_ENUM, i), "")
            for si, service in enumerate(file.service):
                name = f"{prefix}.{service.name}"
                self.comments[name] = docs.get((_FILE_SERVICE, si), "")
                for mi, method in enumerate(service.method):
                    path = (_FILE_SERVICE, si, _SERVICE_METHOD, mi)
                    self.comments[f"{name}.{method.name}"] = docs.get(path, "")

    def _index_message(
        self, msg: Any, prefix: str, path: tuple[int, ...], docs: dict[tuple[int, ...], str],
        dialect: int | None,
    ) -> None:  # fmt: skip
        name = f"{prefix}.{msg.name}"
        self.messages[name] = msg
        self.comments[name] = docs.get(path, "")
        own = self.option(msg.options, "MessageOptions", "message_dialect")
        self.dialects[name] = own or dialect or _DIALECT_REST
        for fi, field in enumerate(msg.field):
            self.comments[f"{name}.{field.name}"] = docs.get((*path, _MESSAGE_FIELD, fi), "")
        for ni, nested in enumerate(msg.nested_type):
            self._index_message(nested, name, (*path, _MESSAGE_NESTED, ni), docs, dialect)

    def option(self, options: Any, kind: str, extension: str) -> Any:
        """The value of ``(render.wire.v1.<extension>)`` in ``options``, or None when unset."""
        cls = self._factory.GetMessageClass(
            self._pool.FindMessageTypeByName(f"google.protobuf.{kind}")
        )
        decoded = cls.FromString(options.SerializeToString())
        ext = self._pool.FindExtensionByName(f"{_OPTIONS_PACKAGE}.{extension}")
        return decoded.Extensions[ext] if decoded.HasExtension(ext) else None

    def services(self) -> Iterable[tuple[str, Any, Any]]:
        """(full name, service, ServiceHttp) of every service with an HTTP binding."""
        for file in sorted(self.fds.file, key=lambda f: f.name):
            for service in file.service:
                http = self.option(service.options, "ServiceOptions", "service_http")
                if http is not None:
                    yield f".{file.package}.{service.name}", service, http


def _summary(comment: str) -> tuple[str, str]:
    """The first sentence-line of a comment and the whole comment unwrapped."""
    paragraphs = [" ".join(p.split()) for p in comment.split("\n\n") if p.strip()]
    text = "\n\n".join(paragraphs)
    first = paragraphs[0] if paragraphs else ""
    return first.split(". ")[0].rstrip("."), text


class _Builder:
    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.schemas: dict[str, Any] = {}
        self._names: dict[str, str] = {}

    # ------------------------------------------------------------------ fields

    def field_wire(self, field: Any) -> Any:
        return self.pool.option(field.options, "FieldOptions", "field")

    def key(self, field: Any) -> str:
        wire = self.field_wire(field)
        if wire is not None and wire.name:
            return str(wire.name)
        return str(field.json_name)

    def always_present(self, field: Any) -> bool:
        """Whether the REST codec emits the field whatever its value."""
        from google.protobuf import descriptor_pb2

        wire = self.field_wire(field)
        if wire is not None and wire.empty == _EMPTY_OMIT:
            return False
        if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
            return True
        if field.proto3_optional or field.HasField("oneof_index"):
            return False
        return field.type != descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE

    def travels(self, field: Any) -> bool:
        wire = self.field_wire(field)
        return not (wire is not None and wire.holds_unknown_enum)

    def value_schema(self, field: Any) -> dict[str, Any]:
        """The schema of one value of ``field`` (an element, for repeated fields)."""
        from google.protobuf import descriptor_pb2

        t = descriptor_pb2.FieldDescriptorProto
        wire = self.field_wire(field)
        if field.type == t.TYPE_BYTES:
            if wire is not None and wire.bytes == _BYTES_INLINE_JSON:
                # Any JSON value, inline; null when empty.
                return {}
            return {"type": ["string", "null"], "contentEncoding": "base64"}
        if field.type == t.TYPE_STRING:
            return {"type": "string"}
        if field.type == t.TYPE_BOOL:
            return {"type": "boolean"}
        if field.type in (t.TYPE_DOUBLE, t.TYPE_FLOAT):
            return {"type": "number"}
        if field.type in (t.TYPE_INT32, t.TYPE_SINT32, t.TYPE_SFIXED32):
            return {"type": "integer", "format": "int32"}
        if field.type in (t.TYPE_INT64, t.TYPE_SINT64, t.TYPE_SFIXED64):
            return {"type": "integer", "format": "int64"}
        if field.type in (t.TYPE_UINT32, t.TYPE_FIXED32, t.TYPE_UINT64, t.TYPE_FIXED64):
            return {"type": "integer", "minimum": 0}
        if field.type == t.TYPE_ENUM:
            return self.enum_schema(field.type_name)
        if field.type == t.TYPE_MESSAGE:
            if field.type_name in _WELL_KNOWN:
                return dict(_WELL_KNOWN[field.type_name])
            if field.type_name.startswith(".google.protobuf."):
                raise SystemExit(f"openapi: {field.name}: unsupported type {field.type_name}")
            return self.ref(field.type_name)
        raise SystemExit(f"openapi: {field.name}: unsupported field type {field.type}")

    def field_schema(self, owner: str, field: Any) -> dict[str, Any]:
        from google.protobuf import descriptor_pb2

        schema = self.value_schema(field)
        if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
            schema = {"type": "array", "items": schema}
        _, text = _summary(self.pool.comments.get(f"{owner}.{field.name}", ""))
        if text:
            schema = {**schema, "description": text} if "$ref" not in schema else schema
        return schema

    # ------------------------------------------------------------------ types

    def enum_schema(self, type_name: str) -> dict[str, Any]:
        enum = self.pool.enums[type_name]
        values: list[str] = []
        for value in enum.value:
            wire = self.pool.option(value.options, "EnumValueOptions", "value")
            if wire is None or not wire.name:
                raise SystemExit(f"openapi: {value.name} has no (render.wire.v1.value).name")
            values.append(str(wire.name))
        return self.ref(type_name, {"type": "string", "enum": values})

    def component_name(self, type_name: str) -> str:
        short = type_name.rsplit(".", 1)[-1]
        owner = self._names.setdefault(short, type_name)
        if owner != type_name:
            raise SystemExit(f"openapi: {type_name} and {owner} would share the schema {short}")
        return short

    def ref(self, type_name: str, enum_schema: dict[str, Any] | None = None) -> dict[str, Any]:
        name = self.component_name(type_name)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive messages refer to it meanwhile
            _, text = _summary(self.pool.comments.get(type_name, ""))
            schema = enum_schema if enum_schema is not None else self.message_schema(type_name)
            if text:
                schema = {**schema, "description": text}
            self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def message_schema(self, type_name: str, skip: Iterable[str] = ()) -> dict[str, Any]:
        if self.pool.dialects[type_name] != _DIALECT_REST:
            raise SystemExit(f"openapi: {type_name} is not in the REST dialect")
        msg = self.pool.messages[type_name]
        skipped = set(skip)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in msg.field:
            if field.name in skipped or not self.travels(field):
                continue
            key = self.key(field)
            properties[key] = self.field_schema(type_name, field)
            if self.always_present(field):
                required.append(key)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema

    def field_named(self, type_name: str, name: str) -> Any:
        for field in self.pool.messages[type_name].field:
            if field.name == name:
                return field
        raise SystemExit(f"openapi: {type_name} has no field {name!r}")

    # ------------------------------------------------------------------ operations

    def operation(self, service: str, method: Any, base_path: str) -> tuple[str, str, Any]:
        rule = self.pool.option(method.options, "MethodOptions", "http")
        if rule is None or not rule.method or not rule.path:
            raise SystemExit(f"openapi: {service}.{method.name} has no (render.wire.v1.http)")
        request = method.input_type
        path, path_fields = self.path(base_path, str(rule.path), request)
        summary, description = _summary(self.pool.comments.get(f"{service}.{method.name}", ""))
        op: dict[str, Any] = {
            "operationId": method.name,
            "tags": [service.rsplit(".", 1)[-1]],
            "summary": summary,
        }
        if description.rstrip(".") != summary:
            op["description"] = description
        parameters = [self.path_parameter(request, name) for name in path_fields]
        parameters += [self.query_parameter(request, name) for name in rule.query]
        if parameters:
            op["parameters"] = parameters
        if rule.body or (rule.raw_media_type and rule.no_content):
            op["requestBody"] = self.request_body(rule, request, {*path_fields, *rule.query})
        op["responses"] = self.responses(rule, method.output_type)
        if not path.startswith(BEARER_PREFIX + "/"):
            op["security"] = []  # a presigned URL: its signature is the credential
        return path, str(rule.method).lower(), op

    def path(self, base_path: str, template: str, request: str) -> tuple[str, list[str]]:
        """The OpenAPI path (wire-keyed ``{param}`` segments) and the path fields, in order."""
        parts: list[str] = []
        fields: list[str] = []
        for segment in template.split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                name = segment[1:-1].split("=", 1)[0]
                fields.append(name)
                parts.append("{" + self.key(self.field_named(request, name)) + "}")
            else:
                parts.append(segment)
        return base_path + "/".join(parts), fields

    def path_parameter(self, request: str, name: str) -> dict[str, Any]:
        field = self.field_named(request, name)
        schema = self.value_schema(field)
        if schema.get("type") == "string":
            schema["minLength"] = 1  # an empty segment is another route
        param: dict[str, Any] = {
            "name": self.key(field),
            "in": "path",
            "required": True,
            "schema": schema,
        }
        _, text = _summary(self.pool.comments.get(f"{request}.{name}", ""))
        if text:
            param["description"] = text
        return param

    def query_parameter(self, request: str, name: str) -> dict[str, Any]:
        field = self.field_named(request, name)
        param: dict[str, Any] = {
            "name": self.key(field),
            "in": "query",
            "required": False,
            "schema": self.field_schema(request, field),
        }
        if param["schema"].get("type") == "array":
            param["style"] = "form"
            param["explode"] = True  # repeated fields repeat the key
        description = param["schema"].pop("description", "")
        if description:
            param["description"] = description
        return param

    def request_body(self, rule: Any, request: str, elsewhere: set[str]) -> dict[str, Any]:
        """The JSON body (``body``), or the raw bytes of a raw route without an answer body."""
        if not rule.body:
            media = str(rule.raw_media_type)
            return {
                "required": True,
                "content": {media: {"schema": {"type": "string", "contentMediaType": media}}},
            }
        if rule.body == "*":
            schema = (
                self.message_schema(request, skip=elsewhere) if elsewhere else self.ref(request)
            )
        else:
            schema = self.value_schema(self.field_named(request, str(rule.body)))
        return {"required": True, "content": {_JSON: {"schema": schema}}}

    def responses(self, rule: Any, response: str) -> dict[str, Any]:
        status = str(rule.success_status or 200)
        success: dict[str, Any]
        if rule.no_content:
            success = {"description": "Done; no body."}
        elif rule.raw_media_type:
            success = {
                "description": "The raw bytes.",
                "content": {
                    str(rule.raw_media_type): {
                        "schema": {"type": "string", "contentMediaType": str(rule.raw_media_type)}
                    }
                },
            }
        elif response == _EMPTY:
            raise SystemExit(f"openapi: an rpc answers {_EMPTY} without no_content")
        elif rule.server_sent_events:
            success = {
                "description": "A stream of server-sent events (each described below as an "
                "object of its fields; `data` is one line of JSON).",
                "content": {_SSE: {"schema": self.event_schema(rule, response)}},
            }
        else:
            schema = self.response_schema(rule, response)
            success = {"description": "OK.", "content": {_JSON: {"schema": schema}}}
        answers: dict[str, Any] = {status: success}
        for code in ERROR_STATUSES:
            answers[str(code)] = {"$ref": f"#/components/responses/Error{code}"}
        return answers

    def event_schema(self, rule: Any, response: str) -> dict[str, Any]:
        """One server-sent event, as an object of its SSE fields (``event``, ``id``, ``data``).

        The streamed message's fields name the SSE fields; its ``response_body`` field is
        the ``data:`` line, JSON text whose schema is given with ``contentSchema`` (the
        way OpenAPI before 3.2 describes each event of a ``text/event-stream``).
        """
        if not rule.response_body:
            raise SystemExit(f"openapi: an SSE rpc answering {response} needs response_body")
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in self.pool.messages[response].field:
            key = self.key(field)
            if field.name == rule.response_body:
                properties[key] = {
                    "type": "string",
                    "contentMediaType": _JSON,
                    "contentSchema": self.value_schema(field),
                }
                required.append(key)  # an event without data is never dispatched
            else:
                properties[key] = {"type": "string"}
                if self.always_present(field):
                    required.append(key)
        _, text = _summary(self.pool.comments.get(response, ""))
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "description": text,
        }

    def response_schema(self, rule: Any, response: str) -> dict[str, Any]:
        if not rule.response_body:
            return self.ref(response)
        return self.field_schema(response, self.field_named(response, str(rule.response_body)))


def document(fds_bytes: bytes) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every REST (``https``) service in the descriptor set."""
    pool = _Pool(fds_bytes)
    builder = _Builder(pool)
    paths: dict[str, dict[str, Any]] = {}
    tags: list[dict[str, str]] = []
    for name, service, http in pool.services():
        if http.transport != _TRANSPORT_REST:
            continue
        if http.dialect != _DIALECT_REST:
            raise SystemExit(f"openapi: {name} is https but not in the REST dialect")
        _, text = _summary(pool.comments.get(name, ""))
        tags.append({"name": service.name, "description": text})
        for method in service.method:
            path, verb, op = builder.operation(name, method, str(http.base_path))
            if verb in paths.setdefault(path, {}):
                raise SystemExit(f"openapi: two rpcs bind {verb.upper()} {path}")
            paths[path][verb] = op
    error = builder.ref("." + ERROR_MESSAGE)
    responses = {
        f"Error{code}": {"description": why, "content": {_JSON: {"schema": error}}}
        for code, why in ERROR_STATUSES.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Render Workflows REST API (render_sdk local task server)",
            "version": "1",
            "description": (
                "GENERATED by build_tools/codegen.py (build_tools/openapi.py) from the "
                "service definitions and wire annotations in proto/. Do not edit.\n\n"
                "Paths are relative to the server: the local task server "
                "(`render-workflows dev`, http://localhost:8120) serves this document at "
                "/openapi.json; Render's API is https://api.render.com (which does not serve "
                "the /_local-objects presigned routes). Routes under /v1 take "
                "`Authorization: Bearer <API key>`; the local server checks it only when "
                "started with an API key. Every error is a JSON `Error` body."
            ),
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "responses": responses,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


def document_text(fds_bytes: bytes) -> str:
    """The document as committed: indented JSON with a final newline."""
    return json.dumps(document(fds_bytes), indent=2, ensure_ascii=False) + "\n"
