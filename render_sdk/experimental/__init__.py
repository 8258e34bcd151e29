"""Experimental APIs: object storage (``render.experimental.storage.objects``).

Reached through the clients::

    from render_sdk import Render

    render = Render()  # RENDER_WORKSPACE_ID / RENDER_REGION give the defaults
    objects = render.experimental.storage.objects
    await objects.put(key="a/b.png", data=b"...", content_type="image/png")
    obj = await objects.get(key="a/b.png")
    page = await objects.list()

Uploads and downloads go through presigned URLs (no Authorization header); failures of
those transfers carry a sanitized message and the HTTP ``status_code``. These APIs may
change in any release.
"""

from __future__ import annotations

# The clients below are built on render_sdk.client._core, and render_sdk.client
# re-exports them: load that package first, whichever of the two is imported first.
from .. import client as _client  # noqa: F401
from .._exports import publish
from ._async import (
    ExperimentalService,
    ObjectApi,
    ObjectClient,
    ScopedObjectClient,
    StorageService,
    UploadData,
)
from ._protocol import storage_error_message
from ._sync import (
    ExperimentalServiceSync,
    ObjectApiSync,
    ObjectClientSync,
    ScopedObjectClientSync,
    StorageServiceSync,
    UploadDataSync,
)
from ._types import (
    DownloadResponse,
    ListObjectsResponse,
    ObjectData,
    ObjectMetadata,
    OwnerID,
    PutObjectResult,
    Region,
    UploadResponse,
)

__all__ = [
    "DownloadResponse",
    "ExperimentalService",
    "ExperimentalServiceSync",
    "ListObjectsResponse",
    "ObjectApi",
    "ObjectApiSync",
    "ObjectClient",
    "ObjectClientSync",
    "ObjectData",
    "ObjectMetadata",
    "OwnerID",
    "PutObjectResult",
    "Region",
    "ScopedObjectClient",
    "ScopedObjectClientSync",
    "StorageService",
    "StorageServiceSync",
    "UploadData",
    "UploadDataSync",
    "UploadResponse",
    "storage_error_message",
]

publish(globals())
