"""The site a stage deploys (its `BucketDeployment`'s files), served at `/`.

The files come from the template (`offline.blueprint.site_files`), so the page gets the
`config.json` the stack's deployment would write, with the stage's URLs mapped to the twin.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web


def add_static_routes(app: web.Application, files: Mapping[str, bytes | Path]) -> None:
    """Serve `files` (relative path → content or file) at `/`; register last."""

    async def serve(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"] or "index.html"
        if relative.endswith("/"):
            relative += "index.html"
        content = files.get(relative)
        if content is None:
            if relative == "index.html":
                return web.Response(text="This stage deploys no page at /.\n", status=404)
            raise web.HTTPNotFound()
        # Re-read on every load, as the hosted page's config.json is (no-cache).
        headers = {"Cache-Control": "no-cache"}
        if isinstance(content, Path):
            return web.FileResponse(content, headers=headers)
        kind = mimetypes.guess_type(relative)[0] or "application/octet-stream"
        return web.Response(body=content, content_type=kind, headers=headers)

    app.router.add_get("/{path:.*}", serve)
