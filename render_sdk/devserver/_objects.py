"""Object storage for the local task server: Render's presigned-URL flow, on local disk.

Routes (mounted by the local server's app, see :func:`object_routes`):

* ``PUT /v1/objects/{ownerId}/{region}/{key}`` — body ``PutObjectInput``; answers a
  ``PutObjectOutput`` whose ``url`` is a signed upload URL on this server and whose
  ``maxSizeBytes`` equals the declared ``sizeBytes``.
* ``GET /v1/objects/{ownerId}/{region}/{key}`` — ``GetObjectOutput`` with a signed
  download URL; 404 when the object does not exist.
* ``DELETE /v1/objects/{ownerId}/{region}/{key}`` — 204; 404 when it does not exist.
* ``GET /v1/objects/{ownerId}/{region}?cursor=&limit=`` — one page of
  ``ListObjectsResponse``, ordered by key; ``limit`` 1..100, default 20.
* ``PUT`` / ``GET`` ``/_local-objects/{ownerId}/{region}/{key}?expires=&size=&signature=``
  — the presigned upload and download. The signature is an HMAC-SHA256 over the method,
  owner, region, key, declared size and expiry; a tampered or expired URL gets 403.

Storage follows the Render CLI's local layout (``render ea objects --local``), so both
see the same files: ``<state_dir>/objects/<region>/<owner>/<escaped key>`` with the key
escaped as Go's ``url.PathEscape`` does (``urllib.parse.quote(key, safe="$&+:=@")``).
Two subdirectories of an owner's directory hold what the CLI must not list (it skips
directories, and no escaped key can be named like them because ``%`` is always
followed by two hex digits in an escaped key):

* ``%meta/<escaped key>.json`` — the content type and ETag of the last two writes,
  each bound to the data file's inode, size and mtime, so a record never describes
  other bytes than the ones on disk (even after a crash between the two renames).
* ``%tmp/`` — uploads in progress. A finished upload is fsynced and moved over the
  object with ``os.replace``: readers and a crash see the old object or the new one,
  never a mix. Leftovers of a killed server are removed when the routes are created.

A key whose escaped name would be longer than a file name may be is stored as
``%H<sha256 of the key>`` (its key is kept in the metadata record).

Limits: keys are 1..1024 bytes of UTF-8, without NUL, without a leading ``/`` and
without ``..`` segments (400). An object may be at most :data:`MAX_OBJECT_SIZE_BYTES`
(5 GiB, S3's single-PUT limit); a larger declared size or ``Content-Length`` is refused
with 413 before any body is read. The bytes uploaded must match the declared size
exactly (400, nothing stored). Bodies are streamed in chunks both ways; no request or
response body is ever held whole in memory. Errors are ``{"message": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from .. import _wire
from .._errors import WireFormatError
from .._gen.routes import LOCAL_PRESIGNED_OBJECTS_SERVICE, OBJECTS_SERVICE
from .._routing import expand_segments, path_segment
from ..models import (
    Error,
    GetObjectOutput,
    ListObjectsResponse,
    ObjectMetadata,
    ObjectWithCursor,
    PutObjectInput,
    PutObjectOutput,
)
from ._routes import starlette_routes

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "MAX_KEY_BYTES",
    "MAX_LIST_LIMIT",
    "MAX_OBJECT_SIZE_BYTES",
    "PRESIGNED_URL_TTL_SECONDS",
    "REGIONS",
    "escape_key",
    "object_routes",
    "presign",
    "url_path_key",
]

#: The largest object accepted (S3's limit for one PUT).
MAX_OBJECT_SIZE_BYTES: Final = 5 * 1024**3
#: The longest key accepted, in UTF-8 bytes (S3's limit).
MAX_KEY_BYTES: Final = 1024
#: How long a presigned URL stays valid.
PRESIGNED_URL_TTL_SECONDS: Final = 15 * 60
#: The regions Render's object storage knows.
REGIONS: Final = frozenset({"frankfurt", "oregon", "ohio", "singapore", "virginia"})
#: Page size of a list without ``limit``, and the largest page (Render's API's).
DEFAULT_LIST_LIMIT: Final = 20
MAX_LIST_LIMIT: Final = 100

# Bytes read from or written to disk per step. Large enough that the per-chunk thread hop
# is cheap, small enough that memory stays flat whatever the object size.
_IO_CHUNK: Final = 1024 * 1024
# An escaped name longer than this is stored under its hash (ext4 allows 255 bytes; the
# metadata file adds ".json").
_MAX_NAME_BYTES: Final = 240
# Uploads are flushed to disk every this many bytes while they arrive.
_SYNC_EVERY: Final = 16 * 1024 * 1024
_MAX_API_BODY: Final = 64 * 1024
_ESCAPE_SAFE: Final = "$&+:=@"
_META_DIR: Final = "%meta"
_TMP_DIR: Final = "%tmp"
_HASHED_PREFIX: Final = "%H"
_OWNER_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
#: The presigned rpcs by HTTP method: what :func:`presign` signs a URL for.
_PRESIGNED_ROUTES: Final = {r.method: r for r in LOCAL_PRESIGNED_OBJECTS_SERVICE.values()}


class _Refused(Exception):
    """A request refused with a status and a message (turned into ``{"message": ...}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- pure helpers -------------------------------------------------------------------------


def escape_key(key: str) -> str:
    """Return the file name of ``key`` in the Render CLI's layout (Go's ``url.PathEscape``)."""
    name = quote(key, safe=_ESCAPE_SAFE)
    if name == ".":
        name = "%2E"
    if len(name) > _MAX_NAME_BYTES:
        name = _HASHED_PREFIX + hashlib.sha256(key.encode()).hexdigest()
    return name


def url_path_key(key: str) -> str:
    """Return ``key`` as one URL path segment (``/`` included), safe from dot-segment removal."""
    return path_segment(key)


def _check_key(key: str) -> None:
    if not key:
        raise _Refused(400, "key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Refused(400, "key must be valid UTF-8")
    if size > MAX_KEY_BYTES:
        raise _Refused(400, f"key is {size} bytes long; the maximum is {MAX_KEY_BYTES}")
    if "\x00" in key:
        raise _Refused(400, "key must not contain NUL")
    if key.startswith("/"):
        raise _Refused(400, "key must not start with '/'")
    if ".." in key.split("/"):
        raise _Refused(400, "key must not contain '..' segments")


def _check_owner_region(owner: str, region: str) -> None:
    if not _OWNER_RE.fullmatch(owner):
        raise _Refused(
            400, "invalid owner id: use letters, digits, '.', '_' and '-' (e.g. tea-xxxxx)"
        )
    if region not in REGIONS:
        raise _Refused(
            400, f"invalid region {region!r}: expected one of {', '.join(sorted(REGIONS))}"
        )


def _signature(secret: bytes, method: str, owner: str, region: str, key: str, size: int | None,
               expires: int) -> str:  # fmt: skip
    message = "\n".join(
        (method, owner, region, key, "" if size is None else str(size), str(expires))
    )
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def presign(
    *,
    secret: bytes,
    base_url: str,
    method: str,
    owner: str,
    region: str,
    key: str,
    size: int | None,
    expires: int,
) -> str:
    """Return a signed ``/_local-objects`` URL.

    Args:
        secret: The server's signing key.
        base_url: The server's base URL (``http://127.0.0.1:8120``).
        method: ``"PUT"`` (upload) or ``"GET"`` (download).
        owner: The owner (workspace) id.
        region: The region.
        key: The object key.
        size: The exact size an upload must have; ``None`` for a download.
        expires: Unix time after which the URL is refused.
    """
    sig = _signature(secret, method, owner, region, key, size, expires)
    query = f"expires={expires}&signature={sig}"
    if size is not None:
        query = f"size={size}&{query}"
    route = _PRESIGNED_ROUTES[method]
    path = expand_segments(route, owner_id=owner, region=region, key=key)
    return f"{base_url.rstrip('/')}{route.base_path}{path}?{query}"


def _verify(secret: bytes, request: Request, method: str, owner: str, region: str,
            key: str) -> int | None:  # fmt: skip
    """Check a presigned request; return its declared size (uploads) or None."""
    params = request.query_params
    try:
        expires = int(params["expires"])
        size = int(params["size"]) if method == "PUT" else None
        sig = params["signature"]
    except (KeyError, ValueError):
        raise _Refused(403, "access denied: malformed presigned URL")
    expected = _signature(secret, method, owner, region, key, size, expires)
    if not hmac.compare_digest(expected, sig):
        raise _Refused(403, "access denied: bad signature")
    if time.time() > expires:
        raise _Refused(403, "access denied: presigned URL expired")
    return size


def _error(status: int, message: str) -> Response:
    return Response(
        _wire.dumps(Error(message=message), _wire.REST),
        status_code=status,
        media_type="application/json",
    )


def _json(msg: Any) -> Response:
    return Response(_wire.dumps(msg, _wire.REST), media_type="application/json")


# --- the store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Paths:
    bucket: Path
    data: Path
    meta: Path
    tmp_dir: Path


@dataclass(frozen=True)
class _Found:
    fd: int
    size: int
    content_type: str
    etag: str | None


_PRIVATE_DIR: Final = 0o700
_PRIVATE_FILE: Final = 0o600


def _open_private(path: Path) -> Any:
    """Create ``path`` exclusively, readable by the owner only, as a binary writer."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE), "wb")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _record_for(meta: dict[str, Any] | None, st: os.stat_result) -> dict[str, Any] | None:
    if meta is None:
        return None
    for rec in meta.get("versions", ()):
        if isinstance(rec, dict) and rec.get("stamp") == _stamp(st):
            return rec
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Store:
    """The objects directory: blocking file operations, run in worker threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # One commit (or delete) per object at a time, so the data file and its metadata
        # record move together: last complete write wins, never a mix.
        self._locks: weakref.WeakValueDictionary[Path, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, path: Path) -> asyncio.Lock:
        lock = self._locks.get(path)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[path] = lock
        return lock

    def paths(self, owner: str, region: str, key: str) -> _Paths:
        bucket = self.root / region / owner
        name = escape_key(key)
        return _Paths(bucket, bucket / name, bucket / _META_DIR / f"{name}.json", bucket / _TMP_DIR)

    def remove_stale_temp_files(self) -> None:
        """Delete partial uploads left by servers that died (their pid is in the name)."""
        for tmp in self.root.glob(f"*/*/{_TMP_DIR}/*"):
            pid_text = tmp.name.split("-", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
                continue
            with contextlib.suppress(OSError):
                tmp.unlink()

    def new_temp(self, paths: _Paths) -> tuple[Path, Any]:
        paths.tmp_dir.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
        (paths.bucket / _META_DIR).mkdir(mode=_PRIVATE_DIR, exist_ok=True)
        tmp = paths.tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}.part"
        return tmp, _open_private(tmp)

    def commit(self, paths: _Paths, tmp: Path, key: str, content_type: str, etag: str) -> None:
        """Move a finished, fsynced upload over the object, metadata first."""
        st = os.stat(tmp)
        meta = _read_meta(paths.meta)
        versions: list[dict[str, Any]] = [
            {"stamp": _stamp(st), "contentType": content_type, "etag": etag}
        ]
        with contextlib.suppress(FileNotFoundError):
            previous = _record_for(meta, os.stat(paths.data))
            if previous is not None:
                versions.append(previous)
        meta_tmp = paths.tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}.meta"
        with _open_private(meta_tmp) as f:
            f.write(json.dumps({"key": key, "versions": versions}).encode())
            f.flush()
            os.fsync(f.fileno())
        # Metadata first: until the data moves, the old bytes still match the previous
        # record kept above; afterwards the new bytes match the new one.
        os.replace(meta_tmp, paths.meta)
        os.replace(tmp, paths.data)
        _fsync_dir(paths.meta.parent)
        _fsync_dir(paths.bucket)

    def open(self, paths: _Paths) -> _Found | None:
        try:
            # O_NOFOLLOW: a symlink planted in the objects directory is not an object.
            fd = os.open(paths.data, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            # Serve regular files only (not FIFOs, devices or directories).
            os.close(fd)
            return None
        rec = _record_for(_read_meta(paths.meta), st) or {}
        content_type = rec.get("contentType")
        etag = rec.get("etag")
        return _Found(
            fd,
            st.st_size,
            content_type if isinstance(content_type, str) else _DEFAULT_CONTENT_TYPE,
            etag if isinstance(etag, str) else None,
        )

    def exists(self, paths: _Paths) -> bool:
        # A symlink planted in the bucket is not an object (downloads never follow one).
        return paths.data.is_file() and not paths.data.is_symlink()

    def delete(self, paths: _Paths) -> bool:
        try:
            paths.data.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        with contextlib.suppress(FileNotFoundError):
            paths.meta.unlink()
        _fsync_dir(paths.bucket)
        return True

    def list_page(
        self, owner: str, region: str, cursor: str | None, limit: int
    ) -> ListObjectsResponse:
        bucket = self.root / region / owner
        entries: list[tuple[str, os.DirEntry[str]]] = []
        try:
            scan = list(os.scandir(bucket))
        except (FileNotFoundError, NotADirectoryError):
            scan = []
        for entry in scan:
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.name.startswith(_HASHED_PREFIX):
                meta = _read_meta(bucket / _META_DIR / f"{entry.name}.json")
                key = meta.get("key") if meta else None
                if not isinstance(key, str):
                    continue
            else:
                try:
                    key = unquote(entry.name, errors="strict")
                except UnicodeDecodeError:
                    continue
            if cursor is None or key > cursor:
                entries.append((key, entry))
        entries.sort(key=lambda item: item[0])
        items: list[ObjectWithCursor] = []
        for key, entry in entries[:limit]:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            items.append(
                ObjectWithCursor(
                    cursor=key,
                    object=ObjectMetadata(
                        key=key,
                        size_bytes=st.st_size,
                        last_modified=_dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc),
                    ),
                )
            )
        has_next = len(entries) > limit
        return ListObjectsResponse(
            items=items,
            has_next=has_next,
            next_cursor=items[-1].cursor if has_next and items else None,
        )


class _Spool:
    """Writes an upload to its temp file in a worker thread, one chunk in flight while the
    next is received, hashing (MD5, the ETag) and flushing to disk as it goes, so the final
    fsync has little left to do."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self._digest = hashlib.md5(usedforsecurity=False)
        self._pending: asyncio.Future[None] | None = None
        self._unsynced = 0

    def _write(self, data: bytearray) -> None:
        self._file.write(data)
        self._unsynced += len(data)
        if self._unsynced >= _SYNC_EVERY:
            self._file.flush()
            os.fdatasync(self._file.fileno())
            self._unsynced = 0

    async def _both(self, data: bytearray) -> None:
        # hashlib and file writes release the GIL: hashing, writing and receiving the
        # next chunk on the event loop all run at once.
        await asyncio.gather(
            asyncio.to_thread(self._digest.update, data), asyncio.to_thread(self._write, data)
        )

    async def _drain(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def write(self, data: bytearray) -> None:
        """Queue ``data`` (not to be modified afterwards) once the previous write is done."""
        await self._drain()
        if data:
            self._pending = asyncio.ensure_future(self._both(data))

    async def finish(self) -> str:
        """Wait for the writes, fsync and close the file; return the MD5 hex digest."""
        await self._drain()

        def sync() -> None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

        await asyncio.to_thread(sync)
        return self._digest.hexdigest()

    def abandon(self) -> None:
        """Close the file; if a write is still in flight, once it has returned."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.add_done_callback(lambda f: _after(f, self._file.close))
        else:
            if pending is not None:
                _after(pending, lambda: None)
            self._file.close()


def _after(future: asyncio.Future[Any], then: Callable[[], None]) -> None:
    """Done-callback body: consume the future's outcome (nobody awaits it), then ``then()``."""
    if not future.cancelled():
        future.exception()
    then()


# --- responses ----------------------------------------------------------------------------


class _FileResponse(Response):
    """Streams an already-open file descriptor: the bytes of the inode opened, even if a
    newer upload replaces the object meanwhile."""

    def __init__(self, found: _Found, *, head: bool) -> None:
        self.found = found
        self.head = head
        headers = {"content-length": str(found.size), "content-type": found.content_type}
        if found.etag:
            headers["etag"] = found.etag
        super().__init__(status_code=200, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fd = self.found.fd
        remaining = self.found.size if not self.head else 0
        ahead: asyncio.Future[bytes] | None = None

        def read() -> asyncio.Future[bytes]:
            return asyncio.ensure_future(asyncio.to_thread(os.read, fd, min(_IO_CHUNK, remaining)))

        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            # Read ahead: the next chunk comes off the disk while this one is sent.
            ahead = read() if remaining > 0 else None
            while ahead is not None:
                chunk = await ahead
                remaining -= len(chunk)
                ahead = read() if chunk and remaining > 0 else None
                if not chunk:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if ahead is not None and not ahead.done():
                # A worker thread still reads the descriptor (the client went away):
                # close it once that read returns, never under the thread's feet.
                ahead.add_done_callback(lambda f: _after(f, lambda: os.close(fd)))
            else:
                os.close(fd)


# --- routes -------------------------------------------------------------------------------


def _handler(
    fn: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except _Refused as exc:
            return _error(exc.status, exc.message)
        except HTTPException as exc:
            return _error(exc.status_code, str(exc.detail))

    return endpoint


def object_routes(
    *,
    state_dir: Path,
    secret: bytes,
    url_ttl_seconds: float = PRESIGNED_URL_TTL_SECONDS,
) -> list[BaseRoute]:
    """Return the object storage routes of the local server.

    Args:
        state_dir: The server's state directory; objects live under ``state_dir/objects``.
        secret: The key presigned URLs are signed with (random per server is fine).
        url_ttl_seconds: How long presigned URLs stay valid.
    """
    store = _Store(Path(state_dir) / "objects")
    store.remove_stale_temp_files()

    def params(request: Request, *, with_key: bool) -> tuple[str, str, str]:
        owner = request.path_params["owner_id"]
        region = request.path_params["region"]
        _check_owner_region(owner, region)
        key = request.path_params["key"] if with_key else ""
        if with_key:
            _check_key(key)
        return owner, region, key

    def base_url(request: Request) -> str:
        # The address the connection reached (the listening socket's), never the
        # request's Host header: a foreign Host must not steer where clients upload.
        server = request.scope.get("server")
        if not server:
            return str(request.base_url)
        host, port = str(server[0]), server[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/" if port else f"http://{shown}/"

    def expiry() -> int:
        return int(time.time() + url_ttl_seconds)

    async def put_object(request: Request) -> Response:
        owner, region, key = params(request, with_key=True)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > _MAX_API_BODY:
            raise _Refused(413, "request body too large")
        raw = await request.body()
        if len(raw) > _MAX_API_BODY:
            raise _Refused(413, "request body too large")
        try:
            data = _wire.parse_json(raw)
            if not isinstance(data, dict) or not ({"sizeBytes", "size_bytes"} & data.keys()):
                raise _Refused(400, "sizeBytes is required")
            body = _wire.from_dict(PutObjectInput, data, _wire.REST)
        except WireFormatError as exc:
            raise _Refused(400, f"invalid body: {exc}")
        size = body.size_bytes
        if size < 0:
            raise _Refused(400, "sizeBytes must not be negative")
        if size > MAX_OBJECT_SIZE_BYTES:
            raise _Refused(
                413, f"object too large: {size} bytes; the maximum is {MAX_OBJECT_SIZE_BYTES}"
            )
        expires = expiry()
        url = presign(
            secret=secret,
            base_url=base_url(request),
            method="PUT",
            owner=owner,
            region=region,
            key=key,
            size=size,
            expires=expires,
        )
        return _json(
            PutObjectOutput(
                url=url,
                expires_at=_dt.datetime.fromtimestamp(expires, _dt.timezone.utc),
                max_size_bytes=size,
            )
        )

    async def get_object(request: Request) -> Response:
        owner, region, key = params(request, with_key=True)
        paths = store.paths(owner, region, key)
        if not await anyio.to_thread.run_sync(store.exists, paths):
            raise _Refused(404, f"object not found: {key}")
        expires = expiry()
        url = presign(
            secret=secret,
            base_url=base_url(request),
            method="GET",
            owner=owner,
            region=region,
            key=key,
            size=None,
            expires=expires,
        )
        return _json(
            GetObjectOutput(
                url=url, expires_at=_dt.datetime.fromtimestamp(expires, _dt.timezone.utc)
            )
        )

    async def delete_object(request: Request) -> Response:
        owner, region, key = params(request, with_key=True)
        paths = store.paths(owner, region, key)
        async with store.lock(paths.data):
            deleted = await anyio.to_thread.run_sync(store.delete, paths)
        if not deleted:
            raise _Refused(404, f"object not found: {key}")
        return Response(status_code=OBJECTS_SERVICE["DeleteObject"].success_status)

    async def list_objects(request: Request) -> Response:
        owner, region, _ = params(request, with_key=False)
        cursor = request.query_params.get("cursor") or None
        limit_text = request.query_params.get("limit")
        limit = DEFAULT_LIST_LIMIT
        if limit_text:
            try:
                limit = int(limit_text)
            except ValueError:
                limit = 0
            if not 1 <= limit <= MAX_LIST_LIMIT:
                raise _Refused(400, f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
        page = await anyio.to_thread.run_sync(store.list_page, owner, region, cursor, limit)
        return _json(page)

    async def upload(request: Request) -> Response:
        owner, region, key = params(request, with_key=True)
        size = _verify(secret, request, "PUT", owner, region, key)
        assert size is not None
        length_text = request.headers.get("content-length")
        if length_text is not None:
            if not length_text.isdigit():
                raise _Refused(400, "invalid Content-Length")
            length = int(length_text)
            if length > MAX_OBJECT_SIZE_BYTES:
                raise _Refused(413, "object too large")
            if length != size:
                raise _Refused(
                    400, f"size mismatch: Content-Length {length}, presigned for {size} bytes"
                )
        content_type = request.headers.get("content-type") or _DEFAULT_CONTENT_TYPE
        paths = store.paths(owner, region, key)
        tmp, f = await anyio.to_thread.run_sync(store.new_temp, paths)
        spool = _Spool(f)
        committed = False
        try:
            received = 0
            buffer = bytearray()
            async for chunk in request.stream():
                received += len(chunk)
                if received > size:
                    raise _Refused(400, f"size mismatch: more than the {size} bytes presigned")
                buffer += chunk
                if len(buffer) >= _IO_CHUNK:
                    await spool.write(buffer)
                    buffer = bytearray()
            if received != size:
                raise _Refused(
                    400, f"size mismatch: received {received} bytes, presigned for {size}"
                )
            await spool.write(buffer)
            etag = f'"{await spool.finish()}"'
            async with store.lock(paths.data):
                await anyio.to_thread.run_sync(store.commit, paths, tmp, key, content_type, etag)
            committed = True
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            spool.abandon()
            if not committed:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        return Response(status_code=200, headers={"etag": etag})

    async def download(request: Request) -> Response:
        owner, region, key = params(request, with_key=True)
        _verify(secret, request, "GET", owner, region, key)
        found = await anyio.to_thread.run_sync(store.open, store.paths(owner, region, key))
        if found is None:
            raise _Refused(404, f"object not found: {key}")
        return _FileResponse(found, head=request.method == "HEAD")

    handlers = {
        "ListObjects": list_objects,
        "PutObject": put_object,
        "GetObject": get_object,
        "DeleteObject": delete_object,
    }
    presigned = {"UploadObject": upload, "DownloadObject": download}
    return [
        *starlette_routes(OBJECTS_SERVICE, {k: _handler(v) for k, v in handlers.items()}),
        *starlette_routes(
            LOCAL_PRESIGNED_OBJECTS_SERVICE, {k: _handler(v) for k, v in presigned.items()}
        ),
    ]
