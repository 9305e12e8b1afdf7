"""Fuzz every HTTP route through its real Lambda handler, in process, against one moto world.

Thousands of generated API Gateway proxy events (valid and invalid: model names, query strings,
headers, bodies) go to the function template.yaml routes them to. For every response: no exception
escapes the handler, the status is below 500, the body is JSON, and every non-2xx body has exactly the
documented shape {"error": {"code": str, "message": non-empty str, "details": list}}.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from maas_core import aws
from maas_core.edge.inference_protocol import V2_PATH
from maas_core.registry import Registry
from maas_core.settings import get_settings
from maas_core.store import BundleStore
from maas_local.testing.text_model import publish_text_model
from maas_local.testing.tiny_model import publish_tiny_model
from tests.conftest import create_registry_table
from tests.lambda_events import FakeLambdaContext, load_function, rest_event

pytestmark = pytest.mark.fuzz

BUCKET, TABLE, CAPTURES = "fuzz-models", "fuzz-registry", "fuzz-captures"
MAX_RECORDS = 20
SENT: Counter[str] = Counter()  # requests actually sent, per route group
STATUSES: Counter[tuple[str, int]] = Counter()  # (group, status) answered: shows the valid paths are reached too
GROUPS = ("read", "predict", "preprocess", "feedback", "metrics", "unrouted", "put_alias", "delete_version")
MIN_TOTAL = 5_000


def mostly(a: st.SearchStrategy[Any], b: st.SearchStrategy[Any], percent: int = 70) -> st.SearchStrategy[Any]:
    """`a` about `percent`% of the time, else `b` (st.one_of with repeated branches does not weight reliably)."""
    return st.integers(0, 99).flatmap(lambda i: a if i < percent else b)


def fuzz_settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])


# ---------------------------------------------------------------------------------------------------
# the world: one moto account for the whole module, every function loaded once (warm, as in Lambda)


@pytest.fixture(scope="module")
def fns() -> Iterator[dict[str, ModuleType]]:
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "MAAS_MODEL_BUCKET": BUCKET, "MAAS_REGISTRY_TABLE": TABLE,
           "MAAS_CAPTURES_TABLE": CAPTURES, "MAAS_MAX_RECORDS": str(MAX_RECORDS)}
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws.reset_clients()
        get_settings.cache_clear()
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        create_registry_table(TABLE)
        create_registry_table(CAPTURES)  # same key schema: pk, sk
        store, registry = BundleStore(BUCKET), Registry(TABLE)
        publish_tiny_model(store, registry)                      # tiny v1 <- prod
        publish_tiny_model(store, registry, alias="staging")     # tiny v2 <- staging
        publish_text_model(store, registry)                      # sentiment v1 <- prod
        publish_tiny_model(store, registry, name="scratch")      # scratch v1..v3: for the admin routes
        publish_tiny_model(store, registry, name="scratch", alias="staging")
        publish_tiny_model(store, registry, name="scratch", alias=None)
        yield {name: load_function(name) for name in ("predict", "preprocess", "admin", "metrics")}
        get_settings.cache_clear()
        aws.reset_clients()


# ---------------------------------------------------------------------------------------------------
# sending one request and checking its answer


def send(group: str, fn: ModuleType, method: str, path: str, *, resource: str, path_params: dict[str, str] | None,
         query: dict[str, str] | None, headers: dict[str, str], body: str | None) -> tuple[int, Any]:
    event = rest_event(method, path, resource=resource, path_params=path_params, query=query, raw_body=body)
    event["headers"] = dict(headers)  # exactly these: rest_event always adds a JSON Content-Type
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    request = f"{method} {path!r} query={query!r} headers={headers!r} body={(body or '')[:2000]!r}"
    SENT[group] += 1
    try:
        resp = fn.lambda_handler(event, FakeLambdaContext())
    except Exception as exc:
        raise AssertionError(f"exception escaped the handler: {exc!r}\nrequest: {request}") from exc
    status = resp["statusCode"]
    STATUSES[group, status] += 1
    assert status < 500, f"{status}: {resp.get('body')!r}\nrequest: {request}"
    try:
        payload = json.loads(resp["body"])
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"body is not JSON: {resp.get('body')!r}\nrequest: {request}") from exc
    if not 200 <= status < 300:
        assert isinstance(payload, dict) and set(payload) == {"error"}, f"{status}: {payload!r}\nrequest: {request}"
        err = payload["error"]
        if V2_PATH.match(path):  # the Open Inference Protocol's family (maas_core.edge.error_bodies)
            assert isinstance(err, str) and err.strip(), f"{payload!r}\nrequest: {request}"
            return status, payload
        assert isinstance(err, dict) and set(err) - {"details_total"} == {"code", "message", "details", "request_id"}, (
            f"{payload!r}\nrequest: {request}")
        assert isinstance(err["code"], str) and err["code"], f"{payload!r}\nrequest: {request}"
        assert isinstance(err["message"], str) and err["message"].strip(), f"{payload!r}\nrequest: {request}"
        assert isinstance(err["details"], list), f"{payload!r}\nrequest: {request}"
    return status, payload


# ---------------------------------------------------------------------------------------------------
# generators

ODD = "%/?#&=+ .\\'\"<>{}[]|^`~!@$*()\x00\t\n\u00e9\u4e2d\U0001f600"
odd_text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(ODD), max_size=40)

percent_encodings = st.sampled_from(["%2F", "%00", "%20", "%25", "tiny%2Fpredict", "%E2%82%AC", "%ZZ", "t%69ny",
                                     "..", ".", "%2e%2e", "tiny%00", "tiny;", "tiny?x=1", "tiny#frag"])


def model_names(*known: str) -> st.SearchStrategy[str]:
    return mostly(st.sampled_from(known), st.one_of(                 # published models (most requests)
        st.sampled_from(["nope", "Tiny", "tiny ", "TINY", "sentiment2", "a", "model-1", "m_2.3"]),  # unknown
        st.from_regex(r"[a-z][a-z0-9_-]{0,40}", fullmatch=True),       # plausible, unknown
        odd_text,                                                      # odd characters (incl. "/" and empty)
        percent_encodings,
        st.integers(1, 3000).map(lambda n: "m" * n),                   # very long
    ))


def segment_strings(*known: str) -> st.SearchStrategy[str]:
    """A version or alias, in a path or a query string."""
    return st.one_of(st.sampled_from(known), st.sampled_from(["", "0", "-1", "1.0", "01", "999999999999999999999",
                                                              "latest", "$LATEST", "null", "prod ", "PROD"]),
                     odd_text, st.integers(1, 2000).map(lambda n: "9" * n))


CONTENT_TYPES = [None, "application/json", "application/json; charset=utf-8", "Application/JSON",
                 "application/json;charset=latin-1", "application/vnd.api+json", "application/x-www-form-urlencoded",
                 "text/plain", "text/plain; charset=utf-8", "multipart/form-data; boundary=xyz", "", " ", ";",
                 "application/xml", "*/*", "application/json, text/plain"]


@st.composite
def header_sets(draw: st.DrawFn, json_weighted: bool = True) -> dict[str, str]:
    """Content types incl. missing, form, text/plain, json with charset; and other junk headers."""
    ct = draw(st.sampled_from(["application/json"] * 30 + CONTENT_TYPES) if json_weighted
              else st.sampled_from(CONTENT_TYPES) | odd_text)
    headers: dict[str, str] = {}
    if ct is not None:
        headers[draw(st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE"]))] = ct
    if draw(st.booleans()):
        headers["x-maas-routing-key"] = draw(odd_text)
    headers.update(draw(st.dictionaries(st.sampled_from(["Accept", "X-Forwarded-For", "User-Agent", "x-junk",
                                                         "Authorization", "Content-Encoding"]), odd_text, max_size=2)))
    return headers


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**400), 10**400),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
json_values = st.recursive(json_scalars,
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                           max_leaves=12)
nan_like = st.sampled_from(["NaN", "nan", "Infinity", "-Infinity", "inf", "1e999", "-1e999", "1e-999", "0x10", "1_000",
                            " 1.5 ", "", "null", "None", "true", "\u0661\u0662", "\u00bd", "1,5"])
huge = st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, 2**63, -(2**63) - 1, 10**30, 10**400,
                        float("nan"), float("inf"), float("-inf")])
field_values = st.one_of(st.floats(-1e6, 1e6), st.integers(-10**6, 10**6), huge, nan_like, json_values, st.text())


@st.composite
def tabular_records(draw: st.DrawFn) -> Any:
    """Records for tiny: valid, wrong types, missing fields, extra fields, nested junk, huge numbers."""
    kind = draw(st.sampled_from(["valid"] * 12 + ["mutated", "junk"]))
    if kind == "junk":
        return draw(json_values)
    rec: dict[str, Any] = {"x1": draw(st.floats(-50, 50)), "colour": draw(st.sampled_from(["blue", "red"]))}
    if draw(st.booleans()):
        rec["x2"] = draw(st.floats(-50, 50) | st.none())
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.sampled_from(["drop", "retype", "extra"]))
            key = draw(st.sampled_from(["x1", "x2", "colour"]))
            if op == "drop":
                rec.pop(key, None)
            elif op == "retype":
                rec[key] = draw(field_values)
            else:
                rec[draw(st.text(max_size=20))] = draw(field_values)
    return rec


@st.composite
def text_records(draw: st.DrawFn) -> Any:
    """Records for sentiment: bare strings, {"text": ...}, wrong types, extra fields, unicode, long text."""
    text = draw(st.text(max_size=200) | st.sampled_from(["I love this, great", "awful, I hate it", ""])
                | st.integers(1, 20_000).map(lambda n: "great " * n))
    if draw(st.integers(0, 9)) < 8:
        return draw(st.sampled_from([text, {"text": text}]))
    return draw(st.sampled_from([{"text": text, "extra": 1}, {"text": None}, {"txt": text},
                                 {"text": [text]}, {}])
                | st.builds(lambda v: {"text": v}, field_values) | json_values)


def record_lists(records: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(records, min_size=1, max_size=5),
        st.sampled_from([MAX_RECORDS - 1, MAX_RECORDS, MAX_RECORDS + 1, 5 * MAX_RECORDS]).flatmap(
            lambda n: st.lists(records, min_size=n, max_size=n)),               # at and over the limit
        st.just([]),
    )


def encode(value: Any) -> str:
    return json.dumps(value)  # NaN / Infinity as Python writes them: not strict JSON, a real client's mistake


def body_texts(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[str | None]:
    """A valid body (JSON of `valid`), or empty, non-JSON bytes, JSON of every top-level type, ..."""
    return mostly(valid.map(encode), st.one_of(
        st.sampled_from([None, "", " ", "{", "}", "[]", "{}", "null", "true", "0", "\"records\"", "NaN",
                         "{\"records\": }", "records=1&x=2", "\ufeff{}", "{\"records\": [{}]}garbage", "\x00",
                         "{'records': []}"]),
        json_values.map(encode),                                             # every top-level type
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),          # non-JSON bytes
        st.text(max_size=200),
        st.dictionaries(st.text(max_size=12), json_values, max_size=4).map(encode),
    ))


# ---------------------------------------------------------------------------------------------------
# one test per route group (the order matters a little: admin routes, which move aliases and delete
# versions, run last)

READ_ROUTES = [("/v1/health", None), ("/v1/openapi.json", None), ("/v1/models", None), ("/v1/models/{model}", "model")]


@fuzz_settings(700)
@given(route=st.sampled_from(READ_ROUTES + [("/v1/models/{model}", "model")] * 3),
       model=model_names("tiny", "sentiment"),
       query=st.none() | st.dictionaries(odd_text, odd_text, max_size=3), headers=header_sets(json_weighted=False),
       body=st.none() | body_texts(json_values))
def test_read_routes(fns, route, model, query, headers, body) -> None:
    resource, param = route
    path = resource.replace("{model}", model)
    send("read", fns["predict"], "GET", path, resource=resource, path_params={"model": model} if param else None,
         query=query or None, headers=headers, body=body)


predict_queries = st.fixed_dictionaries({}, optional={
    "version": segment_strings("1", "2"), "alias": segment_strings("prod", "staging", "nope"),
    "explain": st.sampled_from(["true", "false", "1", "0", "yes", "no", "on", "TRUE", "", "maybe", "2"]) | odd_text,
}).flatmap(lambda q: st.dictionaries(odd_text, odd_text, max_size=2).map(lambda junk: {**junk, **q}))


@st.composite
def predict_requests(draw: st.DrawFn) -> tuple[str, dict[str, str] | None, dict[str, str], str | None]:
    model = draw(model_names("tiny", "tiny", "sentiment", "sentiment", "scratch"))
    records = text_records() if model == "sentiment" else tabular_records()
    envelope = mostly(record_lists(records).map(lambda r: {"records": r}), st.one_of(
        record_lists(records).map(lambda r: {"records": r, "extra": 1}),
        record_lists(records),                                             # no envelope
        records.map(lambda r: {"records": r}),                             # not a list
        json_values.map(lambda r: {"records": r}),
    ))
    return model, draw(mostly(st.none(), predict_queries, 50)) or None, draw(header_sets()), draw(body_texts(envelope))


@fuzz_settings(1400)
@given(req=predict_requests())
def test_predict(fns, req) -> None:
    model, query, headers, body = req
    send("predict", fns["predict"], "POST", f"/v1/models/{model}/predict", resource="/v1/models/{model}/predict",
         path_params={"model": model}, query=query, headers=headers, body=body)


@fuzz_settings(700)
@given(req=predict_requests())
def test_preprocess(fns, req) -> None:
    model, query, headers, body = req
    query = {k: v for k, v in (query or {}).items() if k != "explain"} or None
    send("preprocess", fns["preprocess"], "POST", f"/v1/models/{model}/preprocess",
         resource="/v1/models/{model}/preprocess", path_params={"model": model}, query=query, headers=headers,
         body=body)


prediction_ids = st.one_of(st.just("0190f3c2a1b24c6d8e9fa0b1c2d3e4f5-0"),
                           st.from_regex(r"[0-9a-f]{32}-[0-9]{1,2}", fullmatch=True),
                           odd_text, st.integers(60, 200).map(lambda n: "p" * n), st.just(""))
feedback_items = st.one_of(
    st.fixed_dictionaries({"prediction_id": prediction_ids,
                           "label": st.sampled_from(["no", "yes", "positive", "negative"])}),
    st.fixed_dictionaries({"prediction_id": prediction_ids, "value": st.floats(-1e6, 1e6) | huge}),
    st.fixed_dictionaries({"prediction_id": prediction_ids},
                          optional={"label": field_values, "value": field_values, "extra": json_values}),
    json_values,
)
feedback_bodies = st.one_of(
    feedback_items,                                                         # the single form
    st.lists(feedback_items, max_size=6).map(lambda f: {"feedback": f}),
    st.sampled_from([999, 1000, 1001]).map(lambda n: {"feedback": [{"prediction_id": f"x-{i}", "label": "no"}
                                                                   for i in range(n)]}),
    st.builds(lambda f, extra: {"feedback": f, **extra}, st.lists(feedback_items, max_size=3),
              st.dictionaries(st.text(max_size=8), json_values, max_size=2)),
)


@fuzz_settings(700)
@given(model=model_names("tiny", "sentiment"), headers=header_sets(), body=body_texts(feedback_bodies),
       query=st.none() | st.dictionaries(odd_text, odd_text, max_size=2))
def test_feedback(fns, model, headers, body, query) -> None:
    send("feedback", fns["metrics"], "POST", f"/v1/models/{model}/feedback", resource="/v1/models/{model}/feedback",
         path_params={"model": model}, query=query or None, headers=headers, body=body)


windows = st.one_of(st.sampled_from(["1h", "24h", "7d", "30d", "31d", "720h", "721h", "43200m", "0h", "0d", "-1h", "1x",
                                     "h", "", " 1h ", "1H", "1.5h", "99999999999999999999d", "1e3m", "\u0661h"]),
                    st.from_regex(r"[0-9]{1,25}[mhd]", fullmatch=True), odd_text)
instants = st.one_of(st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
                     st.sampled_from(["2024-01-01", "2024-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
                                      "9999-12-31T23:59:59-14:00", "now", "", "Z", "2024-13-01", "1700000000"]),
                     odd_text)
metrics_queries = st.fixed_dictionaries({}, optional={"window": windows, "since": instants, "until": instants,
                                                      "version": segment_strings("1", "2")})


@fuzz_settings(700)
@given(model=model_names("tiny", "sentiment"), query=metrics_queries, headers=header_sets(json_weighted=False),
       body=st.none() | body_texts(json_values))
def test_metrics(fns, model, query, headers, body) -> None:
    send("metrics", fns["metrics"], "GET", f"/v1/models/{model}/metrics", resource="/v1/models/{model}/metrics",
         path_params={"model": model}, query=query or None, headers=headers, body=body)


FUNCTION_ROUTES = {
    "predict": ["/v1/health", "/v1/openapi.json", "/v1/models", "/v1/models/tiny", "/v1/models/tiny/predict",
                "/v2", "/v2/health/ready", "/v2/models/tiny", "/v2/models/tiny/infer",
                "/v2/models/tiny/versions/1/infer"],
    "preprocess": ["/v1/models/tiny/preprocess"],
    "admin": ["/v1/models/scratch/aliases/prod", "/v1/models/scratch/versions/99"],
    "metrics": ["/v1/models/tiny/feedback", "/v1/models/tiny/metrics"],
}


@fuzz_settings(300)
@given(fn=st.sampled_from(sorted(FUNCTION_ROUTES)), data=st.data(),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "TRACE"]),
       suffix=st.sampled_from(["", "/", "/x", "//", "?", "/../predict"]) | odd_text,
       body=st.none() | body_texts(json_values))
def test_wrong_method_or_path(fns, fn, data, method, suffix, body) -> None:
    """A method or path a function does not serve (API Gateway would not send it, but nothing may break)."""
    path = data.draw(st.sampled_from(FUNCTION_ROUTES[fn] + ["/", "", "/v2/models", "/v1/models/tiny/explain"])) + suffix
    send("unrouted", fns[fn], method, path, resource=path, path_params=None, query=None,
         headers={"Content-Type": "application/json"}, body=body)


alias_updates = st.one_of(
    st.fixed_dictionaries({"action": st.just("promote"), "version": segment_strings("1", "2", "3")},
                          optional={"expected_version": segment_strings("1", "2", "3")}),
    st.fixed_dictionaries({"action": st.just("canary"), "version": segment_strings("1", "2", "3"),
                           "weight": st.floats(0, 0.999) | huge | st.sampled_from([0, 1, -0.1, 0.5])},
                          optional={"expected_version": segment_strings("1", "2")}),
    st.fixed_dictionaries({"action": st.just("rollback")}, optional={"expected_version": segment_strings("1", "2")}),
    st.fixed_dictionaries({}, optional={"action": st.sampled_from(["promote", "canary", "rollback", "PROMOTE",
                                                                   "delete", ""])
                                        | field_values, "version": field_values, "weight": field_values,
                                        "expected_version": field_values, "extra": json_values}),
)


@fuzz_settings(500)
@given(model=model_names("scratch", "scratch", "tiny"), alias=segment_strings("prod", "staging", "canary"),
       headers=header_sets(), body=body_texts(alias_updates))
def test_put_alias(fns, model, alias, headers, body) -> None:
    send("put_alias", fns["admin"], "PUT", f"/v1/models/{model}/aliases/{alias}",
         resource="/v1/models/{model}/aliases/{alias}", path_params={"model": model, "alias": alias},
         query=None, headers=headers, body=body)


@fuzz_settings(300)
@given(model=model_names("scratch", "scratch", "sentiment"), version=segment_strings("1", "2", "3", "4"),
       headers=header_sets(json_weighted=False), body=st.none() | body_texts(json_values))
def test_delete_version(fns, model, version, headers, body) -> None:
    send("delete_version", fns["admin"], "DELETE", f"/v1/models/{model}/versions/{version}",
         resource="/v1/models/{model}/versions/{version}", path_params={"model": model, "version": version},
         query=None, headers=headers, body=body)


def test_total_requests_sent() -> None:
    """The fuzz run sent at least MIN_TOTAL requests, across every route group (when every group ran)."""
    print(f"fuzz requests sent: {sum(SENT.values())} {dict(SENT)}; statuses: {dict(sorted(STATUSES.items()))}")
    if set(SENT) != set(GROUPS):
        pytest.skip(f"only some route groups ran: {sorted(SENT)}")
    assert sum(SENT.values()) >= MIN_TOTAL, dict(SENT)
