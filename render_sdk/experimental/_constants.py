"""Defaults of the object storage client, in one place."""

from __future__ import annotations

from typing import Final

#: Bytes read from a file (or handed to the socket) per step of an upload, and asked of a
#: download per chunk. Memory stays at a few of these whatever the object size.
CHUNK_SIZE: Final = 1024 * 1024

#: Timeouts of presigned-URL transfers: connecting (and waiting for a pooled connection)
#: is bounded; a single read or write may take as long as a large transfer needs, but a
#: stall of this long is an error.
TRANSFER_CONNECT_TIMEOUT: Final = 5.0
TRANSFER_STALL_TIMEOUT: Final = 300.0

#: Page size of :meth:`iter` / :meth:`iter_pages` when the caller did not choose one.
DEFAULT_PAGE_SIZE: Final = 100

#: Operation names used in error messages (``"<op> failed with status ...``).
OP_UPLOAD_URL: Final = "get upload URL"
OP_DOWNLOAD_URL: Final = "get download URL"
OP_DELETE: Final = "delete object"
OP_LIST: Final = "list objects"
OP_UPLOAD: Final = "upload object"
OP_DOWNLOAD: Final = "download object"
