"""Routes from the service descriptors: path templates and rpc-to-handler binding, no I/O.

The routes themselves (method, path template, query keys, success status, SSE, ...) are
generated from the ``(render.wire.v1.http)`` options into ``render_sdk._gen.routes``;
this module turns them into what each side needs: request paths for the clients
(:func:`expand`, :func:`expand_segments`), router paths for the local server
(:func:`router_path`) and the binding of hand-written handlers to rpc names
(:func:`bind`), which refuses a handler without an rpc and an rpc without a handler.
It imports only the standard library and
the generated tables, so the task worker can use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, TypeVar

from ._gen.routes import SERVICES, Route

__all__ = [
    "SERVICES",
    "Route",
    "bind",
    "by_request_line",
    "expand",
    "expand_segments",
    "query_keys",
    "router_path",
    "routes_of",
]

H = TypeVar("H")

_PARAM: Final = re.compile(r"\{([a-z_][a-z0-9_]*)(=\*\*)?\}")


def routes_of(service: str) -> Mapping[str, Route]:
    """The routes of a service by rpc name (``"render.workflows.v1.WorkflowsService"``)."""
    return SERVICES[service]


def expand(route: Route, **values: str) -> str:
    """The request path of ``route`` below its base path, with its path fields filled in.

    A ``{field}`` value is one path segment: it must be non-empty and hold no ``/``. A
    ``{field=**}`` value may span segments. Values are percent-encoded.

    Raises:
        ValueError: A path field is missing, empty or would change the path.
    """
    from urllib.parse import quote  # only routes with path fields need it

    def fill(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(2)
        value = values.get(name)
        if not isinstance(value, str) or not value or (not rest and "/" in value):
            raise ValueError(f"{route.name}: not a valid {name.replace('_', ' ')}: {value!r}")
        return quote(value, safe="/" if rest else "")

    if not route.path_params:
        return route.path
    return _PARAM.sub(fill, route.path)


def path_segment(value: str) -> str:
    """``value`` percent-encoded as exactly one path segment, ``/`` included.

    ``.`` and ``..`` become ``%2E`` and ``%2E%2E`` so that no client or proxy removes them
    as dot segments.
    """
    from urllib.parse import quote  # only routes with path fields need it

    text = quote(value, safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def expand_segments(route: Route, **values: str) -> str:
    """Like :func:`expand`, but every path field, ``{field=**}`` included, is one segment.

    The object rpcs send a key such as ``a/b`` as ``a%2Fb``: the key reaches the server
    exactly as written, whatever it holds (slashes, ``?``, ``#``, dot segments).

    Raises:
        ValueError: A path field is missing or empty.
    """

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{route.name}: not a valid {name.replace('_', ' ')}: {value!r}")
        return path_segment(value)

    return _PARAM.sub(fill, route.path)


def router_path(route: Route) -> str:
    """The full path template in Starlette's syntax: ``/v1/tasks/{task_id:path}``."""
    return route.base_path + _PARAM.sub(
        lambda m: "{" + m.group(1) + (":path" if m.group(2) else "") + "}", route.path
    )


def bind(routes: Mapping[str, Route], handlers: Mapping[str, H]) -> list[tuple[Route, H]]:
    """Pair every route with the handler bound to its rpc name, in declaration order.

    Raises:
        LookupError: An rpc has no handler, or a handler names no rpc of the service.
    """
    missing = sorted(set(routes) - set(handlers))
    extra = sorted(set(handlers) - set(routes))
    if missing or extra:
        raise LookupError(
            f"handlers do not match the rpcs: without a handler {missing}, without an rpc {extra}"
        )
    return [(route, handlers[name]) for name, route in routes.items()]


def by_request_line(routes: Mapping[str, Route]) -> dict[tuple[str, str], Route]:
    """The routes of a service without path fields, by ``(method, full path)``.

    For the task socket's router, whose paths are all fixed.

    Raises:
        ValueError: A route has path fields (it needs a template router).
    """
    table: dict[tuple[str, str], Route] = {}
    for route in routes.values():
        if route.path_params:
            raise ValueError(f"{route.name}: {route.path} has path fields")
        table[(route.method, route.base_path + route.path)] = route
    return table


def query_keys(route: Route) -> dict[str, tuple[str, ...]]:
    """The query keys a server accepts for each query field of ``route``, by proto name.

    The first key is the field's wire key in the route's dialect (what clients send);
    the rest are the other keys its decoders accept (the other dialect's spelling and
    the field's annotated aliases), from the generated wire tables.
    """
    from ._gen import wire_tables  # only servers read queries; the worker never does

    fields = {f.name: f for f in wire_tables.MESSAGES[route.request].fields}
    return {
        name: tuple(dict.fromkeys((key, *fields[name].keys)))
        for name, key in zip(route.query, route.query_keys, strict=True)
    }
