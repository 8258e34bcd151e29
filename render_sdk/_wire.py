"""The wire codec: generated message dataclasses <-> the JSON every render_sdk wire carries.

Two JSON dialects share one set of rules:

* ``REST`` — Render's public API, the local task server's API, SSE data and object
  storage: camelCase keys.
* ``SOCKET`` — the task socket between a task process and its task server: snake_case keys.

Every wire fact comes from the ``(render.wire.v1.*)`` annotations of the schemas
(``proto/render/wire/v1/options.proto``), which build_tools/codegen.py turns into the
tables of ``render_sdk._gen.wire_tables``: each message's own dialect, each field's key,
the keys decoders accept, which ``bytes`` travel as inline JSON, how empty values
travel, which string sibling keeps an unknown enum string, and the strings of every
enum value. The codec reads only those tables and the betterproto2 field types; it
derives nothing from field names. Rules no annotation varies:

* Fields without ``optional`` are always emitted (empty or zero included) unless their
  ``empty`` annotation says otherwise; ``optional`` fields and unset messages are omitted.
* int64 are JSON numbers (numeric strings are accepted), timestamps RFC 3339 in UTC.
* Unknown keys are ignored (a newer peer may send more).

Encoders and decoders are compiled once per message class and dialect from the
betterproto2 field metadata, so they run in microseconds (betterproto2's own
``to_dict``/``from_dict`` take hundreds). Every failure is a :class:`WireFormatError`
naming the field; nothing else escapes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import dataclasses
import datetime as _dt
import json
import json.encoder
import math
import re
import sys
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import betterproto2

from ._errors import WireFormatError
from ._gen import wire_tables
from ._gen.message_pool import default_message_pool

__all__ = [
    "REST",
    "SOCKET",
    "Dialect",
    "decode_json_value",
    "dumps",
    "encode_json_value",
    "format_timestamp",
    "from_binary",
    "from_dict",
    "inline_json_fields",
    "loads",
    "parse_json",
    "parse_timestamp",
    "register_model",
    "to_binary",
    "to_dict",
]

M = TypeVar("M", bound=betterproto2.Message)

_INT32_RANGE: Final = (-(2**31), 2**31 - 1)
_INT64_RANGE: Final = (-(2**63), 2**63 - 1)
_UINT32_MAX: Final = 2**32 - 1
_UINT64_MAX: Final = 2**64 - 1
_INT_RANGES: Final = {
    "int32": _INT32_RANGE,
    "sint32": _INT32_RANGE,
    "sfixed32": _INT32_RANGE,
    "int64": _INT64_RANGE,
    "sint64": _INT64_RANGE,
    "sfixed64": _INT64_RANGE,
    "uint32": (0, _UINT32_MAX),
    "fixed32": (0, _UINT32_MAX),
    "uint64": (0, _UINT64_MAX),
    "fixed64": (0, _UINT64_MAX),
}


@dataclasses.dataclass(frozen=True)
class Dialect:
    """A JSON dialect: how field names are spelled on one wire."""

    name: str
    camel_case: bool


REST: Final = Dialect("rest", camel_case=True)
SOCKET: Final = Dialect("socket", camel_case=False)
_DIALECTS: Final = {REST.name: REST, SOCKET.name: SOCKET}


# --------------------------------------------------------------------------- HTTP facts

#: Response header of ``GET /task-runs/events`` by which a server promises that a new stream
#: starts with the current state of every requested run that is already terminal (and, with
#: ``Last-Event-ID``, replays what was missed). A client that sees it needs no ``GET`` of each
#: run after subscribing; Render's own servers do not send it, so clients read the runs then.
EVENTS_REPLAY_HEADER: Final = "X-Render-Events-Replay"
#: The header's one value so far.
EVENTS_REPLAY_TERMINAL: Final = "terminal"


# --------------------------------------------------------------------------- JSON values


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(raw: bytes | str, *, what: str = "body") -> Any:
    """Parse a complete JSON document strictly (no NaN/Infinity, UTF-8 only).

    Raises:
        WireFormatError: The text is not one valid JSON document.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        return _decoder.decode(text)
    except UnicodeDecodeError as exc:
        raise WireFormatError(f"is not valid UTF-8: {exc}", field=what) from None
    except (ValueError, RecursionError) as exc:
        raise WireFormatError(f"is not valid JSON: {exc}", field=what) from None


