"""Bearer tokens and scopes on every route of the app, and CORS.

``ROUTES`` is the one place that says which scope each route needs. It is compared with the
app's own route table, so a route added without a row (and so, most likely, without a scope)
fails ``test_every_route_has_a_row`` until someone decides what it needs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.unit.apifixtures import TestClient
from tests.unit.securityfixtures import (
    ADMIN_TOKEN,
    BOTH_TOKEN,
    INGEST_TOKEN,
    READ_TOKEN,
    UNKNOWN_TOKEN,
    bearer,
    secured_client,
)

OPEN = "open"
READ = "read"
INGEST = "ingest"
ANY_NON_AUTH = 0  # a status that is neither an auth refusal nor a server error will do

# (method, route path) -> (scope, example URL, status with the right token)
ROUTES: dict[tuple[str, str], tuple[str, str, int]] = {
    ("GET", "/v1/kpis"): (READ, "/v1/kpis", 200),
    ("GET", "/v1/queues/{queue}/kpis"): (READ, "/v1/queues/sales/kpis", 200),
    ("GET", "/v1/queues/{queue}/intervals"): (READ, "/v1/queues/sales/intervals", 200),
    ("GET", "/v1/agents"): (READ, "/v1/agents", 200),
    ("GET", "/v1/agents/{agent_id}/kpis"): (READ, "/v1/agents/a1/kpis", 200),
    ("GET", "/v1/stream"): (READ, "/v1/stream", 200),
    ("GET", "/v1/alerts"): (READ, "/v1/alerts", ANY_NON_AUTH),  # 404 without an alert engine
    ("GET", "/v1/alerts/rules"): (READ, "/v1/alerts/rules", ANY_NON_AUTH),
    ("GET", "/wallboard"): (READ, "/wallboard", 200),
    ("POST", "/v1/events"): (INGEST, "/v1/events", 202),
    # Webhooks also take the token as Basic auth's password or Firehose's access key (their tests)
    ("POST", "/v1/webhooks/twilio"): (INGEST, "/v1/webhooks/twilio", ANY_NON_AUTH),
    ("POST", "/v1/webhooks/amazon-connect"): (INGEST, "/v1/webhooks/amazon-connect", ANY_NON_AUTH),
    ("POST", "/v1/webhooks/generic/{mapping}"): (INGEST, "/v1/webhooks/generic/x", ANY_NON_AUTH),
    ("GET", "/metrics"): (OPEN, "/metrics", 200),  # CALLPULSE_METRICS_AUTH=true: read
    ("GET", "/healthz"): (OPEN, "/healthz", 200),
    ("GET", "/readyz"): (OPEN, "/readyz", 200),
    ("GET", "/openapi.json"): (OPEN, "/openapi.json", 200),
    ("GET", "/docs"): (OPEN, "/docs", 200),
    ("GET", "/docs/oauth2-redirect"): (OPEN, "/docs/oauth2-redirect", 200),
    ("GET", "/redoc"): (OPEN, "/redoc", 200),
    ("MOUNT", "/static"): (OPEN, "/static/wallboard.css", 200),  # the page's CSS and JS: no data
}
SCOPED = sorted(key for key, (scope, _, _) in ROUTES.items() if scope != OPEN)
OPEN_ROUTES = sorted(key for key, (scope, _, _) in ROUTES.items() if scope == OPEN)
# A token that is valid but lacks the route's scope.
WRONG_TOKEN = {READ: INGEST_TOKEN, INGEST: READ_TOKEN}
RIGHT_TOKENS = {READ: (READ_TOKEN, BOTH_TOKEN, ADMIN_TOKEN), INGEST: (INGEST_TOKEN, BOTH_TOKEN)}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return secured_client()[0]


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers; HEAD is GET's twin, a mount counts once."""
    found: set[tuple[str, str]] = set()
    for path, methods in _route_paths(app):
        if methods is None:
            found.add(("MOUNT", path))
        else:
            found |= {(m, path) for m in methods if not (m == "HEAD" and "GET" in methods)}
    return found


def _route_paths(app: FastAPI) -> Iterator[tuple[str, set[str] | None]]:
    try:  # FastAPI >= 0.16x keeps included routers lazy: flatten them the way it does
        from fastapi.routing import iter_route_contexts
    except ImportError:
        for route in app.routes:
            yield getattr(route, "path", ""), getattr(route, "methods", None)
        return
    for context in iter_route_contexts(app.routes):
        yield context.path or "", getattr(context, "methods", None)


