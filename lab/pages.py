"""What the browser scenarios share: the page server (run inside a host's namespace) and their helper programs'
command line (``python -m lab.scenarios.X COMMAND --option …``).

The page server hands out files of ``lab/web/`` (never cached, so every run fetches them on the wire), answers
``/favicon.ico`` with 204 (browsers ask for it) and carries the scenario's own routes (signalling, result POSTs,
pacing); the catch-all page route comes last so that it shadows none of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

WEB = Path(__file__).resolve().parent / "web"
HTTP_PORT = 8080
REQUIRED: dict[str, Any] = {"required": True}
# the page servers' command line: ``serve --work DIR --host ADDRESS``
SERVE_OPTIONS: list[tuple[str, dict[str, Any]]] = [("--work", REQUIRED), ("--host", REQUIRED)]

Route = tuple[str, str, Callable[..., Any]]  # (method, path, aiohttp handler)


def serve_pages(
    host: str, files: Sequence[str], routes: Sequence[Route], *, max_body: int, port: int = HTTP_PORT
) -> None:
    """Serve ``files`` (names in lab/web/, shared lab_page.js included) and ``routes`` on ``host:port`` until
    killed; ``max_body`` bounds a POSTed body (the pages post getStats() dumps)."""
    from aiohttp import web

    allowed = {*files, "lab_page.js"}

    async def page(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        if name not in allowed:
            raise web.HTTPNotFound()
        return web.FileResponse(WEB / name, headers={"Cache-Control": "no-store"})

    async def favicon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application(client_max_size=max_body)
    app.router.add_get("/favicon.ico", favicon)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    app.router.add_get("/{name}", page)
    web.run_app(app, host=host, port=port, print=None)


def command_main(
    prog: str,
    commands: Mapping[str, tuple[Callable[[argparse.Namespace], Any], Sequence[tuple[str, dict[str, Any]]]]],
    argv: list[str] | None = None,
) -> None:
    """``python -m {prog} COMMAND [options]``: ``commands`` maps each command to (function, its options as
    (flag, add_argument keywords)); runs the chosen function with the parsed arguments."""
    ap = argparse.ArgumentParser(prog=f"python -m {prog}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, (_, options) in commands.items():
        p = sub.add_parser(name)
        for flag, kw in options:
            p.add_argument(flag, **kw)
    args = ap.parse_args(argv)
    commands[args.cmd][0](args)
