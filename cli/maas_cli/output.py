"""Printing: aligned text tables for people, JSON for scripts (--json)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO


def emit_json(data: Any, out: TextIO | None = None) -> None:
    print(json.dumps(data, indent=2, default=str), file=out or sys.stdout)


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out or sys.stdout)


def when(iso: str | None) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM:SS' (UTC), or as given when it does not parse."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def metrics_summary(metrics: dict[str, Any] | None, limit: int = 4) -> str:
    if not metrics:
        return "-"
    parts = [f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in list(metrics.items())[:limit]]
    return " ".join(parts) + (" ..." if len(metrics) > limit else "")


def percent(weight: float) -> str:
    return f"{weight * 100:.4g}%"


def alias_line(name: str, target: Any) -> str:
    """One line about where an alias points now (an AliasTarget)."""
    line = f"{name}: alias {target.alias!r} -> version {target.version}"
    if target.canary_version:
        line += f", canary version {target.canary_version} takes {percent(target.canary_weight)}"
    if target.history:
        line += f" (rollback goes to version {target.history[-1]})"
    return line


def alias_json(name: str, target: Any) -> dict[str, Any]:
    return {"model": name, "alias": target.alias, "version": target.version, "canary_version": target.canary_version,
            "canary_weight": target.canary_weight, "history": list(target.history), "revision": target.revision,
            "updated_at": target.updated_at, "moves": [m.item() for m in target.moves]}