def encode_json_value(value: Any, *, what: str = "value") -> bytes:
    """Serialize a task input or result to compact UTF-8 JSON bytes.

    Raises:
        WireFormatError: The value is not JSON-serializable (the message names its
            type) or contains NaN/Infinity.
    """
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except TypeError as exc:
        raise WireFormatError(f"is not JSON-serializable: {exc}", field=what) from None
    except ValueError as exc:
        raise WireFormatError(f"cannot be encoded as JSON: {exc}", field=what) from None
    except RecursionError:
        raise WireFormatError("is nested too deeply to encode", field=what) from None


def decode_json_value(raw: bytes, *, what: str = "value") -> Any:
    """Decode the JSON bytes of an inline-JSON or socket bytes field; empty means None."""
    if not raw:
        return None
    return parse_json(raw, what=what)


# --------------------------------------------------------------------------- timestamps

_FAST_ISO: Final = sys.version_info >= (3, 11)
_INT_TEXT: Final = re.compile(r"-?\d+")
_TS_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))$"
)


def parse_timestamp(text: str) -> _dt.datetime:
    """Parse an RFC 3339 timestamp (any offset, up to 9 fractional digits) to UTC.

    Digits past microseconds are dropped (datetime's resolution).

    Raises:
        ValueError: The text is not an RFC 3339 timestamp.
    """
    m = _TS_RE.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp")
    value: _dt.datetime | None = None
    if _FAST_ISO:
        # The regex has validated the RFC 3339 shape; the C parser is 5x faster than ours.
        # It rejects the lowercase 't'/'z' RFC 3339 allows, which take the slow path.
        with contextlib.suppress(ValueError):
            value = _dt.datetime.fromisoformat(text)
    if value is None:
        year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
        frac = m.group(7) or ""
        micro = int((frac + "000000")[:6]) if frac else 0
        if m.group(8):
            tz = _dt.timezone.utc
        else:
            offset = _dt.timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
            tz = _dt.timezone(-offset if m.group(9) == "-" else offset)
        value = _dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    if value.utcoffset():
        value = value.astimezone(_dt.timezone.utc)
    return value


