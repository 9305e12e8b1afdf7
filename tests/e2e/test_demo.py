"""`maas-demo` as a user runs it: a subprocess that trains, serves, predicts and stops cleanly."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "maas_local.demo"]


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAAS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def parse_curls(output: str) -> list[tuple[str, dict, dict[str, str]]]:
    """Each printed curl command must be one line that a shell can run as is: (url, payload, headers)."""
    commands = []
    for line in (ln.strip() for ln in output.splitlines() if ln.strip().startswith("curl ")):
        argv = shlex.split(line)
        assert argv[:4] == ["curl", "-s", "-X", "POST"]
        headers = dict(argv[i + 1].split(": ", 1) for i, arg in enumerate(argv) if arg == "-H")
        assert headers == {"Content-Type": "application/json", "x-api-key": "maas-local-key"}, line
        commands.append((argv[4], json.loads(argv[argv.index("-d") + 1]), headers))
    return commands


def answers(output: str) -> list[dict]:
    """The JSON answer printed after each '-> 200' (one JSON document; handler log lines may follow it)."""
    decoder = json.JSONDecoder()
    return [decoder.raw_decode(part.lstrip())[0] for part in output.split("-> 200")[1:]]


@pytest.mark.e2e
@pytest.mark.training
def test_demo_no_serve_predicts_and_prints_how_to_repeat_it() -> None:
    proc = subprocess.run(DEMO + ["--no-serve", "--moto-port", "0", "--port", "0", "--epochs", "3"],
                          cwd=ROOT, env=demo_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    (url, payload, _), (text_url, text_payload, _) = parse_curls(out)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/models/penguins/predict", url)
    assert payload["records"][0]["island"] == "Biscoe"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/models/support-tickets/predict", text_url)
    assert isinstance(text_payload["records"][0], str)  # raw text, as a web app would send it
    answer, text_answer = answers(out)
    assert answer["model"] == "penguins" and answer["alias"] == "prod" and answer["version"] == "1"
    assert answer["predictions"][0]["label"] in {"Adelie", "Chinstrap", "Gentoo"}
    assert (text_answer["model"], text_answer["alias"], text_answer["version"]) == ("support-tickets", "prod", "1")
    assert text_answer["predictions"][0]["label"] in {"account", "billing", "shipping", "technical"}
    assert re.search(r"^\s*export AWS_ENDPOINT_URL=http://127\.0\.0\.1:\d+ ", out, re.M)
    assert out.rstrip().endswith("stopped")


@pytest.mark.e2e
@pytest.mark.training
def test_demo_serves_until_ctrl_c() -> None:
    # started with SIGINT ignored, as a script's `cmd &` or a CI runner starts it: Ctrl-C must still stop it
    proc = subprocess.Popen(DEMO + ["--moto-port", "0", "--port", "0", "--epochs", "3"], cwd=ROOT, env=demo_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 600
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        out = "".join(lines)
        assert "Ctrl-C to stop" in out, out
        commands = parse_curls(out)  # the printed commands work while the demo serves
        assert len(commands) == 2
        for (url, payload, headers), model in zip(commands, ["penguins", "support-tickets"], strict=True):
            req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers=headers)
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 200 and json.loads(resp.read())["model"] == model
            # as on AWS, the API key is what lets it through
            req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req, timeout=30)
            with refused.value as err:
                assert err.code == 403 and json.loads(err.read())["error"]["code"] == "INVALID_API_KEY"
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + rest
    assert rest.rstrip().endswith("stopped")


@pytest.mark.e2e
@pytest.mark.parametrize("flag", ["--port", "--moto-port"])
def test_demo_says_clearly_when_a_port_is_busy(flag: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        other = ["--moto-port", "0"] if flag == "--port" else ["--port", "0"]
        proc = subprocess.run(DEMO + [flag, str(port), *other], cwd=ROOT, env=demo_env(),
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in proc.stderr and flag in proc.stderr
