"""The playground (maas_local/playground/, served by the local gateway under /playground/) and its API reference,
used as a person uses them: in a real headless Chromium (Debian's, driven by Playwright; see
tests/e2e/test_browser_cors.py), against real onnxruntime models (maas_local/testing/tiny_model.py and
text_model.py) behind the local gateway with API keys on. Screenshots go to artifacts/playground-*.png for a
person to look at.

The page is tested twice over: same origin (the gateway serves it, no CORS involved) and hosted elsewhere (a
plain static server, as on S3 or any host), calling the API cross-origin with AllowedOrigins naming that host.
No batch function runs the jobs' uploads here: a test runs each step itself, so a job stays running while the
page is looked at."""

from __future__ import annotations

import functools
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from http.client import HTTPConnection
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from maas_core.batch.distributed import assemble_file, plan_file, run_shards
from maas_core.batch.paths import file_id
from maas_core.jobs import batch_file_finished
from maas_core.manifest import Manifest
from maas_core.predictor import Predictor
from maas_core.registry import Registry
from maas_core.settings import Settings
from maas_core.store import BundleStore
from maas_local.batch_trigger import load_batch_handler
from maas_local.gateway import Gateway
from maas_local.lambda_context import FakeLambdaContext
from maas_local.stack import LocalStack
from maas_local.static import CSP, PLAYGROUND_PREFIX, StaticSite
from maas_local.testing.text_model import publish_text_model
from tests.e2e.conftest import REPO, TEMPLATE
from tests.e2e.test_browser_cors import browser  # noqa: F401 - the module's Chromium, a fixture
from tests.e2e.test_jobs_http import csv_rows

pytestmark = pytest.mark.e2e

KEY = "playground-key"
ARTIFACTS = REPO / "artifacts"
PLAYGROUND_DIR = Path(str(files("maas_local") / "playground"))
DISTRIBUTED_OVER = 1000  # bytes: this stack's BatchDistributedThresholdBytes, so a file of a few kB is split


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static_host() -> Iterator[str]:
    """The playground folder on a plain static server (its files as uploaded anywhere: no config.json)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(PLAYGROUND_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def text_model(local_stack: LocalStack) -> Manifest:
    return publish_text_model(BundleStore(local_stack.names["ModelBucket"]),
                              Registry(local_stack.names["RegistryTable"]), name="sentiment")


@pytest.fixture(scope="module")
def api(local_stack: LocalStack, tiny_model: Manifest, text_model: Manifest, static_host: str) -> Iterator[str]:
    """The gateway as maas-demo runs it (keys on, the playground served), allowing the static host's origin."""
    gw = Gateway(TEMPLATE, local_stack.names, host="127.0.0.1", port=0, run_queue_consumers=False, api_keys=[KEY],
                 parameters={"AllowedOrigins": static_host, "BatchDistributedThresholdBytes": DISTRIBUTED_OVER},
                 static=StaticSite.playground(KEY))
    base = gw.start()
    try:
        yield base
    finally:
        gw.stop()


@pytest.fixture
def page(browser: Any, api: str) -> Iterator[Any]:  # noqa: F811 - browser is the imported fixture
    """A fresh browser context (empty localStorage) and page; the console's errors and every URL it requested.
    An exception thrown by the page's scripts fails the test."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.console_errors, page.requested, page.script_errors = [], [], []  # type: ignore[attr-defined]
    page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: page.requested.append(req.url))
    page.on("pageerror", lambda exc: page.script_errors.append(str(exc)))
    try:
        yield page
        assert page.script_errors == []  # whatever the API answered, the page's own code never threw
    finally:
        context.close()


def settle(page: Any) -> None:
    """Wait until the page's API calls are answered and drawn (common.js counts them on <html data-pending>)."""
    page.wait_for_function("() => document.body.dataset.ready === 'true' && "
                           "(document.documentElement.dataset.pending || '0') === '0'")


def open_playground(page: Any, url: str) -> None:
    page.goto(url)
    settle(page)


def type_in(page: Any, selector: str, value: str) -> None:
    """Type into a connection input and leave it, as a person does: its change event reloads the models."""
    page.fill(selector, value)
    page.locator(selector).blur()
    settle(page)


def choose(page: Any, model: str) -> None:
    page.select_option("#model", model)
    settle(page)


