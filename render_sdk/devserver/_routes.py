"""Starlette routes of the local server, built from the generated service routes.

Each router hands :func:`starlette_routes` its service's routes and its handlers by rpc
name; paths, methods and their order (the order Starlette matches in) come from the
schema (``render_sdk._gen.routes``), never from a second list here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .._routing import Route as RpcRoute
from .._routing import bind, router_path

Handler = Callable[[Request], Awaitable[Response]]

__all__ = ["Handler", "starlette_routes"]


def starlette_routes(
    routes: Mapping[str, RpcRoute], handlers: Mapping[str, Handler]
) -> list[BaseRoute]:
    """One Starlette route per rpc, named after the rpc, in declaration order.

    Raises:
        LookupError: The handlers are not exactly the service's rpcs.
    """
    return [
        Route(router_path(route), handler, methods=[route.method], name=route.name)
        for route, handler in bind(routes, handlers)
    ]
