"""The playground's static files (maas_local/playground/: plain HTML, JS and CSS, no build step, nothing from a
CDN), served by the local gateway under /playground/ beside the API.

Same origin as the API, so the page calls it with fetch() and no CORS at all; no API route starts with
/playground. Only the files shipped in the folder are served (the list is read once, at start: a path is
looked up by name, never joined onto the file system, so `..` or `%2e%2e` cannot reach anything else), with
a Content-Security-Policy that lets the page load nothing but its own files (it may call any API: the base
URL is the user's to choose). `config.json` is made here, not shipped: the defaults the page starts with
locally (the API on this origin, the gateway's API key). A page hosted elsewhere (see playground/README.md) has none
and asks for the URL and key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.resources import files
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from maas_local.proxy_integration import error_body

PLAYGROUND_PREFIX = "/playground/"
CONFIG_FILE = "config.json"
# the page's own files only (scripts, styles, images); fetch() may go anywhere the user points it
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src *; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
Answer = tuple[int, list[tuple[str, str]], bytes]
# spelled out rather than mimetypes': that one reads the system's tables (.js is text/plain on some machines)
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
                 ".png": "image/png", ".ico": "image/x-icon", ".md": "text/markdown; charset=utf-8"}


def playground_files() -> dict[str, bytes]:
    """name -> content of every file shipped in maas_local/playground/ (package data)."""
    folder = files("maas_local") / "playground"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")}


class StaticSite:
    """A fixed set of files under `prefix`: GET/HEAD only, `prefix` itself is index.html."""

    def __init__(self, site_files: Mapping[str, bytes], prefix: str = PLAYGROUND_PREFIX) -> None:
        self.files = dict(site_files)
        self.prefix = prefix

    @classmethod
    def playground(cls, api_key: str | None) -> StaticSite:
        """The playground, starting on this origin's API with `api_key` (None: the routes ask for none)."""
        config = {"apiBase": "", "authKind": "x-api-key", "credential": api_key or ""}
        return cls({**playground_files(), CONFIG_FILE: json.dumps(config).encode()})

    def owns(self, raw_path: str) -> bool:
        return raw_path == self.prefix.rstrip("/") or raw_path.startswith(self.prefix)

    def answer(self, method: str, raw_path: str, request_id: str) -> Answer:
        if raw_path == self.prefix.rstrip("/"):
            return 308, [("Location", self.prefix)], b""
        name = unquote(raw_path[len(self.prefix):]) or "index.html"
        body = self.files.get(name)
        if body is None:
            return self._error(404, "not_found", f"no file {name!r} in {self.prefix}", request_id,
                               [{"field": "path", "value": name, "files": sorted(self.files)}])
        if method not in ("GET", "HEAD"):
            return self._error(405, "method_not_allowed", f"{method} is not allowed on {raw_path}; use GET",
                               request_id, [{"field": "method", "allowed": ["GET", "HEAD"]}], [("Allow", "GET, HEAD")])
        content_type = CONTENT_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")
        return 200, [("Content-Type", content_type), *self._headers()], body

    @staticmethod
    def _headers() -> list[tuple[str, str]]:
        # no-cache: an edited file shows on reload; nosniff: a file is only ever what its type says
        return [("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                ("Content-Security-Policy", CSP), ("Referrer-Policy", "no-referrer")]

    def _error(self, status: int, code: str, message: str, request_id: str, details: list[dict[str, Any]],
               extra: list[tuple[str, str]] | None = None) -> Answer:
        return (status, [("Content-Type", "application/json"), *(extra or []), *self._headers()],
                error_body(code, message, details, request_id))