def click(page: Any, selector: str) -> None:
    page.click(selector)
    settle(page)


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"playground-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def bar_widths(page: Any, selector: str) -> dict[str, float]:
    return page.eval_on_selector_all(
        f"{selector} g.bar", "gs => Object.fromEntries(gs.map(g => [g.dataset.label ?? g.dataset.field, "
                             "Number(g.querySelector('rect.fill').getAttribute('width'))]))")


# --- the static files over HTTP ------------------------------------------------------------------------------------


def test_the_gateway_serves_the_playground_with_its_defaults_and_a_strict_csp(http: Any, api: str) -> None:
    # When a browser asks for /playground (no slash), the page, and config.json
    conn = HTTPConnection(urlsplit(api).netloc, timeout=10)  # urllib would follow the redirect
    conn.request("GET", "/playground")
    r = conn.getresponse()
    page = http("GET", api + PLAYGROUND_PREFIX)
    config = http("GET", api + PLAYGROUND_PREFIX + "config.json")
    # Then /playground redirects to the folder, the page is HTML that loads only its own files (CSP), and
    # config.json starts the page on this origin's API with the gateway's key (no API key is asked for any of it)
    assert r.status == 308 and r.getheader("Location") == PLAYGROUND_PREFIX
    conn.close()
    assert page.status == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP and "script-src 'self'" in CSP
    assert page.body == (PLAYGROUND_DIR / "index.html").read_bytes()
    assert config.json() == {"apiBase": "", "authKind": "x-api-key", "credential": KEY}
    for name, content_type in (("playground.js", "text/javascript"), ("style.css", "text/css"),
                               ("docs.html", "text/html")):
        assert http("GET", api + PLAYGROUND_PREFIX + name).headers["content-type"].startswith(content_type)
    # and nothing the page loads comes from elsewhere: every src/href in the HTML is a file of the folder
    for html in ("index.html", "docs.html"):
        refs = re.findall(r'(?:src|href)="(?!data:)([^"#]+)"', (PLAYGROUND_DIR / html).read_text())
        assert refs and all((PLAYGROUND_DIR / ref).is_file() for ref in refs), refs


@pytest.mark.parametrize("path", [
    "../template.yaml", "..%2ftemplate.yaml", "%2e%2e/%2e%2e/pyproject.toml", "%2e%2e%2fstatic.py",
    "/etc/passwd", "%2fetc%2fpasswd", "..\\static.py", "index.html%00.png", "nothing.js"])
def test_only_the_folders_files_are_served(http: Any, api: str, path: str) -> None:
    # When a path tries to leave the folder (dots, encoded slashes, absolute, NUL) or names no file
    r = http("GET", api + PLAYGROUND_PREFIX + path)
    # Then 404 in the API's error shape, naming the file asked for: files are looked up by name, never opened
    assert r.status == 404, (path, r.status, r.body[:200])
    assert r.json()["error"]["code"] == "not_found" and r.json()["error"]["request_id"]


def test_writing_to_the_playground_is_refused(http: Any, api: str) -> None:
    r = http("POST", api + PLAYGROUND_PREFIX + "index.html", body={"a": 1})
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert http("HEAD", api + PLAYGROUND_PREFIX).status == 200


def test_static_files_cannot_shadow_an_api_route(local_stack: LocalStack) -> None:
    # Given static files under /v1/models/; Then the gateway refuses to start, naming the clash
    with pytest.raises(ValueError, match="/v1/models/"):
        Gateway(TEMPLATE, local_stack.names, static=StaticSite({"a.html": b""}, prefix="/v1/models/"))


# --- the playground in Chromium ------------------------------------------------------------------------------------