def format_timestamp(value: _dt.datetime) -> str:
    """Format a datetime as RFC 3339 in UTC with 0, 3 or 6 fractional digits (as ProtoJSON).

    A naive datetime is taken to be UTC.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    else:
        value = value.astimezone(_dt.timezone.utc)
    base = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    micro = value.microsecond
    if micro == 0:
        return base + "Z"
    if micro % 1000 == 0:
        return f"{base}.{micro // 1000:03d}Z"
    return f"{base}.{micro:06d}Z"


# --------------------------------------------------------------------------- compiled codecs

_Encoder = Callable[[Any], str]
_Decoder = Callable[[Any, str], Any]


@dataclasses.dataclass
class _Field:
    attr: str
    key: str  # the key this dialect writes
    keys: tuple[str, ...]  # every key decoders accept
    omit_none: bool  # optional scalar or singular message: omitted when None
    omit_empty: bool  # (render.wire.v1.field).empty = OMIT: omitted when its zero value
    repeated: bool
    encode: _Encoder  # one element -> JSON text
    decode: _Decoder  # one element, path -> Python value
    enum_unknown_attr: str | None = None  # sibling field keeping unknown enum strings
    enum_cls: Any = None
    hidden: bool = False  # never written (the unknown_* siblings)


@dataclasses.dataclass
class _MessageCodec:
    cls: type[betterproto2.Message]
    fields: list[_Field]
    by_key: dict[str, _Field]
    groups: dict[str, list[str]]  # oneof group -> attribute names
    emitted: list[_Field] = dataclasses.field(default_factory=list)  # fields minus hidden


_codecs: dict[tuple[type[Any], str], _MessageCodec] = {}
# Generated class -> the public subclass (render_sdk.models) that decoders build instead.
_public: dict[type[Any], type[Any]] = {}


def register_model(
    generated: type[betterproto2.Message], public: type[betterproto2.Message]
) -> None:
    """Make decoders build ``public`` (a subclass with accessors) where ``generated`` appears."""
    if not issubclass(public, generated):
        raise TypeError(f"{public.__name__} must subclass {generated.__name__}")
    _public[generated] = public


# The C string escaper behind json.dumps(ensure_ascii=False), without dumps' per-call setup.
_escape: Final[Callable[[str], str]] = json.encoder.encode_basestring


def _json_str(value: str) -> str:
    if value.__class__ is not str and not isinstance(value, str):
        raise WireFormatError(f"expected a string, got {_type_name(value)}")
    if not value.isascii():
        _check_utf8(value)
    return _escape(value)


def _check_utf8(value: str) -> None:
    # isascii() is O(1) in CPython; only non-ASCII text pays for this check.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WireFormatError(f"is not valid Unicode text: {exc.reason}") from None


def _make_enc_int(proto_type: str) -> _Encoder:
    lo, hi = _INT_RANGES[proto_type]

    def enc(value: int) -> str:
        if value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, int)):
            raise WireFormatError(f"expected an integer, got {_type_name(value)}")
        if not lo <= value <= hi:
            raise WireFormatError(f"{value} is out of range for {proto_type}")
        return str(int(value))

    return enc


def _enc_bool(value: bool) -> str:
    return "true" if value else "false"


def _enc_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise WireFormatError(f"{value} cannot be represented in JSON")
    return json.dumps(float(value))


def _enc_b64(value: bytes) -> str:
    if not value:
        return "null"
    return '"' + base64.b64encode(value).decode("ascii") + '"'


def _enc_b64_present(value: bytes) -> str:
    return '"' + base64.b64encode(value).decode("ascii") + '"'


def _enc_inline_json(value: bytes) -> str:
    if not value:
        return "null"
    text = value.decode("utf-8")
    try:
        parsed = _decoder.decode(text)  # raw bytes go inline: only valid JSON may
    except (ValueError, RecursionError) as exc:
        raise WireFormatError(f"does not hold valid JSON: {exc}") from None
    if "\n" in text or "\r" in text:  # one line: SSE data and log lines rely on it
        return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    return text


def _enc_timestamp(value: _dt.datetime) -> str:
    return '"' + format_timestamp(value) + '"'


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _dec_str(value: Any, path: str) -> str:
    if isinstance(value, str):
        if not value.isascii():
            try:
                _check_utf8(value)
            except WireFormatError as exc:
                raise WireFormatError(exc.message, field=path) from None
        return value
    raise WireFormatError(f"expected a string, got {_type_name(value)}", field=path)


def _dec_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise WireFormatError(f"expected a boolean, got {_type_name(value)}", field=path)


def _make_dec_int(proto_type: str) -> _Decoder:
    lo, hi = _INT_RANGES[proto_type]

    def dec(value: Any, path: str) -> int:
        if isinstance(value, bool):
            raise WireFormatError("expected an integer, got bool", field=path)
        if isinstance(value, int):
            result = value
        elif isinstance(value, float) and value.is_integer():
            result = int(value)
        elif isinstance(value, str) and _INT_TEXT.fullmatch(value):
            result = int(value)
        else:
            raise WireFormatError(f"expected an integer, got {value!r}", field=path)
        if not lo <= result <= hi:
            raise WireFormatError(f"{result} is out of range for {proto_type}", field=path)
        return result

    return dec


def _dec_float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireFormatError(f"expected a number, got {_type_name(value)}", field=path)
    result = float(value)
    if math.isnan(result) or math.isinf(result):
        raise WireFormatError("NaN and Infinity are not allowed", field=path)
    return result


def _dec_b64(value: Any, path: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise WireFormatError(f"expected a base64 string, got {_type_name(value)}", field=path)
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise WireFormatError("is not valid base64", field=path) from None


def _dec_inline_json(value: Any, path: str) -> bytes:
    if value is None:
        return b""
    return encode_json_value(value, what=path)


def _dec_timestamp(value: Any, path: str) -> _dt.datetime:
    if not isinstance(value, str):
        raise WireFormatError(
            f"expected an RFC 3339 timestamp string, got {_type_name(value)}", field=path
        )
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError) as exc:  # Overflow: year 1 / 9999 shifted by an offset
        raise WireFormatError(str(exc), field=path) from None


def _enum_codecs(enum_cls: Any, full_name: str) -> tuple[_Encoder, _Decoder]:
    # enum_cls is a generated WireEnum (render_sdk._gen.enums): members are their wire
    # strings and carry their protobuf number. The strings a decoder accepts (wire
    # strings, aliases and the schema names ProtoJSON uses) come from the wire table.
    from_wire: dict[str, Any] = {
        text: enum_cls(number) for text, number in wire_tables.ENUMS[full_name].items()
    }

    def enc(value: Any) -> str:
        # _name_/_value_ are plain instance attributes: faster than the name property.
        if not value._name_:
            return str(value.number)  # an unknown numeric value keeps its number
        wire: str = value._value_
        return '"' + wire + '"'

    def dec(value: Any, path: str) -> Any:
        if isinstance(value, str):
            member = from_wire.get(value)
            if member is None:
                raise _UnknownEnum(value)
            return member
        if isinstance(value, int) and not isinstance(value, bool):
            if not _INT32_RANGE[0] <= value <= _INT32_RANGE[1]:
                raise WireFormatError(f"{value} is out of range for an enum", field=path)
            return enum_cls(value)
        raise WireFormatError(
            f"expected a {enum_cls.__name__} string, got {_type_name(value)}", field=path
        )

    return enc, dec


class _UnknownEnum(Exception):
    def __init__(self, raw: str) -> None:
        self.raw = raw


def _wire_facts(cls: type[Any]) -> wire_tables.MessageWire:
    """The generated wire table of ``cls`` (or of the generated class it subclasses)."""
    for klass in cls.__mro__:
        url = default_message_pool.type_to_url.get(klass)
        if url is not None:
            return wire_tables.MESSAGES[url.rpartition("/")[2]]
    raise TypeError(f"{cls.__name__} is not a message generated from proto/")


def _dialect_of(cls: type[Any]) -> Dialect:
    return _DIALECTS[_wire_facts(cls).dialect]


def inline_json_fields(cls: type[betterproto2.Message]) -> dict[str, str]:
    """The attributes of ``cls`` holding inline JSON bytes, with their wire keys.

    ``{"results_json": "results", "input_json": "input"}`` for TaskRunDetails: what a
    repr shows decoded, under the name the wire gives it.
    """
    codec = _compile(cls, _dialect_of(cls))
    return {f.attr: f.key for f in codec.fields if f.encode is _enc_inline_json}


def _compile(cls: type[betterproto2.Message], dialect: Dialect) -> _MessageCodec:
    cached = _codecs.get((cls, dialect.name))
    if cached is not None:
        return cached
    meta: Any = cls._betterproto  # type: ignore[arg-type]  # betterproto2's classproperty typing
    facts = {f.number: f for f in _wire_facts(cls).fields}
    attr_of = {fm.number: attr for attr, fm in meta.meta_by_field_name.items()}
    fields: list[_Field] = []
    groups: dict[str, list[str]] = {}
    for dc_field in dataclasses.fields(cast(Any, cls)):
        fm = dc_field.metadata.get("betterproto")
        if fm is None:
            continue
        attr = dc_field.name
        wire = facts[fm.number]
        key = wire.rest_key if dialect.camel_case else wire.socket_key
        ptype = fm.proto_type
        enc: _Encoder
        dec: _Decoder
        if ptype == "map":
            raise TypeError(f"{cls.__name__}.{attr}: map fields are not supported by the codec")
        if ptype == "message":
            sub = meta.cls_by_field[attr]
            if fm.unwrap is not None:
                if sub is not _dt.datetime:
                    raise TypeError(f"{cls.__name__}.{attr}: unsupported well-known type {sub}")
                enc, dec = _enc_timestamp, _dec_timestamp
            else:
                enc, dec = _message_codecs(sub, dialect)
        elif ptype == "enum":
            enc, dec = _enum_codecs(meta.cls_by_field[attr], wire.enum)
        elif ptype == "string":
            enc, dec = _json_str, _dec_str
        elif ptype == "bool":
            enc, dec = _enc_bool, _dec_bool
        elif ptype in ("double", "float"):
            enc, dec = _enc_float, _dec_float
        elif ptype == "bytes":
            if wire.inline_json:
                enc, dec = _enc_inline_json, _dec_inline_json
            else:
                enc = _enc_b64 if wire.empty == "null" else _enc_b64_present
                dec = _dec_b64
        elif ptype in _INT_RANGES:
            enc, dec = _make_enc_int(ptype), _make_dec_int(ptype)
        else:  # pragma: no cover - every proto3 scalar is handled above
            raise TypeError(f"{cls.__name__}.{attr}: unsupported proto type {ptype}")
        field = _Field(
            attr=attr,
            key=key,
            keys=wire.keys,
            omit_none=(fm.optional or ptype == "message") and not fm.repeated,
            omit_empty=wire.empty == "omit",
            repeated=fm.repeated,
            encode=enc,
            decode=dec,
            hidden=wire.holds_unknown_enum,
        )
        if wire.unknown_enum_field:
            sibling = next((n for n, f in facts.items() if f.name == wire.unknown_enum_field), None)
            if sibling is None or sibling not in attr_of:
                raise TypeError(
                    f"{cls.__name__}.{attr}: unknown_enum_field {wire.unknown_enum_field!r}"
                    " names no field"
                )
            field.enum_unknown_attr = attr_of[sibling]
            field.enum_cls = meta.cls_by_field[attr]
        if fm.group:
            groups.setdefault(fm.group, []).append(attr)
        fields.append(field)
    by_key: dict[str, _Field] = {}
    for field in fields:
        if field.hidden:
            continue
        for k in field.keys:
            by_key.setdefault(k, field)
    codec = _MessageCodec(
        cls=cls,
        fields=fields,
        by_key=by_key,
        groups=groups,
        emitted=[f for f in fields if not f.hidden],
    )
    _codecs[(cls, dialect.name)] = codec
    return codec


def _message_codecs(sub: type[betterproto2.Message], dialect: Dialect) -> tuple[_Encoder, _Decoder]:
    # Resolved lazily: messages may refer to each other before both are compiled.
    def enc(value: Any) -> str:
        return _encode(value, dialect)

    def dec(value: Any, path: str) -> Any:
        return _decode(_public.get(sub, sub), value, dialect, path)

    return enc, dec


def _encode(msg: betterproto2.Message, dialect: Dialect) -> str:
    codec = _compile(type(msg), dialect)
    parts: list[str] = []
    for f in codec.emitted:
        value = getattr(msg, f.attr)
        if f.omit_empty and not value:
            continue
        if f.repeated:
            try:
                body = ",".join([f.encode(v) for v in value])
            except (WireFormatError, TypeError, AttributeError, ValueError, OverflowError):
                body = _encode_items_slowly(f, value)  # names the element that failed
            parts.append(f'"{f.key}":[{body}]')
            continue
        if value is None:
            if f.omit_none:
                continue
            parts.append(f'"{f.key}":null')
            continue
        try:
            if f.enum_unknown_attr is not None and value.number == 0:
                raw = getattr(msg, f.enum_unknown_attr)
                if raw:
                    parts.append(f'"{f.key}":{_json_str(raw)}')
                    continue
            parts.append(f'"{f.key}":{f.encode(value)}')
        except WireFormatError as exc:
            raise WireFormatError(_strip(exc), field=_join(f.key, exc.field)) from None
        except (TypeError, AttributeError, ValueError, OverflowError) as exc:
            raise WireFormatError(f"cannot encode {value!r}: {exc}", field=f.key) from None
    return "{" + ",".join(parts) + "}"


def _encode_items_slowly(f: _Field, values: Any) -> str:
    items = []
    for i, v in enumerate(values):
        key = f"{f.key}[{i}]"
        try:
            items.append(f.encode(v))
        except WireFormatError as exc:
            raise WireFormatError(_strip(exc), field=_join(key, exc.field)) from None
        except (TypeError, AttributeError, ValueError, OverflowError) as exc:
            raise WireFormatError(f"cannot encode {v!r}: {exc}", field=key) from None
    return ",".join(items)


def _strip(exc: WireFormatError) -> str:
    prefix = f"{exc.field}: " if exc.field else ""
    return exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message


def _join(key: str, sub: str | None) -> str:
    if not sub:
        return key
    return f"{key}{sub}" if sub.startswith("[") else f"{key}.{sub}"


def _decode(cls: type[M], data: Any, dialect: Dialect, path: str) -> M:
    if not isinstance(data, dict):
        raise WireFormatError(
            f"expected a JSON object for {cls.__name__}, got {_type_name(data)}",
            field=path or None,
        )
    codec = _compile(cls, dialect)
    kwargs: dict[str, Any] = {}
    prefix = f"{path}." if path else ""
    for key, value in data.items():
        f = codec.by_key.get(key)
        if f is None or f.attr in kwargs:
            continue  # unknown keys from newer peers are ignored
        fpath = prefix + key
        if value is None:
            continue  # null is the default value (proto3 JSON)
        if f.repeated:
            if not isinstance(value, list):
                raise WireFormatError(f"expected a list, got {_type_name(value)}", field=fpath)
            kwargs[f.attr] = [f.decode(v, f"{fpath}[{i}]") for i, v in enumerate(value)]
            continue
        try:
            kwargs[f.attr] = f.decode(value, fpath)
        except _UnknownEnum as unknown:
            if f.enum_unknown_attr is None:
                raise WireFormatError(f"unknown value {unknown.raw!r}", field=fpath) from None
            kwargs[f.attr] = f.enum_cls(0)
            kwargs[f.enum_unknown_attr] = unknown.raw
    for group, members in codec.groups.items():
        present = [m for m in members if kwargs.get(m) is not None]
        if len(present) > 1:
            raise WireFormatError(
                f"only one of {', '.join(present)} may be set", field=prefix + group
            )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # pragma: no cover - guarded by the checks above
        raise WireFormatError(f"cannot build {cls.__name__}: {exc}", field=path or None) from None


# --------------------------------------------------------------------------- public API


def dumps(msg: betterproto2.Message, dialect: Dialect | None = None) -> bytes:
    """Encode a message as the compact JSON bytes of ``dialect`` (default: the message's own).

    Raises:
        WireFormatError: A field holds a value the wire cannot carry (names the field).
    """
    if dialect is None:
        dialect = _dialect_of(type(msg))
    return _encode(msg, dialect).encode("utf-8")


def to_dict(msg: betterproto2.Message, dialect: Dialect | None = None) -> dict[str, Any]:
    """Encode a message as the JSON object (a dict) of ``dialect`` (default: its own)."""
    if dialect is None:
        dialect = _dialect_of(type(msg))
    result: dict[str, Any] = json.loads(_encode(msg, dialect))
    return result


def loads(cls: type[M], raw: bytes | str, dialect: Dialect | None = None) -> M:
    """Decode JSON bytes of ``dialect`` (default: the message's own) into a ``cls`` message.

    Raises:
        WireFormatError: Malformed JSON, a wrong type, invalid base64, NaN, ...
    """
    target = _public.get(cls, cls)
    if dialect is None:
        dialect = _dialect_of(target)
    return cast(M, _decode(target, parse_json(raw), dialect, ""))


def from_dict(cls: type[M], data: Any, dialect: Dialect | None = None) -> M:
    """Decode an already parsed JSON value of ``dialect`` (default: its own) into ``cls``.

    Raises:
        WireFormatError: A wrong type, invalid base64, NaN, ... (names the field).
    """
    target = _public.get(cls, cls)
    if dialect is None:
        dialect = _dialect_of(target)
    return cast(M, _decode(target, data, dialect, ""))


def to_binary(msg: betterproto2.Message) -> bytes:
    """Encode a message in the protobuf binary format."""
    try:
        return bytes(_numbered(msg))
    except Exception as exc:  # betterproto2 raises assorted types for bad field values
        raise WireFormatError(f"cannot encode {type(msg).__name__}: {exc}") from None


def from_binary(cls: type[M], data: bytes) -> M:
    """Decode protobuf binary bytes into a ``cls`` message.

    Raises:
        WireFormatError: The bytes are truncated or not a ``cls`` message (names the
            field whose bytes are bad where there is one).
    """
    cleaned = _scan_binary(cls, bytes(data), "")
    try:
        return cls.parse(data if cleaned is None else cleaned)
    except Exception as exc:  # betterproto2 raises assorted types for bad input
        raise WireFormatError(
            f"truncated or malformed protobuf for {cls.__name__}: {exc}"
        ) from None


def _numbered(msg: Any) -> Any:
    """``msg``, or a shallow copy whose enum fields hold plain numbers, for betterproto2.

    Enum fields hold wire-string enums (str subclasses); betterproto2's binary encoder
    needs ints. A zero stays the member itself so that it equals the field default and
    is omitted, exactly as Google's runtime omits it.
    """
    plan = _enum_plan(type(msg))
    if not plan:
        return msg
    out = copy.copy(msg)
    for attr, kind, repeated in plan:
        value = getattr(msg, attr)
        if value is None:
            continue
        if kind == "enum":
            if repeated:
                setattr(out, attr, [v.number for v in value])
            elif value.number:
                setattr(out, attr, value.number)
        elif repeated:
            setattr(out, attr, [_numbered(v) for v in value])
        else:
            setattr(out, attr, _numbered(value))
    return out


_ENUM_PLANS: dict[type, list[tuple[str, str, bool]]] = {}


def _enum_plan(cls: type) -> list[tuple[str, str, bool]]:
    """The fields of ``cls`` holding enums or messages that (transitively) hold enums."""
    plan = _ENUM_PLANS.get(cls)
    if plan is not None:
        return plan
    _ENUM_PLANS[cls] = []  # recursion guard for self-referencing messages
    plan = []
    meta: Any = cls._betterproto  # type: ignore[attr-defined]
    for attr, fm in meta.meta_by_field_name.items():
        if fm.map_meta:
            continue
        if fm.proto_type == "enum":
            plan.append((attr, "enum", fm.repeated))
        elif fm.proto_type == "message" and fm.unwrap is None:
            sub = meta.cls_by_field[attr]
            if isinstance(sub, type) and issubclass(sub, betterproto2.Message) and _enum_plan(sub):
                plan.append((attr, "message", fm.repeated))
    _ENUM_PLANS[cls] = plan
    return plan


# --------------------------------------------------------------------------- binary checks
# betterproto2's parser reads a length past the end of the buffer as a short field, skips
# invalid tags and stores fields of another wire type as values of the wrong type. These
# checks make from_binary accept exactly what Google's parser accepts.

_WIRE_TYPE_OF: Final = {
    **dict.fromkeys(("int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "enum"), 0),
    **dict.fromkeys(("fixed64", "sfixed64", "double"), 1),
    **dict.fromkeys(("string", "bytes", "message", "map"), 2),
    **dict.fromkeys(("fixed32", "sfixed32", "float"), 5),
}
_MAX_FIELD_NUMBER: Final = 2**29 - 1


@dataclasses.dataclass(frozen=True)
class _BinaryField:
    name: str
    wire_type: int
    repeated: bool
    is_string: bool
    sub: Any  # message class to check nested bytes against, or None


_binary_layouts: dict[type[Any], dict[int, _BinaryField]] = {}


def _binary_layout(cls: type[Any]) -> dict[int, _BinaryField]:
    layout = _binary_layouts.get(cls)
    if layout is None:
        meta: Any = cls._betterproto
        layout = {}
        for attr, fm in meta.meta_by_field_name.items():
            sub = None
            if fm.proto_type == "message":
                sub = fm.unwrap() if fm.unwrap is not None else meta.cls_by_field[attr]
            layout[fm.number] = _BinaryField(
                name=attr,
                wire_type=_WIRE_TYPE_OF[fm.proto_type],
                repeated=fm.repeated,
                is_string=fm.proto_type == "string",
                sub=sub,
            )
        _binary_layouts[cls] = layout
    return layout


def _varint(data: bytes, pos: int, field: str | None) -> tuple[int, int]:
    result = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise WireFormatError("truncated protobuf (varint)", field=field)
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireFormatError("malformed protobuf (varint longer than 10 bytes)", field=field)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _skip_value(data: bytes, pos: int, wire_type: int, number: int, field: str | None) -> int:
    """Skip one value of ``wire_type``; returns the position after it."""
    end = len(data)
    if wire_type == 0:
        return _varint(data, pos, field)[1]
    if wire_type == 1:
        pos += 8
    elif wire_type == 5:
        pos += 4
    elif wire_type == 2:
        length, pos = _varint(data, pos, field)
        pos += length
    elif wire_type == 3:
        while True:  # a group: fields up to the matching end-group tag
            tag, pos = _varint(data, pos, field)
            if tag & 7 == 4:
                if tag >> 3 != number:
                    raise WireFormatError("malformed protobuf (unmatched end group)", field=field)
                return pos
            pos = _skip_value(data, pos, tag & 7, tag >> 3, field)
    else:
        raise WireFormatError(f"malformed protobuf (wire type {wire_type})", field=field)
    if pos > end:
        raise WireFormatError("truncated protobuf", field=field)
    return pos


def _scan_binary(cls: type[Any], data: bytes, path: str) -> bytes | None:
    """Check that ``data`` is a complete ``cls`` message, as Google's parser does.

    Returns the bytes without the known fields of a wrong wire type (Google keeps them as
    unknown fields; betterproto2 would store them as values of the wrong type), or None
    when nothing had to go.
    """
    layout = _binary_layout(cls)
    seen: dict[int, int] = {}
    parts: list[bytes] = []
    changed = False
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        tag, pos = _varint(data, pos, path or None)
        number, wire_type = tag >> 3, tag & 7
        spec = layout.get(number)
        if spec is None:
            name = path or None
        else:
            name = path + spec.name
            if spec.repeated:
                name += f"[{seen.get(number, 0)}]"
                seen[number] = seen.get(number, 0) + 1
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise WireFormatError(f"malformed protobuf (field number {number})", field=name)
        value_start = pos
        pos = _skip_value(data, pos, wire_type, number, name)
        if spec is None:
            parts.append(data[start:pos])
            continue
        if wire_type != spec.wire_type and not (spec.repeated and wire_type == 2):
            changed = True  # Google: an unknown field; never a value of the wrong type
            continue
        if wire_type == 2 and (spec.is_string or spec.sub is not None):
            body_start = _varint(data, value_start, name)[1]
            body = data[body_start:pos]
            if spec.is_string:
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError:
                    raise WireFormatError("is not valid UTF-8", field=name) from None
            else:
                cleaned = _scan_binary(spec.sub, body, f"{name}.")
                if cleaned is not None:
                    parts.append(_encode_varint(tag) + _encode_varint(len(cleaned)) + cleaned)
                    changed = True
                    continue
        parts.append(data[start:pos])
    return b"".join(parts) if changed else None
