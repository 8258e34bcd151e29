"""render_sdk 0.4.0's ``render_sdk.experimental.object`` module path (object storage)."""

from __future__ import annotations

from ._async import ObjectApi, ObjectClient, ScopedObjectClient
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
    "ListObjectsResponse",
    "ObjectApi",
    "ObjectClient",
    "ObjectData",
    "ObjectMetadata",
    "OwnerID",
    "PutObjectResult",
    "Region",
    "ScopedObjectClient",
    "UploadResponse",
]
