"""The official render_sdk==0.4.0 storage client works against our local server, unmodified."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from storage_server import StorageServer

pytestmark = pytest.mark.compat

# Runs in the official SDK's own virtualenv; prints one JSON document of what it saw.
_SCRIPT = r"""
import asyncio, io, json, sys
from render_sdk import Render
from render_sdk.client.errors import RenderError

OWNER, REGION = sys.argv[1], sys.argv[2]

async def main():
    out = {}
    objects = Render().experimental.storage.objects
    res = await objects.put(owner_id=OWNER, region=REGION, key="path/to/file.png",
                            data=b"binary content", content_type="image/png")
    out["etag"] = res.etag
    big = bytes(range(256)) * 1024
    await objects.put(owner_id=OWNER, region=REGION, key="streamed.bin",
                      data=io.BytesIO(big), size=len(big))
    obj = await objects.get(owner_id=OWNER, region=REGION, key="path/to/file.png")
    out["get"] = [obj.data.decode(), obj.size, obj.content_type]
    out["streamed_ok"] = (await objects.get(owner_id=OWNER, region=REGION,
                                            key="streamed.bin")).data == big
    first = await objects.list(owner_id=OWNER, region=REGION, limit=1)
    second = await objects.list(owner_id=OWNER, region=REGION, limit=1,
                                cursor=first.next_cursor)
    out["pages"] = [[o.key for o in p.objects] + [p.has_next] for p in (first, second)]
    out["sizes"] = [o.size for o in (await objects.list(owner_id=OWNER, region=REGION)).objects]
    scoped = objects.scoped(owner_id=OWNER, region=REGION)
    await scoped.put(key="scoped.txt", data=b"s", content_type="text/plain")
    out["scoped"] = (await scoped.get(key="scoped.txt")).data.decode()
    await scoped.delete(key="scoped.txt")
    await objects.delete(owner_id=OWNER, region=REGION, key="path/to/file.png")
    try:
        await objects.get(owner_id=OWNER, region=REGION, key="path/to/file.png")
    except RenderError as exc:
        out["after_delete"] = [type(exc).__name__, str(exc)]
    out["left"] = [o.key for o in (await objects.list(owner_id=OWNER, region=REGION)).objects]
    print(json.dumps(out))

asyncio.run(main())
"""


def test_official_sdk_040_round_trip(
    sdk040_python: Path, module_server: StorageServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "RENDER_LOCAL_DEV_URL": module_server.url,
        "RENDER_API_KEY": "dummy",
    }
    for name in ("RENDER_WORKSPACE_ID", "RENDER_REGION", "RENDER_USE_LOCAL_DEV"):
        env.pop(name, None)
    proc = subprocess.run(
        [str(sdk040_python), "-c", _SCRIPT, "tea-official", "oregon"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["etag"].startswith('"')
    assert out["get"] == ["binary content", 14, "image/png"]
    assert out["streamed_ok"] is True
    assert out["pages"] == [["path/to/file.png", True], ["streamed.bin", False]]
    assert out["sizes"] == [14, 256 * 1024]
    assert out["scoped"] == "s"
    assert out["after_delete"][0] == "ClientError"
    assert out["after_delete"][1] == "get download URL failed: object not found: path/to/file.png"
    assert out["left"] == ["streamed.bin"]
