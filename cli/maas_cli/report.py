"""`maas report MODEL`: quality, volume, latency and drift over time, as PNG charts and one HTML page.

    maas report penguins                        last 7 days in 1-day windows -> report.html
    maas report penguins --days 2 --window 1h --out penguins.html --png
    maas report penguins --since 2026-11-01T00:00Z --until 2026-11-08T00:00Z

The numbers come from the captures table through maas_core.monitoring.history, i.e. computed per window
exactly as GET /v1/models/{model}/metrics computes them (no HTTP: the CLI reads the table itself, so it
needs read access to the registry, the model bucket's manifests and the captures table). Charts: quality
per version (accuracy and macro F1, or MAE and RMSE), captured volume (and feedback), latency p50/p99,
and PSI per input field with the 0.1 / 0.2 thresholds. The HTML page is self-contained: the charts are
embedded as base64 PNGs, with a table of every window's numbers and the same numbers as JSON
(<script id="maas-report-data">). matplotlib (the `cli` extra) renders with the Agg backend: no display.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas_cli.context import Context, stack_outputs
from maas_cli.output import emit_json
from maas_core.errors import MaasError, UnprocessableError

CAPTURES_OUTPUT = "CapturesTableName"
CHARTS = ("quality", "volume", "latency", "drift")

if TYPE_CHECKING:
    from maas_core.monitoring.history import HistoryRow


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model")
    span = p.add_mutually_exclusive_group()
    span.add_argument("--days", type=float, default=None, metavar="N", help="the last N days (default 7)")
    span.add_argument("--since", metavar="ISO", help="start, ISO 8601 (UTC unless it says otherwise)")
    p.add_argument("--until", metavar="ISO", help="end, ISO 8601 (default: now)")
    p.add_argument("--window", default="1d", help="length of each window: 15m, 1h, 1d, ... (default 1d)")
    p.add_argument("--version", help="only this version")
    p.add_argument("--out", default="report.html", metavar="FILE", help="the HTML page (default report.html)")
    p.add_argument("--png", action="store_true", help="also write each chart as FILE-stem_<chart>.png")
    p.add_argument("--captures-table", metavar="NAME",
                   help="captures table (default: $MAAS_CAPTURES_TABLE, the stack's CapturesTableName, "
                        "or maas-captures)")


def run(ctx: Context, args: argparse.Namespace) -> int:
    end = _instant("until", args.until) if args.until else datetime.now(UTC)
    if args.since:
        start = _instant("since", args.since)
    else:
        days = 7.0 if args.days is None else args.days
        if not days > 0:
            raise UnprocessableError(f"--days must be positive, got {days:g}", [{"field": "days", "value": days}])
        start = end - timedelta(days=days)
    # the monitoring code loads here, not with every `maas` command (~0.1 s)
    from maas_core.monitoring.history import metrics_history, parse_step
    from maas_core.monitoring.report import MonitoringService
    from maas_core.monitoring.store import CaptureStore
    from maas_core.settings import Settings

    step = parse_step(args.window)
    table = _captures_table(args)
    service = MonitoringService(Settings(captures_table=table), ctx.registry, ctx.store, CaptureStore(table))
    rows = metrics_history(service, args.model, start, end, step, args.version)
    if not any(r.predictions for r in rows):
        what = f"version {args.version} of model" if args.version else "model"
        raise MaasError(f"no captured predictions of {what} {args.model!r} between "
                        f"{start.isoformat(timespec='minutes')} and {end.isoformat(timespec='minutes')} "
                        f"in captures table {table!r}: nothing to report "
                        "(is capture on, MAAS_CAPTURE_RATE > 0, and the right --captures-table given?)")
    out = Path(args.out)
    charts = render_charts(rows)
    pngs: list[Path] = []
    if args.png:
        for name, data in charts.items():
            path = out.with_name(f"{out.stem}_{name}.png")
            path.write_bytes(data)
            pngs.append(path)
    out.write_text(render_html(args.model, rows, charts, args.window), encoding="utf-8")
    summary = {"model": args.model, "html": str(out), "png": [str(p) for p in pngs], "windows": len(rows),
               "predictions": sum(r.predictions for r in rows)}
    if ctx.as_json:
        emit_json(summary)
    else:
        print(f"wrote {out} ({len(rows)} windows of {args.window}, {summary['predictions']} captured predictions)")
        for p in pngs:
            print(f"wrote {p}")
    return 0


def _instant(name: str, text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UnprocessableError(f"--{name} is not an ISO 8601 time: {text!r}",
                                 [{"field": name, "value": text}]) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _captures_table(args: argparse.Namespace) -> str:
    """--captures-table, else $MAAS_CAPTURES_TABLE, else the stack's output, else the serving default."""
    from maas_core.settings import Settings

    if args.captures_table:
        return args.captures_table
    if os.environ.get("MAAS_CAPTURES_TABLE"):
        return os.environ["MAAS_CAPTURES_TABLE"]
    if getattr(args, "stack", None):
        found = stack_outputs(args.stack).get(CAPTURES_OUTPUT)
        if found:
            return found
    return Settings.model_fields["captures_table"].default


# --- charts ------------------------------------------------------------------------------------------


