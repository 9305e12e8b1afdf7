"""The pricing arithmetic of benchmarks.cost: CPU in proportion to memory, 1 ms rounding, fixed charges spread."""

from __future__ import annotations

import pytest

from benchmarks import cost


def workload(warm: float, records: int = 1, peak_mb: float = 110.0) -> cost.Workload:
    return cost.Workload("tabular", records, warm, cold_extra=0.7, first_call_extra=0.1, peak_mb=peak_mb,
                         request_bytes=200, response_bytes=300)


def test_below_a_full_vcpu_a_duration_stretches_and_rounding_favours_small_sizes() -> None:
    """Given a 0.72 ms warm request measured on one full core,
    when it is billed at 256 MB and at 1,769 MB,
    then at 256 MB it runs 6.9x longer (5 ms, 1.25 GB-ms) and at 1,769 MB it is rounded up to 1 ms (1.73 GB-ms),
    and above 1,769 MB it does not get faster."""
    assert cost.lambda_seconds(0.72e-3, 256) == pytest.approx(0.72e-3 * 1769 / 256)
    assert cost.billed_gb_s(0.72e-3, 256) == pytest.approx(0.005 * 0.25)
    assert cost.billed_gb_s(0.72e-3, 1769) == pytest.approx(0.001 * 1769 / 1024)
    assert cost.lambda_seconds(0.5, 3008) == 0.5


def test_sizes_that_hold_the_process_and_the_per_million_charges() -> None:
    """Given a process peaking at 110 MB and one at 600 MB,
    when the sizes are chosen and a million one-record predictions priced with no cold starts,
    then 256 MB holds the first (25% headroom) but only 1,024 MB and up the second, and the Lambda price is a
    million request charges plus a million billed durations; API Gateway is $3.50 for a million requests and a
    hundred records per request divide both by a hundred."""
    assert cost.sizes_for(110)[0] == 256 and cost.sizes_for(600)[0] == 1024
    w = workload(0.72e-3)
    expected = 1e6 * (0.20 / 1e6 + 0.005 * 0.25 * cost.PRICES["lambda_gb_s"]["x86_64"])
    assert cost.on_demand(w, 256, "x86_64", cold_share=0.0) == pytest.approx(expected)
    assert cost.on_demand(w, 256, "arm64", 0.0) < cost.on_demand(w, 256, "x86_64", 0.0)
    assert cost.api_gateway(w) == pytest.approx(3.50)
    assert cost.api_gateway(workload(0.72e-3, records=100)) == pytest.approx(0.035)


def test_provisioned_environments_follow_the_traffic() -> None:
    """Given 10 million one-record predictions a month, evenly spread (~3.9 requests a second),
    when each takes 0.1 s or 1 s at 1,769 MB,
    then one environment serves the first and four the second."""
    assert cost.provisioned(workload(0.1), 1769, "arm64", 1e7)[1] == 1
    assert cost.provisioned(workload(1.0), 1769, "arm64", 1e7)[1] == 4
