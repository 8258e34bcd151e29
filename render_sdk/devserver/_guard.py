"""One guard in front of every HTTP route: who may talk to the local server at all.

A browser lets any web page send "simple" requests (``text/plain`` POSTs, no preflight) to
``127.0.0.1``, and DNS rebinding lets a page read the answers under its own host name. The
guard refuses, before any route runs:

- a ``Host`` that is not the address the server listens on, a loopback name when it listens
  on loopback, or a name given with ``--allow-host`` (DNS rebinding);
- a cross-origin browser request: an ``Origin`` other than the server's own, or
  ``Sec-Fetch-Site: cross-site``/``same-site``, unless the origin was given with
  ``--allow-origin`` (``*`` allows any);
- a request body on the JSON API (``/v1/``) labelled other than ``application/json``.

Same-origin requests (a page the server itself serves) and non-browser clients (the SDKs,
curl, the CLI: no ``Origin``, no ``Sec-Fetch-Site``) pass. It is ASGI middleware rather
than per-route code so that route tables can change without losing it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARD = frozenset({"0.0.0.0", "::", ""})
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_JSON_PREFIX = "/v1/"


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> str:
    """The host name of a ``Host`` header or URL netloc, lowercased, brackets removed."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.rsplit(":", 1)[0] if ":" in value else value


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class GuardMiddleware:
    """Refuses foreign ``Host``s, cross-origin browser requests and non-JSON API bodies."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind_host: str,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.bind_host = _split_host(bind_host) if bind_host not in _WILDCARD else bind_host
        self.allowed_hosts = frozenset(h.strip().lower() for h in allowed_hosts)
        self.allowed_origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins)

    def _host_ok(self, host: str, scope: Scope) -> bool:
        if host in self.allowed_hosts:
            return True
        if self.bind_host in _WILDCARD:
            # Reachable on every address: any address of this machine is "ours", and
            # binding a non-loopback address requires an API key anyway.
            server = scope.get("server")
            return _is_loopback(host) or (server is not None and host == str(server[0]).lower())
        if _is_loopback(self.bind_host):
            return _is_loopback(host)
        return host == self.bind_host

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        host_header = headers.get("host", "")
        host = _split_host(host_header)
        if not self._host_ok(host, scope):
            return 421, (
                f"Host {host_header!r} is not this server's address; "
                "start the server with --allow-host NAME to accept it"
            )
        origin = headers.get("origin")
        fetch_site = headers.get("sec-fetch-site", "").lower()
        if origin is not None or fetch_site in ("cross-site", "same-site"):
            normalized = (origin or "").rstrip("/").lower()
            same = origin is not None and urlsplit(normalized).netloc == host_header.lower()
            same = same and fetch_site in ("", "same-origin", "none")
            allowed = "*" in self.allowed_origins or normalized in self.allowed_origins
            if not same and not allowed:
                return 403, (
                    f"cross-origin request from {origin or 'another site'} refused; "
                    "start the server with --allow-origin ORIGIN to accept it"
                )
        if scope["method"].encode() in _BODY_METHODS and scope["path"].startswith(_JSON_PREFIX):
            # A missing Content-Type passes: browsers label every body they send without a
            # preflight (text/plain, forms), and a cross-origin one without a label still
            # carries an Origin, refused above.
            content_type = headers.get("content-type")
            if content_type is not None and not _is_json(content_type):
                return 415, (
                    f"request body must be Content-Type: application/json (got {content_type})"
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                status, message = refusal
                body = json.dumps({"message": message}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