def render_charts(rows: list[HistoryRow]) -> dict[str, bytes]:
    """{chart name: PNG bytes} for quality, volume, latency and drift."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a display
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MaasError("maas report needs matplotlib: pip install 'maas[cli]'") from exc
    from maas_core.monitoring.history import series
    from maas_core.monitoring.quality import MODERATE, SIGNIFICANT

    data = series(rows)
    x = [r.window.start + (r.window.end - r.window.start) / 2 for r in rows]  # each window's middle
    span = (rows[0].window.start, rows[-1].window.end)
    versions = data["versions"]
    charts: dict[str, bytes] = {}

    def figure(title: str, ylabel: str) -> Any:
        fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        return fig, ax

    def finish(name: str, fig: Any, ax: Any) -> None:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no data in these windows", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(*span)  # the whole report, windows without data included
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        charts[name] = buf.getvalue()

    fig, ax = figure("Quality per version (windows with feedback)", "value")
    for v, s in versions.items():
        for key, style in (("accuracy", "-o"), ("f1_macro", "--s"), ("mae", "-o"), ("rmse", "--s")):
            if key in s["quality"]:
                ax.plot(x, _nan(s["quality"][key]), style, label=f"v{v} {key}")
    finish("quality", fig, ax)

    fig, ax = figure("Volume: captured predictions (and feedback) per window", "count")
    for v, s in versions.items():
        ax.plot(x, s["predictions"], "-o", label=f"v{v} predictions")
        if any(s["feedback"]):
            ax.plot(x, s["feedback"], ":^", label=f"v{v} feedback")
    finish("volume", fig, ax)

    fig, ax = figure("Latency (handler, nearest-rank percentiles)", "ms")
    for v, s in versions.items():
        if any(p is not None for p in s["p50"]):
            ax.plot(x, _nan(s["p50"]), "-o", label=f"v{v} p50")
            ax.plot(x, _nan(s["p99"]), "--s", label=f"v{v} p99")
    finish("latency", fig, ax)

    fig, ax = figure("Drift: PSI per input field against the training baseline", "PSI")
    highest = 0.0
    for v, s in versions.items():
        for feature, values in sorted(s["psi"].items()):
            ax.plot(x, _nan(values), "-o", label=f"v{v} {feature}")
            highest = max([highest, *(p for p in values if p is not None)])
    if highest > 1.0:  # keep the 0.1 / 0.2 thresholds readable next to a PSI of 5
        ax.set_yscale("symlog", linthresh=0.5)
    ax.axhline(MODERATE, color="orange", linestyle="--", linewidth=1, label=f"moderate ({MODERATE})")
    ax.axhline(SIGNIFICANT, color="red", linestyle="--", linewidth=1, label=f"significant ({SIGNIFICANT})")
    finish("drift", fig, ax)
    return charts


def _nan(values: list[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


# --- HTML --------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def table_rows(rows: list[HistoryRow]) -> list[dict[str, Any]]:
    """One row per window and version: the numbers the HTML table shows (and its JSON carries)."""
    out: list[dict[str, Any]] = []
    for r in rows:
        for v in r.metrics.versions:
            q = v.quality or {}
            features = v.drift.get("features") or {}
            out.append({
                "window_start": r.window.start.isoformat(timespec="minutes"),
                "window_end": r.window.end.isoformat(timespec="minutes"),
                "version": v.version, "predictions": v.predictions, "feedback": v.feedback,
                "p50_ms": v.latency_ms.get("p50"), "p99_ms": v.latency_ms.get("p99"),
                **{k: q.get(k) for k in ("accuracy", "f1_macro", "mae", "rmse")},
                "max_psi": v.drift.get("max_psi"),
                "psi": {name: d.get("psi") for name, d in features.items()},
            })
    return out


def render_html(model: str, rows: list[HistoryRow], charts: dict[str, bytes], window: str) -> str:
    from maas_core.monitoring.quality import MODERATE, SIGNIFICANT

    numbers = table_rows(rows)
    features = sorted({f for n in numbers for f, p in n["psi"].items() if p is not None})
    head = ["window start (UTC)", "version", "predictions", "feedback", "p50 ms", "p99 ms", "accuracy",
            "F1 macro", "MAE", "RMSE", "max PSI", *[f"PSI {f}" for f in features]]
    body = []
    for n in numbers:
        cells = [n["window_start"], n["version"], _fmt(n["predictions"]), _fmt(n["feedback"]),
                 _fmt(n["p50_ms"], 1), _fmt(n["p99_ms"], 1), _fmt(n["accuracy"]), _fmt(n["f1_macro"]),
                 _fmt(n["mae"]), _fmt(n["rmse"]), _fmt(n["max_psi"]), *[_fmt(n["psi"].get(f)) for f in features]]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    images = "\n".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(charts[name]).decode()}">'
        f"<figcaption>{name}</figcaption></figure>" for name in CHARTS if name in charts)
    start, end = rows[0].window.start, rows[-1].window.end
    data = json.dumps({"model": model, "window": window, "rows": numbers,
                       "thresholds": {"moderate": MODERATE, "significant": SIGNIFICANT}}, default=str)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>maas report: {html.escape(model)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Model {html.escape(model)}: monitoring report</h1>
<p>{html.escape(start.isoformat(timespec="minutes"))} to {html.escape(end.isoformat(timespec="minutes"))},
{len(rows)} windows of {html.escape(window)}; from the captured predictions and their feedback, computed
per window as <code>GET /v1/models/{html.escape(model)}/metrics</code> does. PSI: &lt; {MODERATE} stable,
{MODERATE}–{SIGNIFICANT} moderate, &gt; {SIGNIFICANT} significant drift.</p>
{images}
<h2>Numbers</h2>
<table id="numbers"><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<script type="application/json" id="maas-report-data">{data.replace("</", "<\\/")}</script>
</body></html>
"""