def test_tabular_form_predicts_and_explains(page: Any, api: str, tiny_model: Manifest) -> None:
    # Given the playground on the gateway's origin (its defaults: this API, the gateway's key)
    open_playground(page, api + PLAYGROUND_PREFIX)
    assert page.input_value("#credential") == KEY
    assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == ["", "sentiment", "tiny"]
    # When the person picks the tiny model: a form from its input schema (required marks, a select of categories)
    choose(page, "tiny")
    fields = page.eval_on_selector_all("#record-form .field", "fs => fs.map(f => f.querySelector('label').textContent)")
    assert fields == ["x1 * number", "x2 number", "colour * string"]
    assert page.eval_on_selector_all("select[name=colour] option", "os => os.map(o => o.value)") == ["", "blue", "red"]
    # and fills it in and asks for a prediction
    page.fill("input[name=x1]", "3")
    page.select_option("select[name=colour]", "red")
    click(page, "#predict")
    # Then the label and one probability bar per class, sized by its probability, the predicted one highlighted
    assert page.text_content("#label") == "yes"
    answer = json.loads(page.text_content("#raw"))
    probabilities = answer["predictions"][0]["probabilities"]
    widths = bar_widths(page, "#chart")
    assert set(widths) == {"no", "yes"} and widths["yes"] == pytest.approx(360 * probabilities["yes"], abs=0.01)
    assert page.get_attribute("#chart g.top", "data-label") == "yes"
    assert page.is_hidden("#attributions") and page.is_hidden("#error")
    # When it asks again with an explanation; Then the attributions are drawn, x1 (the one that matters) first
    click(page, "#explain")
    assert page.is_visible("#attributions")
    attributions = json.loads(page.text_content("#raw"))["predictions"][0]["explanation"]["attributions"]
    assert list(bar_widths(page, "#attribution-chart")) == sorted(attributions, key=lambda k: -abs(attributions[k]))
    assert page.get_attribute("#attribution-chart g.bar", "data-field") == "x1"
    print(shot(page, "tabular"))
    # and nothing went wrong on the way, nor was anything fetched from another origin
    assert page.console_errors == []
    assert all(url.startswith(api) for url in page.requested), page.requested


def test_text_model_gets_a_text_box_and_a_prediction(page: Any, api: str, text_model: Manifest) -> None:
    open_playground(page, api + PLAYGROUND_PREFIX)
    # When the person picks the text model; Then one text box, not a form of fields
    choose(page, "sentiment")
    assert page.eval_on_selector_all("#record-form [name]", "xs => xs.map(x => x.tagName + ':' + x.name)") == \
        ["TEXTAREA:text"]
    page.fill("textarea[name=text]", "I love it, great product and good support")
    click(page, "#predict")
    assert page.text_content("#label") == "positive"
    assert set(bar_widths(page, "#chart")) == {"negative", "positive"}
    print(shot(page, "text"))
    # When it asks for an explanation anyway; Then the API's own 422, in its words, and the last answer is gone
    click(page, "#explain")
    assert page.is_hidden("#result")
    assert page.text_content("#error .error-head") == "HTTP 422 unprocessable"
    assert "explanations are not supported for text models" in page.text_content("#error .error-message")
    assert page.console_errors == [] or all("422" in e for e in page.console_errors), page.console_errors


def test_invalid_record_shows_the_apis_error_and_marks_the_fields(page: Any, api: str) -> None:
    open_playground(page, api + PLAYGROUND_PREFIX)
    choose(page, "tiny")
    # When x1 is not a number and the required colour is left out
    page.evaluate("document.querySelector('input[name=x1]').type = 'text'")  # what a number box cannot hold
    page.fill("input[name=x1]", "abc")
    click(page, "#predict")
    # Then the API's 422: status, code, message, each detail, the request id, and each reason by its field
    assert page.text_content("#error .error-head") == "HTTP 422 unprocessable"
    assert page.text_content("#error .error-message") == "1 of 1 records are invalid"
    assert page.eval_on_selector_all("#error .error-details li", "ls => ls.map(l => l.textContent)") == [
        'record 0 / x1: expected a number, got a string "abc"', "record 0 / colour: required field is missing"]
    assert re.fullmatch(r"request id [0-9a-f-]{36}", page.text_content("#error .request-id"))
    assert page.text_content("[data-error-for=colour]") == "required field is missing"
    print(shot(page, "error"))


def test_a_wrong_key_is_the_gateways_403_and_settings_are_remembered(page: Any, api: str) -> None:
    open_playground(page, api + PLAYGROUND_PREFIX)
    # When the person types another key (a change reloads the models)
    type_in(page, "#credential", "not-the-key")
    # Then API Gateway's own refusal, as the API words it
    assert page.text_content("#error .error-head") == "HTTP 403 INVALID_API_KEY"
    assert page.text_content("#error .error-message") == "Forbidden"
    # and the key is remembered in this browser: a reload starts with it
    open_playground(page, api + PLAYGROUND_PREFIX)
    assert page.input_value("#credential") == "not-the-key"
    assert page.is_visible("#error")


