"""Matching a request to one of the template's API routes, as API Gateway REST does: `{model}` matches one
path segment, `{proxy+}` the rest; literal segments win over parameters, parameters over greedy ones. An
OPTIONS request goes to the CORS preflight of the most specific path, when its API has one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from maas_local.template import CorsPreflight, Route


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    regex: re.Pattern[str]
    params: tuple[str, ...]
    rank: tuple[int, ...]  # per segment: 0 literal, 1 {param}, 2 {greedy+}; lower sorts first

    @classmethod
    def compile(cls, route: Route) -> CompiledRoute:
        parts: list[str] = []
        params: list[str] = []
        rank: list[int] = []
        for seg in route.path.strip("/").split("/") if route.path.strip("/") else []:
            m = re.fullmatch(r"\{([^{}+]+)(\+?)\}", seg)
            if m and m.group(2):
                parts.append("(.+)")
                rank.append(2)
            elif m:
                parts.append("([^/]+)")
                rank.append(1)
            else:
                parts.append(re.escape(seg))
                rank.append(0)
            if m:
                params.append(m.group(1))
        regex = re.compile("^/" + "/".join(parts) + "/?$")
        return cls(route=route, regex=regex, params=tuple(params), rank=tuple(rank))

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.match(path)
        if m is None:
            return None
        return {name: unquote(value) for name, value in zip(self.params, m.groups(), strict=True)}


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted((CompiledRoute.compile(r) for r in routes), key=lambda c: c.rank)

    def match(self, method: str, path: str) -> tuple[CompiledRoute | None, dict[str, str], list[str]]:
        """(route, path parameters, methods allowed on the path). route None: 404 if no method is
        allowed, else 405. The most specific path wins (literal > {param} > {greedy+}); on equal
        paths a route for the exact method beats ANY."""
        allowed: set[str] = set()
        candidates: list[tuple[tuple[int, ...], int, CompiledRoute, dict[str, str]]] = []
        for c in self.routes:
            params = c.match(path)
            if params is None:
                continue
            allowed.add(c.route.method)
            if c.route.method in (method, "ANY"):
                candidates.append((c.rank, 0 if c.route.method == method else 1, c, params))
        if not candidates:
            return None, {}, sorted(allowed)
        _, _, best, params = min(candidates, key=lambda t: (t[0], t[1]))
        return best, params, sorted(allowed)

    def preflight(self, path: str) -> CorsPreflight | None:
        """The CORS mock answering OPTIONS on `path`: the one of the most specific matching resource, as API
        Gateway picks the resource before the method; None if that resource has none or nothing matches."""
        # self.routes is sorted most specific first, and the routes of one resource share its preflight
        return next((c.route.preflight for c in self.routes if c.match(path) is not None), None)