def call(client: TestClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Status and headers only: the stream route never ends, so read no body."""
    if method == "MOUNT":
        method = "GET"
    if method == "POST":
        kwargs.setdefault("content", orjson.dumps([_valid_event()]))
        kwargs.setdefault("headers", {})["content-type"] = "application/json"
    with client.stream(method, url, **kwargs) as response:
        if response.status_code >= 400:
            response.read()  # errors are small JSON bodies the tests look at
        return response


def _valid_event() -> dict[str, Any]:
    now = time.time()
    return {"event_id": f"auth-{now}", "type": "call.offered", "ts": now, "queue": "sales",
            "call_id": "c-auth", "caller": "+441632960000"}  # fmt: skip


def assert_refused(response: httpx.Response, status: int, code: str, challenge: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert challenge in response.headers["www-authenticate"]


def assert_let_through(response: httpx.Response, expected: int) -> None:
    if expected == ANY_NON_AUTH:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    else:
        assert response.status_code == expected, response.text


def test_every_route_has_a_row(client: TestClient) -> None:
    actual = app_routes(client.app)  # type: ignore[arg-type]
    missing = sorted(actual - set(ROUTES))
    stale = sorted(set(ROUTES) - actual)
    assert not missing, (
        f"routes without a row (give their router a scope in api/main.py): {missing}"
    )
    assert not stale, f"rows for routes the app no longer has: {stale}"


def test_openapi_marks_every_scoped_route_with_the_bearer_scheme(client: TestClient) -> None:
    """Independent of the requests below: the guard is a dependency of each scoped route."""
    paths = client.get("/openapi.json").json()["paths"]
    for method, path in SCOPED:
        assert paths[path][method.lower()].get("security") == [{"bearer": []}], path


@pytest.mark.parametrize(("method", "path"), SCOPED)
def test_no_token_is_401(client: TestClient, method: str, path: str) -> None:
    _, url, _ = ROUTES[(method, path)]
    assert_refused(call(client, method, url), 401, "unauthorized", 'realm="callpulse"')


@pytest.mark.parametrize(("method", "path"), SCOPED)
@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {UNKNOWN_TOKEN}",  # well-formed, never configured
        f"Bearer {READ_TOKEN}x",  # one character more than a real token
        f"Bearer {READ_TOKEN[:-1]}",  # one character less
        f"bearer {UNKNOWN_TOKEN}",  # the scheme is case-insensitive: still checked, still bad
    ],
)
def test_bad_token_is_401(client: TestClient, method: str, path: str, authorization: str) -> None:
    _, url, _ = ROUTES[(method, path)]
    response = call(client, method, url, headers={"Authorization": authorization})
    assert_refused(response, 401, "unauthorized", 'error="invalid_token"')


@pytest.mark.parametrize(("method", "path"), SCOPED)
@pytest.mark.parametrize(
    "authorization",
    [
        f"Basic {READ_TOKEN}",  # another scheme: not a bearer token at all
        "Bearer",  # the scheme and nothing else
        "",  # an empty header
    ],
)
def test_not_a_bearer_token_is_401(
    client: TestClient, method: str, path: str, authorization: str
) -> None:
    _, url, _ = ROUTES[(method, path)]
    response = call(client, method, url, headers={"Authorization": authorization})
    assert_refused(response, 401, "unauthorized", 'realm="callpulse"')


@pytest.mark.parametrize(("method", "path"), SCOPED)
def test_wrong_scope_is_403(client: TestClient, method: str, path: str) -> None:
    scope, url, _ = ROUTES[(method, path)]
    response = call(client, method, url, headers=bearer(WRONG_TOKEN[scope]))
    assert_refused(response, 403, "forbidden", f'scope="{scope}"')
    assert scope in response.json()["message"]


@pytest.mark.parametrize(("method", "path"), SCOPED)
def test_right_scope_is_let_through(client: TestClient, method: str, path: str) -> None:
    scope, url, expected = ROUTES[(method, path)]
    for token in RIGHT_TOKENS[scope]:  # the scope itself, with another, and admin
        assert_let_through(call(client, method, url, headers=bearer(token)), expected)


@pytest.mark.parametrize(("method", "path"), OPEN_ROUTES)
def test_open_routes_need_no_token_and_ignore_a_bad_one(
    client: TestClient, method: str, path: str
) -> None:
    _, url, expected = ROUTES[(method, path)]
    assert_let_through(call(client, method, url), expected)
    assert_let_through(call(client, method, url, headers=bearer(UNKNOWN_TOKEN)), expected)


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_without_configured_tokens_everything_is_open(method: str, path: str) -> None:
    open_client, _ = secured_client(tokens=[])
    _, url, expected = ROUTES[(method, path)]
    assert_let_through(call(open_client, method, url), expected)


@pytest.mark.parametrize(
    ("url", "token", "status"),
    [
        ("/v1/stream", READ_TOKEN, 200),  # EventSource cannot send headers: the query works
        ("/wallboard", READ_TOKEN, 200),  # the page is opened by URL, token and all
        ("/v1/stream", INGEST_TOKEN, 403),  # still the read scope
        ("/v1/stream", UNKNOWN_TOKEN, 401),
        ("/v1/kpis", READ_TOKEN, 401),  # elsewhere only the header counts
        ("/v1/agents", READ_TOKEN, 401),
    ],
)
def test_access_token_query_only_where_headers_cannot_go(
    client: TestClient, url: str, token: str, status: int
) -> None:
    response = call(client, "GET", url, params={"access_token": token})
    assert response.status_code == status, response.text


def test_the_header_wins_over_the_query(client: TestClient) -> None:
    response = call(
        client,
        "GET",
        "/v1/stream",
        params={"access_token": READ_TOKEN},
        headers=bearer(INGEST_TOKEN),
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("url", "headers", "status"),
    [
        ("/metrics", {}, 401),  # protected: no token
        ("/metrics", bearer(INGEST_TOKEN), 403),  # a producer's token cannot scrape
        ("/metrics", bearer(READ_TOKEN), 200),
        ("/metrics", bearer(ADMIN_TOKEN), 200),
        ("/healthz", {}, 200),  # probes stay open whatever /metrics does
        ("/readyz", {}, 200),
    ],
)
def test_metrics_auth_protects_only_metrics(url: str, headers: dict[str, str], status: int) -> None:
    protected, _ = secured_client(metrics_auth=True)
    assert call(protected, "GET", url, headers=headers).status_code == status


def test_openapi_declares_the_bearer_scheme_and_the_stream_query_token(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    stream_parameters = openapi["paths"]["/v1/stream"]["get"]["parameters"]
    assert "access_token" in {p["name"] for p in stream_parameters}
    kpi_parameters = openapi["paths"]["/v1/kpis"]["get"]["parameters"]
    assert "access_token" not in {p["name"] for p in kpi_parameters}


def test_refusals_do_not_echo_the_token(client: TestClient) -> None:
    for token in (UNKNOWN_TOKEN, INGEST_TOKEN):
        response = call(client, "GET", "/v1/kpis", headers=bearer(token))
        assert token not in response.text
        assert token not in str(response.headers)


# --- CORS ------------------------------------------------------------------------------------

WALLBOARD_ORIGIN = "https://wallboard.example"


def preflight(client: TestClient, origin: str, method: str = "GET") -> httpx.Response:
    return client.options(
        "/v1/kpis",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_cors_preflight_from_an_allowed_origin() -> None:
    cors, _ = secured_client(cors_origins=[WALLBOARD_ORIGIN, "https://other.example"])
    response = preflight(cors, WALLBOARD_ORIGIN)
    assert response.status_code == 200, response.text  # no token: a preflight never has one
    assert response.headers["access-control-allow-origin"] == WALLBOARD_ORIGIN
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "GET" in response.headers["access-control-allow-methods"]
    # The request that follows carries the token and gets the origin back.
    reply = cors.get("/v1/kpis", headers={"Origin": WALLBOARD_ORIGIN, **bearer(READ_TOKEN)})
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == WALLBOARD_ORIGIN


@pytest.mark.parametrize(
    ("origins", "origin"),
    [
        ([WALLBOARD_ORIGIN], "https://evil.example"),  # not on the list
        ([WALLBOARD_ORIGIN], "http://wallboard.example"),  # same host, other scheme
        ([], WALLBOARD_ORIGIN),  # the default: no cross-origin access at all
    ],
)
def test_cors_refuses_other_origins(origins: list[str], origin: str) -> None:
    cors, _ = secured_client(cors_origins=origins)
    response = preflight(cors, origin)
    assert "access-control-allow-origin" not in response.headers
    reply = cors.get("/v1/kpis", headers={"Origin": origin, **bearer(READ_TOKEN)})
    assert "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example", ["https://a.example"]),  # one origin
        ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
        ('["https://a.example"]', ["https://a.example"]),  # JSON list
        ("", []),  # set but empty: none
    ],
)
def test_cors_origins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    from callpulse.settings import Settings

    monkeypatch.setenv("CALLPULSE_CORS_ORIGINS", value)
    assert Settings().cors_origins == expected