def test_cognito_mode_sends_the_token_as_authorization(page: Any, api: str) -> None:
    open_playground(page, api + PLAYGROUND_PREFIX)
    sent: list[dict[str, str]] = []
    page.on("request", lambda req: sent.append(req.headers) if "/v1/models" in req.url else None)
    # When the person chooses a Cognito ID token and pastes one
    page.select_option("#auth-kind", "cognito")
    type_in(page, "#credential", "eyJ.id.token")
    # Then the calls carry it as Authorization and no x-api-key (this gateway asks for a key: hence its 403)
    assert sent and sent[-1].get("authorization") == "eyJ.id.token" and "x-api-key" not in sent[-1]
    assert page.text_content("#error .error-head") == "HTTP 403 INVALID_API_KEY"


def test_playground_hosted_elsewhere_calls_the_api_across_origins(page: Any, api: str, static_host: str) -> None:
    # Given the folder on another host (no config.json there) and AllowedOrigins naming that host
    open_playground(page, static_host + "/index.html")
    assert page.input_value("#credential") == ""
    # When the person enters the API's URL and a key
    type_in(page, "#api-base", api)
    type_in(page, "#credential", KEY)
    choose(page, "tiny")
    page.fill("input[name=x1]", "-3")
    page.select_option("select[name=colour]", "blue")
    click(page, "#predict")
    # Then the cross-origin calls pass the browser's CORS check and the prediction shows
    assert page.text_content("#label") == "no"
    assert not any("CORS" in e for e in page.console_errors), page.console_errors


def test_unreachable_api_is_named_with_what_to_check(page: Any, static_host: str) -> None:
    open_playground(page, static_host + "/index.html")
    # When the API URL points at nothing (the fallback: the local gateway's usual port, with no gateway there)
    type_in(page, "#api-base", "http://127.0.0.1:9")
    # Then the page says it got no readable answer, and names the origin AllowedOrigins must allow
    assert page.text_content("#error .error-code") == "network_error"
    assert static_host in page.text_content("#error .error-message")


# --- a batch job while it runs -----------------------------------------------------------------------------------


def size_text(n: int) -> str:
    """How playground.js's byteSize writes n bytes: SI units, one decimal rounded as JavaScript's toFixed does
    (half up, on the double's exact value)."""
    value, unit = float(n), "B"
    for bigger in ("kB", "MB", "GB", "TB"):
        if float(Decimal(value).quantize(Decimal("0.1"), ROUND_HALF_UP)) < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{n} B" if unit == "B" else f"{Decimal(value).quantize(Decimal('0.1'), ROUND_HALF_UP)} {unit}"


def job_status_reads(page: Any, expected: str) -> None:
    """Wait until #job-status says `expected` (the page polls the job every second), else fail with what it says."""
    try:
        page.wait_for_function("text => document.querySelector('#job-status').textContent === text", arg=expected,
                               timeout=15_000)
    except Exception:  # playwright's timeout: the assertion below shows what the page says instead
        pass
    assert page.text_content("#job-status") == expected


def start_job(page: Any, local_stack: LocalStack, path: Path) -> tuple[str, dict[str, Any]]:
    """Run a file as a job from the page until it is uploaded (running); its id and its upload as the state
    machine's Plan step is given it (bucket, key, etag, file_id)."""
    page.set_input_files("#job-file", str(path))
    page.click("#run-job")
    page.wait_for_selector("#job-status[data-status=running]")
    found = re.match(r"job ([0-9a-f]{32}): ", page.text_content("#job-status") or "")
    assert found, page.text_content("#job-status")
    bucket, key = local_stack.names["ModelBucket"], f"batch/input/tiny/jobs/{found[1]}/input.csv"
    head = local_stack.client("s3").head_object(Bucket=bucket, Key=key)
    etag = head["ETag"].strip('"')
    return found[1], {"bucket": bucket, "key": key, "etag": etag,
                      "file_id": file_id(bucket, key, etag, head["LastModified"])}


