"""Hypothesis strategies: arbitrary JSON task payloads and arbitrary wire messages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

import betterproto2
from hypothesis import strategies as st

from render_sdk import _wire, models

_INT_BOUNDS = {
    "int32": (-(2**31), 2**31 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "fixed64": (0, 2**64 - 1),
}

#: Integers well beyond 2^53 (and 2^64) as well as small ones.
json_ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=2**53 - 2, max_value=2**53 + 2),
    st.integers(min_value=-(2**53) - 2, max_value=-(2**53) + 2),
    st.integers(min_value=-(10**40), max_value=10**40),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    json_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
#: Any JSON value: scalars, lists and objects nested a few levels, unicode keys.
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=25,
)
#: Task inputs: a positional list or a keyword object (or null).
task_inputs = st.one_of(
    st.none(),
    st.lists(json_values, max_size=5),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
)

_timestamps = st.datetimes(
    min_value=dt.datetime(1, 1, 1),
    max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    timezones=st.just(dt.timezone.utc),
)


def _public(cls: type[Any]) -> type[Any]:
    # The public class apps use: render_sdk.models's own, or the generated class itself
    # (task-socket envelopes, exported as is from render_sdk.models.tasksocket).
    public: type[Any] = models.__dict__.get(cls.__name__, cls)
    return public


def _scalar(proto_type: str, attr: str, meta: Any) -> st.SearchStrategy[Any]:
    if proto_type == "string":
        return st.text(max_size=12)
    if proto_type == "bool":
        return st.booleans()
    if proto_type in ("double", "float"):
        return st.floats(allow_nan=False, allow_infinity=False, width=64)
    if proto_type == "bytes":
        if attr.endswith("_json"):
            # JSON null travels as empty bytes (b"null" would come back as b"").
            return st.just(b"") | json_values.filter(lambda v: v is not None).map(
                lambda v: _wire.encode_json_value(v)
            )
        return st.binary(max_size=24)
    if proto_type == "enum":
        enum_cls: type[enum.IntEnum] = meta.cls_by_field[attr]
        return st.sampled_from(list(enum_cls))
    lo, hi = _INT_BOUNDS[proto_type]
    return st.integers(min_value=lo, max_value=hi)


def messages(cls: type[betterproto2.Message], depth: int = 0) -> st.SearchStrategy[Any]:
    """Arbitrary instances of a generated message class (the public model where there is one).

    ``unknown_*`` siblings stay empty and ``*_json`` bytes are empty or valid non-null JSON
    (optional ones absent or non-empty): conventions of the JSON dialects, not free values.
    """
    cls = _public(cls)
    meta: Any = cls._betterproto
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    groups: dict[str, list[str]] = {}
    for dc_field in dataclasses.fields(cls):
        fm = dc_field.metadata.get("betterproto")
        if fm is None:
            continue
        attr = dc_field.name
        if attr.startswith("unknown_"):
            continue
        if fm.proto_type == "message":
            sub = meta.cls_by_field[attr]
            if sub is dt.datetime:
                elem: st.SearchStrategy[Any] = _timestamps
            elif depth >= 3:
                elem = st.builds(_public(sub))
            else:
                elem = st.deferred(lambda sub=sub: messages(sub, depth + 1))
        else:
            elem = _scalar(fm.proto_type, attr, meta)
        if fm.repeated:
            kwargs[attr] = st.lists(elem, max_size=3)
        elif attr.endswith("_json") and fm.optional:
            kwargs[attr] = st.none() | elem.filter(bool)
        elif fm.optional or fm.proto_type == "message":
            kwargs[attr] = st.none() | elem
        else:
            kwargs[attr] = elem
        if fm.group:
            groups.setdefault(fm.group, []).append(attr)
    strategy: st.SearchStrategy[Any] = st.fixed_dictionaries(kwargs)
    for members in groups.values():
        strategy = strategy.flatmap(
            lambda values, members=members: st.sampled_from([None, *members]).map(
                lambda keep: {
                    k: (v if k not in members or k == keep else None) for k, v in values.items()
                }
            )
        )
    return strategy.map(lambda values: cls(**values))
