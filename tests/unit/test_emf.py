"""EMF documents written directly (maas_core.monitoring.emf) are what Powertools' provider would write."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from maas_core.monitoring.emf import NAMESPACE, document, emit, model_dimension_sets


def powertools_blob(metrics: dict, sets: list[dict], metadata: dict) -> dict:
    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service="")
    for name, (unit, values) in metrics.items():
        for v in values if isinstance(values, list) else [values]:
            provider.add_metric(name=name, unit=unit, value=float(v))
    for key, value in sets[0].items():
        provider.add_dimension(name=key, value=value)
    for extra in sets[1:]:
        provider.add_dimensions(**extra)
    for key, value in metadata.items():
        provider.add_metadata(key=key, value=value)
    return provider.serialize_metric_set()


def test_a_request_blob_matches_powertools_byte_for_byte_but_the_timestamp() -> None:
    """Given the predict request's metrics, dimension sets and metadata,
    then our document is the JSON Powertools' EMF provider makes of them (same keys, same order)."""
    metrics = {"RequestCount": ("Count", 1), "Latency": ("Milliseconds", 1.234), "Errors4xx": ("Count", 0),
               "Captured": ("Count", [3, 4])}
    sets = model_dimension_sets("penguins", "7")
    expected = powertools_blob(metrics, sets, {"status": 200})
    [ours] = document(metrics, sets, {"status": 200}, timestamp_ms=expected["_aws"]["Timestamp"])
    assert json.dumps(ours, separators=(",", ":")) == json.dumps(expected, separators=(",", ":"))


def test_more_than_100_values_make_further_documents_and_bad_input_is_refused(capsys) -> None:
    """Given 250 latencies and one count, then 3 documents carry 100 + 100 + 50 latencies and the count
    once; an unknown unit or no dimensions are refused, and emit reports that instead of raising."""
    docs = document({"Latency": ("Milliseconds", list(range(250))), "Rows": ("Count", 5)}, [{"service": "maas"}])
    assert [len(d["Latency"]) for d in docs] == [100, 100, 50]
    assert [d.get("Rows") for d in docs] == [[5.0], None, None]
    assert [[m["Name"] for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]] for d in docs] == [
        ["Latency", "Rows"], ["Latency"], ["Latency"]]
    for bad in ({"X": ("Furlongs", 1)}, {"X": ("Count", float("nan"))}):
        with pytest.raises(ValueError):
            document(bad, [{"service": "maas"}])
    with pytest.raises(ValueError):
        document({"X": ("Count", 1)}, [])
    capsys.readouterr()
    assert emit({"X": ("Furlongs", 1)}, [{"service": "maas"}]) is False
    assert '"_aws"' not in capsys.readouterr().out


@pytest.mark.parametrize(("env", "printed"), [({}, True), ({"POWERTOOLS_METRICS_DISABLED": "true"}, False),
                                              ({"POWERTOOLS_DEV": "true"}, False),
                                              ({"POWERTOOLS_DEV": "true", "POWERTOOLS_METRICS_DISABLED": "false"},
                                               True)])
def test_powertools_switches_turn_the_lines_off_as_they_do_its_own_metrics(
        env: dict, printed: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert emit({"RequestCount": ("Count", 1)}, model_dimension_sets("m", "1"))
    out = capsys.readouterr().out
    assert (json.loads(out)["RequestCount"] == [1.0]) if printed else out == ""


def test_cold_start_is_counted_once_per_process_on_lambda_in_the_first_write(monkeypatch, capsys) -> None:
    """Given a process on Lambda (AWS_LAMBDA_FUNCTION_NAME set) that has not written metrics yet,
    when it writes two blobs,
    then the first write starts with ColdStart = 1 under [function_name, service] (Powertools' layout of
    capture_cold_start_metric) and the second has none; off Lambda there is none at all."""
    from maas_core.monitoring import emf

    blob = document({"RequestCount": ("Count", 1)}, [{"service": "maas"}])
    monkeypatch.setitem(emf._cold_start, "pending", True)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    emf.write(blob)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "maas-PredictFunction-abc")
    emf.write(blob)
    emf.write(blob)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [("ColdStart" in d, "RequestCount" in d) for d in lines] == [(False, True), (True, False), (False, True),
                                                                         (False, True)]
    cold = lines[1]
    assert cold["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["function_name", "service"]]
    assert (cold["function_name"], cold["service"], cold["ColdStart"]) == ("maas-PredictFunction-abc", "maas", [1.0])