def test_a_running_job_shows_its_path_stage_and_shards_at_each_poll(page: Any, api: str, local_stack: LocalStack,
                                                                    tiny_model: Manifest, tmp_path: Path) -> None:
    # Given the playground on the tiny model, and files on disk: one small, one over the distributed threshold
    open_playground(page, api + PLAYGROUND_PREFIX)
    choose(page, "tiny")
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_bytes(csv_rows(10))
    large.write_bytes(csv_rows(1500, bad={7}))
    size = len(large.read_bytes())
    assert len(small.read_bytes()) <= DISTRIBUTED_OVER < size
    # When the small file is run as a job and the batch function has not finished it
    job_id, file = start_job(page, local_stack, small)
    # Then the page says it runs in one function, predicting
    job_status_reads(page, f"job {job_id}: running · single function · predicting · {len(small.read_bytes())} B file")
    # and once the batch function has run it, the counts as before, the progress gone
    load_batch_handler()({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Post", "s3": {
        "bucket": {"name": file["bucket"]}, "object": {"key": file["key"]}}}]},
        FakeLambdaContext(remaining_ms=900_000))  # BatchFunction's timeout
    job_status_reads(page, f"job {job_id}: done - 10 rows: 10 predicted, 0 rejected, 0 blank (version 1)")
    settle(page)

    # When the large file is run as a job; Then distributed, planning, until its Plan step has cut it into shards
    job_id, file = start_job(page, local_stack, large)
    running = f"job {job_id}: running · distributed"
    job_status_reads(page, f"{running} · planning · {size_text(size)} file")
    predictor = Predictor.from_settings(Settings(batch_shard_bytes=2500, batch_chunk_rows=10))
    job = plan_file(file, predictor)["job"]
    shards = json.loads(local_stack.client("s3").get_object(
        Bucket=file["bucket"], Key=job["work"] + "shards.json")["Body"].read())
    n = len(shards)
    assert n > 3 and job["rows"] == 1500
    job_status_reads(page, f"{running} · predicting · 0 of {n} shards · 0 rows · 0 B of {size_text(size)} (0%)")
    # and as shards are done: how many of how many, their rows, their bytes of the file's
    first = run_shards(job, shards[:2], predictor)
    done_bytes = shards[1]["end"] - shards[0]["start"]
    job_status_reads(page, f"{running} · predicting · 2 of {n} shards · {sum(d['rows'] for d in first)} rows · "
                           f"{size_text(done_bytes)} of {size_text(size)} ({100 * done_bytes // size}%)")
    print(shot(page, "job-progress"))
    run_shards(job, shards[2:], predictor)
    job_status_reads(page, f"{running} · assembling · {n} of {n} shards · 1,500 rows · "
                           f"{size_text(size)} of {size_text(size)} (100%)")
    # When Assemble ends it; Then done with its counts and links, as before
    assemble_file(job, announce=batch_file_finished)
    job_status_reads(page, f"job {job_id}: done - 1500 rows: 1499 predicted, 1 rejected, 0 blank (version 1)")
    assert page.eval_on_selector_all("#job-outputs a", "as => as.map(a => a.dataset.output)") == \
        ["predictions", "errors"]
    assert page.is_hidden("#error") and page.console_errors == []


def test_progress_words_for_every_stage_and_size(page: Any, api: str) -> None:
    # Given the playground's own functions; When they word progress the jobs API can report
    open_playground(page, api + PLAYGROUND_PREFIX)
    words = page.evaluate("ps => ps.map(progressText)", [
        {"uploaded_bytes": 734003200, "path": "single", "stage": "predicting"},
        {"uploaded_bytes": 9_800_000, "path": "distributed", "stage": "planning"},
        {"uploaded_bytes": 9_800_000, "path": "distributed", "stage": "predicting", "shards_total": 20,
         "shards_done": 3, "rows_done": 41000, "bytes_done": 1_234_567},
        {"uploaded_bytes": 9_800_000, "path": "distributed", "stage": "assembling"},  # its work area just went
    ])
    # Then each says its path and stage, and the shards, rows and bytes once it has them (the share floored)
    assert words == ["single function · predicting · 734.0 MB file", "distributed · planning · 9.8 MB file",
                     "distributed · predicting · 3 of 20 shards · 41,000 rows · 1.2 MB of 9.8 MB (12%)",
                     "distributed · assembling · 9.8 MB file"]
    # and sizes in SI units with one decimal, a size that rounds to 1000 in the next unit (as size_text says them)
    sizes = [0, 999, 1000, 1150, 2250, 999_949, 999_950, 5 * 10**12, 2 * 10**15]
    assert page.evaluate("ns => ns.map(byteSize)", sizes) == \
        ["0 B", "999 B", "1.0 kB", "1.1 kB", "2.3 kB", "999.9 kB", "1.0 MB", "5.0 TB", "2000.0 TB"] == \
        [size_text(n) for n in sizes]


