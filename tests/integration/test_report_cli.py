"""`maas report` against a moto account: seeded captures and feedback over three windows -> PNG charts and
one self-contained HTML page whose numbers match hand-computed values; bad arguments fail clearly."""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from maas_cli.main import main
from maas_core.manifest import Manifest, TensorInfo
from maas_core.monitoring import CaptureStore
from maas_core.monitoring.quality import EPSILON
from maas_local.testing.tiny_model import LABELS, SPEC, WEIGHTS, onnx_bytes
from tests.conftest import AwsWorld, create_registry_table
from tests.integration.test_monitoring import capture

CAPTURES = "test-captures"
T0 = datetime(2026, 11, 20, tzinfo=UTC)
DAY_MS = 86_400_000
PNG = b"\x89PNG\r\n\x1a\n"
# x1 in two training bins [0, 1) and [1, 2] with half the rows each; colour half blue, half red
BASELINE = {"rows": 100, "bins": 2, "features": {
    "x1": {"kind": "numeric", "count": 100, "missing": 0, "mean": 1.0, "bin_edges": [0.0, 1.0, 2.0],
           "proportions": [0.5, 0.5]},
    "colour": {"kind": "categorical", "count": 100, "missing": 0, "frequencies": {"blue": 0.5, "red": 0.5}},
}}


def publish_version(world: AwsWorld) -> str:
    version = world.registry.next_version("tiny")
    manifest = Manifest(name="tiny", version=version, task="binary", labels=LABELS, input_schema=SPEC.input_schema(),
                        model_input=TensorInfo(name="features", dtype="float32", shape=[None, len(WEIGHTS)]),
                        model_output=TensorInfo(name="probabilities", dtype="float32", shape=[None, 2]),
                        baseline=BASELINE)
    world.registry.register(world.store.publish(manifest, {"model.onnx": onnx_bytes(),
                                                           "preprocess.json": SPEC.to_json().encode()}))
    return version


def seed(store: CaptureStore, version: str, day: int, rows: list[tuple[float, str, str | None, float]]) -> None:
    """Captures made on day `day` after T0: (latency ms, predicted label, true label or None, x1)."""
    for i, (latency, predicted, truth, x1) in enumerate(rows):
        c = capture("tiny", version, at_ms=int(T0.timestamp() * 1000) + day * DAY_MS + 3_600_000 + i,
                    latency=latency, label=predicted, features={"x1": x1, "colour": "blue" if i % 2 else "red"})
        store.put_capture(c)
        if truth is not None:
            assert store.set_truth("tiny", c["id"], {"label": truth}, T0.isoformat()) is None


