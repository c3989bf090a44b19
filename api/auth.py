"""Who may call the API: bearer tokens with scopes, applied per router; browser origins (CORS).

``create_app`` installs the token table and the CORS policy once (``install_access``) and names
each router's scope with ``Depends(require(...))``. With no tokens configured every route is
open: tests and ``callpulse dev`` run that way, and ``callpulse api`` refuses to unless told
``CALLPULSE_INSECURE=true``. ``/healthz``, ``/readyz`` and the API docs are always open;
``/metrics`` needs ``read`` when ``CALLPULSE_METRICS_AUTH=true``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.middleware.cors import CORSMiddleware

from callpulse.settings import Settings
from callpulse.tokens import INGEST, READ, TokenTable, grants, load_entries

REALM = 'Bearer realm="callpulse"'
# Browsers send these on a wallboard's cross-origin requests; SSE adds Last-Event-ID on reconnect.
CORS_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID"]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from `callpulse token`; its hash goes in CALLPULSE_TOKENS.",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
AccessTokenQuery = Annotated[
    str | None,
    Query(
        description="The bearer token, for clients that cannot set headers (EventSource). "
        "It shows up in URLs, browser history and proxy logs: prefer the header.",
    ),
]
Guard = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Access:
    tokens: TokenTable
    metrics_auth: bool


def token_table(settings: Settings) -> TokenTable:
    """Tokens from CALLPULSE_TOKENS and CALLPULSE_TOKENS_FILE (TokenConfigError when bad)."""
    return TokenTable(load_entries(settings.tokens, settings.tokens_file))


def install_access(app: FastAPI, settings: Settings) -> None:
    app.state.access = Access(token_table(settings), settings.metrics_auth)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=CORS_HEADERS,
            # Tokens travel in a header, never in cookies: no credentialed requests needed.
            allow_credentials=False,
            max_age=600,
        )


def require(scope: str, *, query_token: bool = False) -> Guard:
    """A dependency that lets a request through only with a token carrying ``scope``.

    ``query_token`` also accepts ``?access_token=`` (after the header), for EventSource.
    """
    if query_token:

        async def guard_with_query(
            request: Request, credentials: BearerCredentials, access_token: AccessTokenQuery = None
        ) -> None:
            header_token = credentials.credentials if credentials else None
            authorise(request, scope, header_token or access_token)

        return guard_with_query

    async def guard(request: Request, credentials: BearerCredentials) -> None:
        authorise(request, scope, credentials.credentials if credentials else None)

    return guard


async def metrics_access(request: Request, credentials: BearerCredentials) -> None:
    """``/metrics``: open unless CALLPULSE_METRICS_AUTH=true, then the ``read`` scope."""
    if _access(request).metrics_auth:
        authorise(request, READ, credentials.credentials if credentials else None)


def authorise(request: Request, scope: str, token: str | None) -> None:
    tokens = _access(request).tokens
    if not tokens:
        return  # no tokens configured: open (the CLI decides whether that may run)
    if not token:
        raise HTTPException(
            401,
            "a bearer token is required: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": REALM},
        )
    scopes = tokens.scopes_for(token)
    if scopes is None:
        raise HTTPException(
            401,
            "the bearer token is not valid",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    if not grants(scopes, scope):
        raise HTTPException(
            403,
            f"this token lacks the '{scope}' scope (it has: {', '.join(sorted(scopes))})",
            headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
        )


def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


# One guard per scope, so every router names its scope with a constant.
requires_read = Depends(require(READ))
requires_read_or_query = Depends(require(READ, query_token=True))
requires_ingest = Depends(require(INGEST))
