"""Static hosting of `web_client/` with a generated `/config.json`.

The generated configuration points the page at the local WebSocket URL and wins over
any `config.json` file in the folder (that file is for the hosted page).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web


def add_static_routes(
    app: web.Application, root: Path, *, site_config: Callable[[], dict[str, Any]]
) -> None:
    """Serve `root` at `/`; register last, it matches every GET path."""
    root = root.resolve()

    async def config_json(request: web.Request) -> web.Response:
        return web.json_response(site_config(), headers={"Cache-Control": "no-store"})

    async def serve(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise web.HTTPNotFound()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            if relative in ("", "index.html"):
                return web.Response(
                    text="The web client (web_client/index.html) is not there yet.\n",
                    status=404,
                )
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/config.json", config_json)
    app.router.add_get("/{path:.*}", serve)