@pytest.fixture
def world(aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> AwsWorld:
    """Given versions 1 and 2 of tiny (a baseline in their manifests) and, in a captures table:
    day 1: 4 predictions of v1 (latency 1..4 ms), predicted yes, yes, no, no for truths yes, no, no, no,
           x1 0.5, 0.5, 1.5, 1.5 (the training shares);
    day 2: 2 of v1 (10, 20 ms, no feedback) and 3 of v2 (5, 6, 7 ms, all right), every x1 = 1.5;
    day 3: nothing."""
    create_registry_table(CAPTURES)
    monkeypatch.delenv("MAAS_CAPTURES_TABLE", raising=False)
    assert (publish_version(aws_world), publish_version(aws_world)) == ("1", "2")
    store = CaptureStore(CAPTURES)
    seed(store, "1", 0, [(1.0, "yes", "yes", 0.5), (2.0, "yes", "no", 0.5), (3.0, "no", "no", 1.5),
                         (4.0, "no", "no", 1.5)])
    seed(store, "1", 1, [(10.0, "yes", None, 1.5), (20.0, "no", None, 1.5)])
    seed(store, "2", 1, [(5.0, "yes", "yes", 1.5), (6.0, "no", "no", 1.5), (7.0, "no", "no", 1.5)])
    return aws_world


def report(world: AwsWorld, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--bucket", world.bucket, "--table", world.table, "report", *args, "--captures-table", CAPTURES])
    out, err = capsys.readouterr()
    return code, out, err


THREE_DAYS = ["--since", T0.isoformat(), "--until", (T0 + timedelta(days=3)).isoformat(), "--window", "1d"]
# PSI of x1 when every value lands in the second bin: shares (0, 1) against (0.5, 0.5), 0 floored at EPSILON
ALL_IN_ONE_BIN = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)


def report_data(html: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="maas-report-data">(.*?)</script>', html, re.S)
    assert m, "the report carries its numbers as JSON"
    return json.loads(m.group(1))


def test_report_renders_pngs_and_an_html_page_with_the_numbers_of_each_window(world, capsys, tmp_path: Path) -> None:
    """When `maas report tiny` covers the three days in 1-day windows with --png,
    then it writes four valid PNG charts (quality, volume, latency, drift) and one HTML page embedding them,
    whose numbers are per window and version: day 1 v1 volume 4, feedback 4, p50 2 / p99 4 ms, accuracy 3/4,
    macro F1 (2/3 + 4/5) / 2, x1 PSI 0; day 2 v1 volume 2, p50 10 / p99 20, no quality, x1 PSI of all rows
    in one bin; v2 volume 3, accuracy 1; day 3 nothing."""
    out = tmp_path / "tiny.html"
    code, stdout, err = report(world, capsys, "tiny", *THREE_DAYS, "--out", str(out), "--png")
    assert code == 0, err
    assert f"wrote {out} (3 windows of 1d, 9 captured predictions)" in stdout
    for chart in ("quality", "volume", "latency", "drift"):
        data = (tmp_path / f"tiny_{chart}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, chart  # a real picture, not an empty canvas
    html = out.read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == 4 and all(base64.b64decode(e).startswith(PNG) for e in embedded)
    assert "http://" not in html and "https://" not in html  # self-contained

    rows = {(r["window_start"][:10], r["version"]): r for r in report_data(html)["rows"]}
    assert sorted(rows) == [("2026-11-20", "1"), ("2026-11-21", "1"), ("2026-11-21", "2")]
    d1 = rows[("2026-11-20", "1")]
    assert (d1["predictions"], d1["feedback"], d1["p50_ms"], d1["p99_ms"]) == (4, 4, 2.0, 4.0)
    assert d1["accuracy"] == pytest.approx(3 / 4) and d1["f1_macro"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert d1["psi"]["x1"] == pytest.approx(0.0, abs=1e-12) and d1["psi"]["colour"] == pytest.approx(0.0, abs=1e-12)
    d2 = rows[("2026-11-21", "1")]
    assert (d2["predictions"], d2["feedback"], d2["p50_ms"], d2["p99_ms"], d2["accuracy"]) == (2, 0, 10.0, 20.0, None)
    assert d2["psi"]["x1"] == pytest.approx(ALL_IN_ONE_BIN)
    v2 = rows[("2026-11-21", "2")]
    assert (v2["predictions"], v2["feedback"], v2["accuracy"], v2["f1_macro"]) == (3, 3, 1.0, 1.0)
    # the table shows the same numbers
    cells = [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr>(<td>.*?)</tr>", html)]
    assert ["2026-11-20T00:00+00:00", "1", "4", "4", "2.0", "4.0", "0.7500", "0.7333"] == cells[0][:8]
    assert cells[1][:6] == ["2026-11-21T00:00+00:00", "1", "2", "0", "10.0", "20.0"]
    assert f"{ALL_IN_ONE_BIN:.4f}" in cells[1]


def test_json_output_and_default_html_name(world, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, err = report(world, capsys, "tiny", *THREE_DAYS, "--json", "--version", "2")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary == {"model": "tiny", "html": "report.html", "png": [], "windows": 3, "predictions": 3}
    assert {r["version"] for r in report_data((tmp_path / "report.html").read_text())["rows"]} == {"2"}


@pytest.mark.parametrize(("args", "message"), [
    (["ghost", *THREE_DAYS], "ghost"),  # unknown model
    (["tiny", "--version", "9", *THREE_DAYS], "9"),  # unknown version
    (["tiny", "--since", "2026-10-01T00:00Z", "--until", "2026-10-03T00:00Z"], "no captured predictions"),
    (["tiny", "--days", "2", "--window", "5x"], "invalid window '5x'"),
    (["tiny", "--days", "0"], "--days must be positive"),
    (["tiny", "--since", "yesterday"], "--since is not an ISO 8601 time"),
    (["tiny", "--days", "60"], "more than 30 days"),
])
def test_bad_arguments_and_no_data_fail_with_a_clear_message(world, capsys, tmp_path: Path, args, message) -> None:
    out = tmp_path / "r.html"
    code, stdout, err = report(world, capsys, *args, "--out", str(out))
    assert code != 0 and message in err and err.startswith("maas: "), err
    assert "Traceback" not in err and not out.exists()
