"""The wallboard: one static page (HTML, CSS, a little JS) that renders the SSE stream live.

The page is the same for every wallboard; the queues, window and token are read from its URL by
the browser, so the server only checks the window (a typo should fail loudly, not show an empty
board) and sends the file. No data is in the page: everything arrives over ``/v1/stream``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.deps import WindowQuery
from api.errors import INVALID

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE = STATIC_DIR / "wallboard.html"

router = APIRouter(tags=["wallboard"], responses=INVALID)


@router.get(
    "/wallboard",
    summary="The live wallboard page (TV mode): big tiles per queue, a total row, firing alerts",
    response_class=HTMLResponse,
)
async def wallboard(
    window: WindowQuery = "15m",
    queues: Annotated[
        str | None,
        Query(description="Comma-separated queue names, in display order (default: all)"),
    ] = None,
) -> HTMLResponse:
    # Both are read by the page's script from its own URL, as is `access_token` (checked by
    # the router's guard, then passed on to `/v1/stream` and `/v1/alerts`).
    del window, queues
    # Read per request: a few kB, and a redeployed page is served without a restart.
    return HTMLResponse(
        PAGE.read_text(encoding="utf-8"),
        headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"},
    )


def mount_static(app: FastAPI) -> None:
    """The page's stylesheet and script, at ``/static`` (referenced relative to the page)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
