"""The wallboard page and its assets as the API serves them (the browser test runs the page).

Wallboards often sit on networks without internet: the page must load nothing from anywhere
but the callpulse that serves it, and must work when a proxy puts callpulse under a prefix.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from api.routes.wallboard import STATIC_DIR
from callpulse.settings import Settings
from callpulse.tokens import entry_for, new_token
from tests.unit.apifixtures import T0_US, TestClient, build_services, client_for, s

ROOT = Path(__file__).resolve().parents[2]
ASSETS = sorted(path.name for path in STATIC_DIR.iterdir() if path.is_file())
# Anything that would reach outside: a scheme, a protocol-relative URL, or an absolute path
# (which would break under a proxy prefix).
OUTSIDE = re.compile(r"""(?:src|href)\s*=\s*["'](?:[a-z]+:|//|/)""", re.IGNORECASE)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return client_for(build_services([], now_us=T0_US + s(60)), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 200),  # defaults: every queue, 15 minutes
        ("?queues=sales,support&window=today", 200),  # the URL chooses queues and window
        ("?window=2h", 422),  # a window the API does not have: an error, not an empty board
        ("?queues=", 200),  # an empty list means every queue, as on the stream
    ],
)
def test_page_is_served_for_valid_windows(client: TestClient, query: str, status: int) -> None:
    reply = client.get("/wallboard" + query)
    assert reply.status_code == status, reply.text
    if status == 200:
        assert reply.headers["content-type"].startswith("text/html")
        assert "static/wallboard.js" in reply.text


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("wallboard.js", "text/javascript"),  # some servers say application/javascript
        ("wallboard.css", "text/css"),
        ("wallboard.html", "text/html"),
    ],
)
def test_assets_are_served_with_their_types(
    client: TestClient, name: str, content_type: str
) -> None:
    reply = client.get(f"/static/{name}")
    assert reply.status_code == 200
    assert reply.headers["content-type"].split(";")[0] in {content_type, "application/javascript"}
    assert reply.content == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("name", ASSETS)
def test_assets_load_nothing_from_outside(name: str) -> None:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    assert not OUTSIDE.search(text), f"{name}: {OUTSIDE.search(text)}"
    assert "http://" not in text and "https://" not in text, f"{name} names a remote URL"
    assert "@import" not in text and "url(" not in text, f"{name} pulls in another resource"


def test_script_uses_relative_api_paths_and_no_polling() -> None:
    script = (STATIC_DIR / "wallboard.js").read_text(encoding="utf-8")
    assert 'apiUrl("v1/stream"' in script and 'apiUrl("v1/alerts")' in script
    assert "innerHTML" not in script, "queue names and alert texts are data, never markup"
    # setInterval only for the local clock tick; fetch only for the alert list (on (re)connect).
    assert script.count("setInterval(") == 1 and "setInterval(tick, 1000)" in script
    assert script.count("fetch(") == 1


def test_package_data_ships_the_assets() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"].get("api", [])
    # Without it a non-editable install (the Docker image) serves a wallboard without its page.
    assert "static/*" in package_data, package_data


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 401),  # no token: the page needs the read scope like the stream it shows
        ("?access_token=cp_wrong", 401),  # an unknown token
        ("?access_token={token}", 200),  # the token a wallboard URL carries
    ],
)
def test_page_needs_a_read_token_when_tokens_are_configured(query: str, status: int) -> None:
    token = new_token()
    settings = Settings(tokens=[entry_for(token, ["read"]).line])
    client = client_for(build_services([], now_us=T0_US, settings=settings))
    assert client.get("/wallboard" + query.format(token=token)).status_code == status
    # The assets are the same for everyone and hold no data: open.
    assert client.get("/static/wallboard.js").status_code == 200