# --- the API reference -------------------------------------------------------------------------------------------


def test_api_reference_lists_every_route_with_its_parameters_and_schemas(page: Any, api: str, http: Any) -> None:
    # Given the document the API serves
    doc = http("GET", api + "/v1/openapi.json").json()
    # When the person opens the reference page
    open_playground(page, api + PLAYGROUND_PREFIX + "docs.html")
    # Then every operation is there, the predict route with its parameters, body and responses
    listed = page.eval_on_selector_all(".operation", "os => os.map(o => o.dataset.method + ' ' + o.dataset.path)")
    assert sorted(listed) == sorted(f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item)
    predict = page.locator('.operation[data-method=POST][data-path="/v1/models/{model}/predict"]')
    params = predict.locator("table.params tbody tr td:first-child code").all_text_contents()
    assert params == [p["name"] for p in doc["paths"]["/v1/models/{model}/predict"]["post"]["parameters"]]
    assert "explain" in params
    assert predict.locator("a[href='#schema-PredictRequest']").count() == 1
    assert set(predict.locator("dl.responses dt").all_text_contents()) >= {"200", "413", "422"}
    assert "x-api-key" in predict.locator(".security").text_content()
    # and each schema, its links working
    assert page.eval_on_selector_all(".schema-def h3", "hs => hs.map(h => h.textContent)") == \
        list(doc["components"]["schemas"])
    print(shot(page, "docs", full_page=False))  # the top: the whole document is many screens long
    predict.scroll_into_view_if_needed()
    print(shot(page, "docs-predict", full_page=False))
    predict.locator("a[href='#schema-PredictRequest']").click()
    assert page.evaluate("location.hash") == "#schema-PredictRequest"
    assert page.locator("#schema-PredictRequest").is_visible()
    assert page.console_errors == []
    assert all(url.startswith(api) for url in page.requested), page.requested


# --- the real demo models, as `make demo` serves them -----------------------------------------------------------


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    """`maas-demo` in a subprocess (both demo models really trained, few epochs); the playground URL it prints."""
    from tests.e2e.test_demo import DEMO, ROOT, demo_env

    proc = subprocess.Popen(DEMO + ["--moto-port", "0", "--port", "0", "--epochs", "3"], cwd=ROOT, env=demo_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not any("Ctrl-C to stop" in ln for ln in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        found = [m.group(1) for ln in lines if (m := re.match(r"playground: open (\S+) in a browser", ln))]
        assert found, "".join(lines)
        yield found[0]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.training
def test_demo_serves_the_playground_for_its_real_models(page: Any, demo_url: str) -> None:
    # Given `maas-demo` (penguins and support-tickets really trained); When a person opens the URL it prints
    open_playground(page, demo_url)
    assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == \
        ["", "penguins", "support-tickets"]
    # Then the penguins form starts filled with typical training values, so one click predicts and explains
    choose(page, "penguins")
    assert page.input_value("select[name=island]") in {"Biscoe", "Dream", "Torgersen"}
    assert float(page.input_value("input[name=flipper_length_mm]")) > 150
    click(page, "#explain")
    assert page.text_content("#label") in {"Adelie", "Chinstrap", "Gentoo"}
    assert set(bar_widths(page, "#attribution-chart")) == {
        "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"}
    print(shot(page, "demo-penguins"))
    # and the support-tickets text box classifies a ticket
    choose(page, "support-tickets")
    page.fill("textarea[name=text]", "I was charged twice for my subscription this month, please refund me")
    click(page, "#predict")
    assert page.text_content("#label") in {"account", "billing", "shipping", "technical"}
    print(shot(page, "demo-support-tickets"))
    assert page.console_errors == []
