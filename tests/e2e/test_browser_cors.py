"""A web page on another origin calling the local gateway with fetch(), in a real headless Chromium: the
gateway answers the CORS preflight (OPTIONS) as API Gateway's mock integration does, from template.yaml's
MaasApi `Cors` (parameter AllowedOrigins), so a browser can call predict at all.

Chromium is Debian's (/usr/bin/chromium; scripts/bootstrap.sh installs it as root), driven by Playwright
(launched on that binary: `playwright install` is never needed). Without chromium the browser tests skip,
except in CI (CI set), where that is a failure. One browser per module."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from maas_core.manifest import Manifest
from maas_local.gateway import Gateway
from maas_local.stack import LocalStack
from tests.e2e.conftest import TEMPLATE

pytestmark = pytest.mark.e2e

KEY = "browser-key"
RECORD = {"records": [{"x1": 1, "colour": "red"}]}
# --no-sandbox: CI runs as root; --disable-dev-shm-usage: containers often have a tiny /dev/shm
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]

# the page's script: one fetch, and what a web app could see of its answer (or how fetch failed)
PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>maas web app</title><script>
async function callApi(url, key, body) {
  try {
    const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "x-api-key": key},
                                body: JSON.stringify(body)});
    return {status: r.status, json: await r.json(), requestId: r.headers.get("x-amzn-RequestId")};
  } catch (e) {
    return {rejected: e.name + ": " + e.message};
  }
}
</script></head><body>maas</body></html>"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_port() -> Iterator[int]:
    """A second loopback origin serving the web app's page: http://127.0.0.1:<port> (allowed) and, the same
    server under another host name, http://localhost:<port> (another origin, not allowed)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def app_origin(page_port: int) -> str:
    return f"http://127.0.0.1:{page_port}"


@pytest.fixture(scope="module")
def cors_gateway(local_stack: LocalStack, tiny_model: Manifest, app_origin: str) -> Iterator[Gateway]:
    """The gateway as `maas-gateway --parameter AllowedOrigins=<page origin>` runs it: API keys on."""
    gw = Gateway(TEMPLATE, local_stack.names, host="127.0.0.1", port=0, run_queue_consumers=False,
                 parameters={"AllowedOrigins": app_origin}, api_keys=[KEY])
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def api(cors_gateway: Gateway) -> str:
    """The gateway's base URL under another host name than the page's: cross-origin, as a deployed API is."""
    return f"http://localhost:{cors_gateway.port}"


def sample_path(pattern: str) -> str:
    return pattern.replace("{proxy+}", "a/b").replace("{model}", "tiny").replace("{alias}", "prod") \
        .replace("{version}", "1")


# --- the preflight over plain HTTP ------------------------------------------------------------------------------


def test_every_route_path_answers_the_preflight_with_the_template_cors(
        http: Any, cors_gateway: Gateway, api: str, app_origin: str) -> None:
    # Given the gateway with AllowedOrigins=<page origin> and API keys on
    for path in sorted({r.path for r in cors_gateway.routes}):
        # When a browser's preflight (no key, no signature, no token) asks for each declared path
        r = http("OPTIONS", api + sample_path(path), headers={
            "Origin": app_origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key"})
        # Then it is answered 200 with MaasApi's Cors headers, no function run and nothing asked
        assert r.status == 200, (path, r.status, r.body)
        assert r.headers["access-control-allow-origin"] == app_origin
        assert r.headers["access-control-allow-methods"] == "GET,POST,PUT,DELETE,OPTIONS"
        assert {h.lower() for h in r.headers["access-control-allow-headers"].split(",")} >= \
            {"content-type", "x-api-key", "authorization", "x-maas-routing-key"}
        assert r.headers["access-control-max-age"] == "600"
        assert r.headers["x-amzn-requestid"]


def test_preflight_from_another_origin_gets_the_static_origin_as_on_aws(
        http: Any, api: str, app_origin: str) -> None:
    # When another origin preflights: API Gateway's mock answers the configured origin whatever was asked
    r = http("OPTIONS", api + "/v1/models/tiny/predict", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    # Then the answer names the allowed origin, not the caller's, and the browser refuses the call
    assert r.status == 200
    assert r.headers["access-control-allow-origin"] == app_origin != "http://evil.example"


def test_options_on_an_unknown_path_stays_404(http: Any, api: str, app_origin: str) -> None:
    r = http("OPTIONS", api + "/v1/nothing/here", headers={"Origin": app_origin})
    assert r.status == 404 and r.json()["error"]["code"] == "route_not_found"


# --- in a real browser ---------------------------------------------------------------------------------------


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: scripts/bootstrap.sh installs Debian's chromium when run as root")
    pytest.skip("chromium is not installed (apt-get install chromium, or run scripts/install-browser.sh as root)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if os.environ.get("CI"):
        from playwright.sync_api import sync_playwright  # in CI a missing playwright fails, never skips
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as pw:
        # Playwright gives each launch a fresh temporary profile (user data dir)
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def fetch_from(browser: Any, origin: str, url: str, key: str) -> tuple[dict[str, Any], list[str]]:
    """Open the page on `origin`, call `url` with fetch(); (what the script saw, the browser console's errors)."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(origin + "/")
        result = page.evaluate("([url, key, body]) => callApi(url, key, body)", [url, key, RECORD])
        return result, errors
    finally:
        page.close()


def test_browser_on_the_allowed_origin_reads_a_prediction(browser: Any, api: str, app_origin: str) -> None:
    # Given a page on the allowed origin; When it POSTs predict with the right key (JSON + x-api-key: preflighted)
    result, _ = fetch_from(browser, app_origin, api + "/v1/models/tiny/predict", KEY)
    # Then the script reads the 200 and its JSON prediction, and the request id the API exposes
    assert result.get("status") == 200, result
    assert result["json"]["model"] == "tiny" and len(result["json"]["predictions"]) == 1
    assert result["requestId"]


def test_browser_on_the_allowed_origin_reads_a_403_for_a_wrong_key(browser: Any, api: str, app_origin: str) -> None:
    # When the page sends a wrong key; Then the gateway's own 403 carries the origin, so the script reads its JSON
    result, _ = fetch_from(browser, app_origin, api + "/v1/models/tiny/predict", "wrong-key")
    assert result.get("status") == 403, result
    assert result["json"]["error"]["code"] == "INVALID_API_KEY"


def test_browser_on_another_origin_is_blocked(browser: Any, api: str, app_origin: str, page_port: int) -> None:
    # Given the same page on an origin that is not allowed (localhost instead of 127.0.0.1)
    other = f"http://localhost:{page_port}"
    result, errors = fetch_from(browser, other, api + "/v1/models/tiny/predict", KEY)
    # Then fetch rejects: the preflight was answered (200) but names only the allowed origin, so Chromium blocks it
    assert result == {"rejected": "TypeError: Failed to fetch"}, result
    assert any("blocked by CORS policy: Response to preflight request" in e and
               f"'Access-Control-Allow-Origin' header has a value '{app_origin}' that is not equal" in e
               for e in errors), errors
