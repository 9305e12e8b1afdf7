"""Cost per million predictions, from handler durations measured in this run (the template's default
configuration: EMF metrics on, every prediction captured as log lines).

Measured (this machine, one core per process):
  warm    the predict handler in this process, median of `--calls` API Gateway events per size (1, 100, 1,000
          records) for the penguins model (tabular) and a tiny real ONNX text classifier (maas_local.testing)
  cold    fresh processes to the first answer of a 1-record request (benchmarks._child handler: interpreter
          start-up, `import app`, alias + bundle from the moto server, session, answer), median of
          `--cold-repeats`; with n records a cold request costs cold(1) + warm(n) - warm(1)
  memory  each process's peak RSS (VmHWM): the smallest MemorySize considered holds it with 25% headroom
  the TensorFlow way: the same network with keras.saving.load_model in a fresh process (cold, to the first
          model.predict) and model.predict of 1/100/1,000 rows in a warm one (JSON and preprocessing not
          counted, so its figures are a lower bound)

The model (stated in the output):
  CPU     Lambda gives CPU in proportion to MemorySize, one full vCPU at 1,769 MB. The handler is one thread
          (onnxruntime's pool does not help these small graphs), so at M MB a duration is the measured one
          x max(1, 1769 / M); above 1,769 MB it does not shrink. A vCPU is taken to be as fast as this machine's
          core, and arm64 (Graviton) as fast as x86_64: arm64 cannot be measured here.
  billing every invocation's duration rounded up to 1 ms; the INIT phase of on-demand environments is billed
          like the handler (since 2025-08-01); cold starts are `--cold-share` of requests (default 1%)
  SnapStart restores replace the cold init: a restore charge per GB, the snapshot cached all month, the first
          request still loads its model (the first-call part of the cold start)
  provisioned concurrency: enough environments for the traffic, spread evenly over a 30-day month, at
          `--per-month` predictions a month (default 10 million), each environment billed all month
  SageMaker Serverless Inference: the same warm compute at 1,024 MB or more (its smallest size that holds
          the process), per ms, plus data processed in and out; its cold starts are not billed
  API Gateway: REST API requests (the template's API)

Prices: PRICES below, us-east-1 list prices (first tier, no free tier), checked on PRICES_READ against stored
copies of AWS's pages, not the live ones; the comment beside each says where its figure was found:
  - aws.amazon.com/lambda/pricing/: its rate tables are filled in by the browser, so only its worked examples
    ("based on price in US East (N. Virginia)") carry figures; read in a text copy of the page (its 2026
    version, with the Managed Instances and MicroVMs sections) kept in a public GitHub repository. Its SnapStart
    section: "SnapStart pricing does not apply to supported Java managed runtimes"
  - docs.aws.amazon.com/whitepapers/latest/best-practices-api-gateway-private-apis-integration/cost-optimization.html
    for API Gateway REST (the copy read is the pt_br path, in English)
  - aws.amazon.com/blogs/aws/aws-lambda-functions-powered-by-aws-graviton2-processor-run-your-functions-on-arm-
    and-get-up-to-34-better-price-performance/: arm64 duration 20% below x86, provisioned concurrency's included
  - aws.amazon.com/blogs/compute/aws-lambda-standardizes-billing-for-init-phase/: INIT billed from 2025-08-01
    (read in copies of the post, a proxied one and AWS's Portuguese one)
No AWS page copy gave the arm64 provisioned-concurrency figures or any SageMaker Serverless figure: their
comments name the third-party sources.

    python -m benchmarks.cost [--calls 200] [--cold-repeats 5] [--per-month 10000000] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.cold_ab import cold_once
from benchmarks.common import (
    CHILD,
    RECORD,
    ROOT,
    PenguinsWorld,
    child_env,
    handler_stdout,
    load_predict_handler,
    machine,
    timed_handler_calls,
)
from benchmarks.preprocess_spec import make_records

PRICES_READ = "2026-12-02"  # the day the stored copies of the pages were checked (see the docstring)
PRICES = {  # USD, us-east-1
    # aws.amazon.com/lambda/pricing examples: $0.20 per 1 million requests, both architectures
    "lambda_request": 0.20 / 1e6,
    # aws.amazon.com/lambda/pricing examples: x86 $0.0000166667 per GB-s, arm64 $0.0000133334 (its Arm example).
    # First tier: x86 up to 6 billion GB-s a month, arm64 up to 7.5 billion (the tiered-pricing post,
    # aws.amazon.com/blogs/compute/introducing-tiered-pricing-for-aws-lambda/)
    "lambda_gb_s": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    # provisioned concurrency per GB-s configured, then its duration price. x86: aws.amazon.com/lambda/pricing
    # examples. arm64: not found on an AWS page (the page's tables are filled in by the browser); x86 less 20% as
    # the Graviton2 post has it, and the figures of third-party dumps of the AWS Price List API
    "pc_gb_s": {"x86_64": 0.0000041667, "arm64": 0.0000033334},
    "pc_duration_gb_s": {"x86_64": 0.0000097222, "arm64": 0.0000077778},
    # SnapStart for Python and .NET (Java pays nothing), aws.amazon.com/lambda/pricing example: cache $0.0000015046
    # per GB-s while a version is active (3 hours at least), restore $0.0001397998 per GB. One price, no arm64 one
    "snapstart_cache_gb_s": 0.0000015046,
    "snapstart_restore_gb": 0.0001397998,
    # REST API, first 333 million requests a month: $3.50 per million (the API Gateway whitepaper, see the docstring)
    "apigw_rest_request": 3.50 / 1e6,
    # SageMaker Serverless Inference at 1,024 MB, per second, taken as linear in memory: neither found in the stored
    # copies of aws.amazon.com/sagemaker/pricing; $0.0000200 per GB-second is what third-party cost notes give
    "sagemaker_serverless_gb_s": 0.0000200,
    # data processed in + out, per GB: not found on an AWS page for Serverless Inference; $0.016 is the real-time
    # endpoint's "Endpoint Data IN"/"OUT" on an EU (Ireland) bill, github.com/aws-samples/sagemaker-ssh-helper
    # (Sample_Costs.md)
    "sagemaker_data_gb": 0.016,
}
FULL_VCPU_MB = 1769
MEMORY_SIZES = (256, 512, 1024, 1769, 3008)
SAGEMAKER_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
MONTH_SECONDS = 30 * 24 * 3600
SIZES = (1, 100, 1000)
TEXTS = ["I love this product, it is great", "Bad quality and awful support", "The parcel arrived on Monday"]


@dataclass
class Workload:
    kind: str  # tabular | text | tensorflow
    records: int
    warm: float  # seconds per request, warm
    cold_extra: float  # seconds a cold request adds (billed INIT + the first call's extra work)
    first_call_extra: float  # what a SnapStart-restored environment still pays (the model load)
    peak_mb: float
    request_bytes: int
    response_bytes: int


def lambda_seconds(measured: float, memory_mb: int) -> float:
    return measured * max(1.0, FULL_VCPU_MB / memory_mb)


def billed_gb_s(measured: float, memory_mb: int) -> float:
    return math.ceil(lambda_seconds(measured, memory_mb) * 1000) / 1000 * memory_mb / 1024


def sizes_for(peak_mb: float, sizes: tuple[int, ...] = MEMORY_SIZES) -> list[int]:
    return [m for m in sizes if m >= peak_mb * 1.25] or [sizes[-1]]


def on_demand(w: Workload, memory_mb: int, arch: str, cold_share: float) -> float:
    """USD per million predictions, Lambda alone (requests + duration + billed INIT of the cold share)."""
    requests = 1e6 / w.records
    rate = PRICES["lambda_gb_s"][arch]
    warm = billed_gb_s(w.warm, memory_mb) * rate
    cold = billed_gb_s(w.cold_extra, memory_mb) * rate
    return requests * (PRICES["lambda_request"] + warm + cold_share * cold)


def snapstart(w: Workload, memory_mb: int, arch: str, cold_share: float, per_month: float) -> float:
    requests = 1e6 / w.records
    gb = memory_mb / 1024
    rate = PRICES["lambda_gb_s"][arch]
    restore = PRICES["snapstart_restore_gb"] * gb + billed_gb_s(w.first_call_extra, memory_mb) * rate
    cache = PRICES["snapstart_cache_gb_s"] * gb * MONTH_SECONDS / (per_month / 1e6)  # per million predictions
    return requests * (PRICES["lambda_request"] + billed_gb_s(w.warm, memory_mb) * rate + cold_share * restore) + cache


def provisioned(w: Workload, memory_mb: int, arch: str, per_month: float) -> tuple[float, int]:
    """USD per million predictions with enough provisioned environments for `per_month` spread evenly."""
    requests_per_s = per_month / w.records / MONTH_SECONDS
    environments = max(1, math.ceil(requests_per_s * lambda_seconds(w.warm, memory_mb)))
    gb = memory_mb / 1024
    fixed = environments * gb * MONTH_SECONDS * PRICES["pc_gb_s"][arch] / (per_month / 1e6)
    requests = 1e6 / w.records
    duration = billed_gb_s(w.warm, memory_mb) * PRICES["pc_duration_gb_s"][arch]
    return requests * (PRICES["lambda_request"] + duration) + fixed, environments


def sagemaker(w: Workload) -> tuple[float, int]:
    memory_mb = sizes_for(w.peak_mb, SAGEMAKER_SIZES)[0]
    requests = 1e6 / w.records
    compute = math.ceil(lambda_seconds(w.warm, memory_mb) * 1000) / 1000 * memory_mb / 1024
    data = (w.request_bytes + w.response_bytes) / 1024**3 * PRICES["sagemaker_data_gb"]
    return requests * (compute * PRICES["sagemaker_serverless_gb_s"] + data), memory_mb


def api_gateway(w: Workload) -> float:
    return 1e6 / w.records * PRICES["apigw_rest_request"]


# --- measuring --------------------------------------------------------------------------------------------


def events(kind: str, records: int) -> dict[str, Any]:
    from maas_local.testing.events import rest_event

    model = "penguins" if kind == "tabular" else "sentiment"
    rows: list[Any] = ([RECORD] if records == 1 else make_records(records, seed=1)) if kind == "tabular" else \
        [{"text": TEXTS[i % len(TEXTS)]} for i in range(records)]
    return rest_event("POST", f"/v1/models/{model}/predict", {"records": rows}, resource="/v1/models/{model}/predict",
                      path_params={"model": model})


def measure_handler(calls: int, cold_repeats: int) -> list[Workload]:
    app = load_predict_handler()
    out: list[Workload] = []
    with tempfile.TemporaryDirectory(prefix="maas-cost-") as tmp:
        colds: dict[str, dict[str, float]] = {}
        for kind in ("tabular", "text"):
            path = Path(tmp) / f"{kind}.json"
            path.write_text(json.dumps(events(kind, 1)))
            runs = [cold_once(ROOT, path, Path(tmp) / "result.json", {}) for _ in range(cold_repeats + 1)][1:]
            colds[kind] = {k: statistics.median(r[k] for r in runs) for k in ("total", "first_call", "peak_rss_mb")}
        for kind in ("tabular", "text"):
            warm: dict[int, float] = {}
            sizes: dict[int, tuple[int, int]] = {}
            for n in SIZES:
                event = events(kind, n)
                with handler_stdout():
                    timed_handler_calls(app, event, 5)  # warm-up: model loaded, caches filled
                    warm[n] = statistics.median(timed_handler_calls(app, event, max(5, calls * 10 // (n + 9))))
                    response = app.lambda_handler(event, _context())
                sizes[n] = (len(event["body"]), len(response["body"]))
            c = colds[kind]
            for n in SIZES:
                out.append(Workload(kind, n, warm[n], c["total"] - warm[1], c["first_call"] - warm[1],
                                    c["peak_rss_mb"], *sizes[n]))
    return out


def _context() -> Any:
    from maas_local.lambda_context import FakeLambdaContext

    return FakeLambdaContext()


def measure_tensorflow(world: PenguinsWorld, cold_repeats: int, calls: int) -> list[Workload]:
    import subprocess

    from benchmarks.warm_latency import KerasWorker

    with tempfile.TemporaryDirectory(prefix="maas-cost-tf-") as tmp:
        row = Path(tmp) / "row.json"
        world.write_row(RECORD, row)
        out = Path(tmp) / "result.json"
        colds = []
        for _ in range(cold_repeats):
            out.unlink(missing_ok=True)
            start = __import__("time").time()
            subprocess.run([sys.executable, str(CHILD), "keras", "--model", str(world.keras_path), "--row", str(row),
                            "--out", str(out)], env=child_env(), cwd=tmp, capture_output=True, check=True)
            result = json.loads(out.read_text())
            colds.append((result["end"] - start, result["peak_rss_mb"]))
        cold = statistics.median(c[0] for c in colds)
        workloads = []
        for n in SIZES:
            worker = KerasWorker(world, row, rows=n)
            try:
                timed = worker.time_calls(max(20, calls // 5))
            finally:
                worker.close()
            warm = statistics.median(timed["predict"])
            peak = max(max(c[1] for c in colds), timed["peak_rss_mb"])
            body = len(json.dumps({"records": [RECORD] * n}))
            workloads.append(Workload("tensorflow", n, warm, cold - warm, cold - warm, peak, body, 120 * n))
    return workloads


def publish_text_model() -> None:
    from maas_core.registry import Registry
    from maas_core.store import BundleStore
    from maas_local.testing.text_model import publish_text_model as publish

    publish(BundleStore(os.environ["MAAS_MODEL_BUCKET"]), Registry(os.environ["MAAS_REGISTRY_TABLE"]))


# --- the tables -------------------------------------------------------------------------------------------


def usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.3f}"


def tables(workloads: list[Workload], cold_share: float, per_month: float) -> str:
    lines = ["| workload | records/request | warm | cold (first answer) | peak RSS |", "|---|---|---|---|---|"]
    for w in workloads:
        lines.append(f"| {w.kind} | {w.records:,} | {w.warm * 1e3:.2f} ms | {(w.cold_extra + w.warm) * 1e3:.0f} ms | "
                     f"{w.peak_mb:.0f} MB |")
    lines += ["", "Lambda on demand, x86_64, USD per million predictions (requests + duration + billed INIT of "
              f"{cold_share:.0%} cold starts; API Gateway not included), by MemorySize:", ""]
    head = "| workload | records/request | " + " | ".join(f"{m} MB" for m in MEMORY_SIZES) + " | cheapest |"
    lines += [head, "|---|---|" + "---|" * (len(MEMORY_SIZES) + 1)]
    best: dict[tuple[str, int], int] = {}
    for w in workloads:
        fits = sizes_for(w.peak_mb)
        costs = {m: on_demand(w, m, "x86_64", cold_share) for m in fits}
        best[(w.kind, w.records)] = min(costs, key=lambda m: (costs[m], m))
        cells = [usd(costs[m]) if m in costs else "(too small)" for m in MEMORY_SIZES]
        lines.append(f"| {w.kind} | {w.records:,} | " + " | ".join(cells) + f" | {best[(w.kind, w.records)]} MB |")
    lines += ["", f"At the cheapest MemorySize, USD per million predictions ({per_month:,.0f} predictions a month "
              "for the fixed charges):", "",
              "| workload | records/request | memory | Lambda x86_64 | Lambda arm64 | + API Gateway REST "
              "| SnapStart (arm64) | provisioned (arm64) | SageMaker Serverless |",
              "|---|---|---|---|---|---|---|---|---|"]
    for w in workloads:
        m = best[(w.kind, w.records)]
        pc, environments = provisioned(w, m, "arm64", per_month)
        sm, sm_mb = sagemaker(w)
        api = api_gateway(w)
        lines.append(f"| {w.kind} | {w.records:,} | {m} MB | {usd(on_demand(w, m, 'x86_64', cold_share))} | "
                     f"{usd(on_demand(w, m, 'arm64', cold_share))} | "
                     f"{usd(on_demand(w, m, 'arm64', cold_share) + api)} | "
                     f"{usd(snapstart(w, m, 'arm64', cold_share, per_month))} | "
                     f"{usd(pc)} ({environments} env.) | {usd(sm)} ({sm_mb} MB) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="warm calls for a 1-record request (fewer for more)")
    parser.add_argument("--cold-repeats", type=int, default=5, help="fresh processes per cold start")
    parser.add_argument("--cold-share", type=float, default=0.01, help="share of requests that start cold")
    parser.add_argument("--per-month", type=float, default=1e7, help="predictions a month (fixed charges)")
    parser.add_argument("--model-dir", help="cache of the trained bundle: reused if it holds one, else trained into")
    parser.add_argument("--no-tensorflow", action="store_true", help="skip the TensorFlow way")
    args = parser.parse_args(argv)
    print(machine())
    with PenguinsWorld(args.model_dir) as world:
        publish_text_model()
        workloads = measure_handler(args.calls, args.cold_repeats)
        if not args.no_tensorflow:
            workloads += measure_tensorflow(world, max(3, args.cold_repeats // 2), args.calls)
    print(f"prices: us-east-1 list prices checked {PRICES_READ} against stored copies of AWS's pages (arm64 "
          "provisioned concurrency and SageMaker from third parties); CPU in proportion to MemorySize up to "
          f"{FULL_VCPU_MB} MB; arm64 durations assumed equal to the measured x86_64 ones\n")
    print(tables(workloads, args.cold_share, args.per_month))


if __name__ == "__main__":
    main()
