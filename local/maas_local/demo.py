"""`maas-demo`: the whole loop on one laptop, no Docker, no AWS account.

    moto server (S3 + DynamoDB) on 127.0.0.1:4566
    -> train two models (TensorFlow/Keras -> ONNX), publish each, alias prod -> it:
       penguins (an MLP on measurements) and support-tickets (Embedding -> LSTM on raw text)
    -> serve template.yaml's API on http://127.0.0.1:8080 (handlers in-process), and the playground page
       (a form per model, predictions, explanations) and API reference on http://127.0.0.1:8080/playground/
    -> POST one record to each, print the answers, the curl commands to repeat them and how to inspect moto
    -> keep serving until Ctrl-C (or exit right away with --no-serve)

`--parameter NAME=VALUE` overrides a template parameter, as with maas-gateway (e.g. AllowedOrigins=ORIGIN: the
CORS preflight and headers a web app on that origin needs).

Dev-only code: never shipped to Lambda.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from maas_core.aws_target import FAKE_CREDENTIALS, LOCAL_ENDPOINT
from maas_local.batch_trigger import BatchTrigger
from maas_local.gateway import LOCAL_API_KEY, cors_note, key_values
from maas_local.stack import LocalStack, PortInUseError, check_port_free
from maas_local.static import PLAYGROUND_PREFIX, StaticSite
from maas_local.template import LOCAL_REGION
from maas_local.train_trigger import TrainTrigger, penguins_training_config

MODEL = "penguins"
TEXT_MODEL = "support-tickets"
ALIAS = "prod"
# one raw record, as a web app would send it (species is what the model predicts)
SAMPLE_RECORD = {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215,
                 "body_mass_g": 5000, "sex": "female"}
# a text model takes the raw text itself (or {"text": ...}); the label is what the model predicts
SAMPLE_TEXT = "Hi, I was charged twice for my subscription this month. Can you refund one of the payments?"


def shell_quote(text: str) -> str:
    """Single-quote for POSIX shells, whatever `text` holds."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def curl_command(url: str, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, separators=(", ", ": "))
    return (f"curl -s -X POST {shell_quote(url)} -H 'Content-Type: application/json' "
            f"-H {shell_quote('x-api-key: ' + LOCAL_API_KEY)} -d {shell_quote(body)}")


def export_line(endpoint_url: str) -> str:
    creds = " ".join(f"{k}={v}" for k, v in FAKE_CREDENTIALS.items() if k != "AWS_SESSION_TOKEN")
    return f"export AWS_ENDPOINT_URL={endpoint_url} AWS_DEFAULT_REGION={LOCAL_REGION} {creds}"


def post_json(url: str, payload: dict[str, Any], timeout: float = 60) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "x-api-key": LOCAL_API_KEY})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")


def gateway_parameters(parameter_args: list[str], verbose: bool) -> dict[str, str]:
    """The template parameters the demo's gateway runs with: the functions' logs at WARNING unless --verbose,
    then the --parameter NAME=VALUE overrides (e.g. AllowedOrigins=http://localhost:3000 for a web app)."""
    return {**({} if verbose else {"LogLevel": "WARNING"}), **key_values(parameter_args, "--parameter")}


def playground_note(base_url: str) -> str:
    url = base_url + PLAYGROUND_PREFIX
    return (f"playground: open {url} in a browser (a form per model, predictions, explanations; the API "
            f"reference at {url}docs.html)")


def _port_busy(what: str, host: str, port: int, flag: str) -> int:
    print(f"maas-demo: {what} port {host}:{port} is already in use (another maas-demo or maas-gateway?). "
          f"Stop it, or pick another port with {flag}.", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maas-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="gateway port on 127.0.0.1 (default 8080)")
    parser.add_argument("--moto-port", type=int, default=4566, help="moto server port on 127.0.0.1 (default 4566)")
    parser.add_argument("--template", default=None, help="SAM template (default: ./template.yaml or the repo's)")
    parser.add_argument("--epochs", type=int, default=None, help="override the training epochs (faster, worse)")
    parser.add_argument("--no-serve", action="store_true", help="exit after the first prediction")
    parser.add_argument("--verbose", action="store_true",
                        help="show the functions' INFO logs and EMF metric lines, and every moto request")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="template parameter override for the gateway, e.g. AllowedOrigins=http://localhost:3000 "
                             "so a web app on that origin can call the API (repeatable)")
    parser.add_argument("--large-files", type=int, default=None, metavar="BYTES",
                        help="batch files larger than BYTES run as the deployed large files do (shards on the "
                             "Distributed Map, here maas_local.distributed_map in-process); default: all in one run")
    args = parser.parse_args(argv)
    parameters = gateway_parameters(args.parameter, args.verbose)  # a malformed one fails before anything starts
    host = "127.0.0.1"

    from maas_local.gateway import configure_cli_logging

    configure_cli_logging("INFO")

    # fail before spending time on training if either port is taken
    try:
        check_port_free(host, args.moto_port)
    except PortInUseError:
        return _port_busy("moto", host, args.moto_port, "--moto-port")
    try:
        check_port_free(host, args.port)
    except PortInUseError:
        return _port_busy("gateway", host, args.port, "--port")

    # imported here: TensorFlow takes seconds to import, and only the demo needs it
    from maas_core.errors import NotFoundError
    from maas_core.registry import Registry
    from maas_local.gateway import Gateway, stop_signals_as_keyboard_interrupt
    from maas_training.datasets import penguins_config, support_tickets_config
    from maas_training.job import run

    template = Path(args.template) if args.template else None
    try:
        with stop_signals_as_keyboard_interrupt(), LocalStack(template, port=args.moto_port, host=host,
                                                              verbose=args.verbose) as stack:
            print(f"moto server (S3, DynamoDB) on {stack.endpoint_url}: bucket {stack.names['ModelBucket']}, "
                  f"table {stack.names['RegistryTable']}", flush=True)

            overrides: dict[str, Any] = {"bucket": stack.names["ModelBucket"], "table": stack.names["RegistryTable"],
                                         "promote": ALIAS}
            if args.epochs is not None:
                overrides["epochs"] = args.epochs
            registry = Registry(overrides["table"])
            for name, make_config in ((MODEL, penguins_config), (TEXT_MODEL, support_tickets_config)):
                config = make_config(model_name=name, **overrides)
                manifest = run(config, registry=registry,
                               progress=lambda msg, name=name: print(f"[train {name}] {msg}", flush=True))
                try:
                    target = registry.resolve_alias(name, ALIAS).version
                except NotFoundError:
                    target = None
                if target != manifest.version:
                    registry.set_alias(name, ALIAS, manifest.version)
                print(f"published {name} version {manifest.version}; alias {ALIAS} -> {manifest.version}", flush=True)

            # the routes ask what the deployed API asks (template Auth): predict etc. need an x-api-key
            if not args.verbose:  # the functions' own log and EMF lines would bury the answers the demo prints
                os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
            gateway = Gateway(stack.template_path, stack.names, host=host, port=args.port, api_keys=[LOCAL_API_KEY],
                              parameters=parameters, static=StaticSite.playground(LOCAL_API_KEY))
            try:
                base_url = gateway.start()
            except OSError as exc:
                if isinstance(exc, PortInUseError) or exc.errno == errno.EADDRINUSE:
                    return _port_busy("gateway", host, args.port, "--port")
                raise
            try:
                return _predict_and_serve(gateway, base_url, stack, args.no_serve, args.large_files)
            finally:
                gateway.stop()
    except KeyboardInterrupt:  # Ctrl-C before serving (e.g. during training)
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        print("stopped", flush=True)


def _large_files(threshold: int | None) -> Any:
    """The local stand-in of BatchStateMachine, named in the batch function's settings (None: not asked for)."""
    if threshold is None:
        return contextlib.nullcontext()
    from maas_core.settings import get_settings
    from maas_local.distributed_map import LocalExecutions

    executions = LocalExecutions()
    os.environ.update({"MAAS_BATCH_STATE_MACHINE_ARN": executions.create(),
                       "MAAS_BATCH_DISTRIBUTED_THRESHOLD_BYTES": str(threshold),
                       "MAAS_BATCH_SHARD_BYTES": str(max(1, threshold // 4))})
    get_settings.cache_clear()
    print(f"large batch files: above {threshold:,} bytes a file is planned into shards of about {threshold // 4:,} "
          "bytes, predicted and assembled by the local Distributed Map stand-in", flush=True)
    return executions


def _predict_and_serve(gateway: Any, base_url: str, stack: LocalStack, no_serve: bool,
                       large_files: int | None = None) -> int:
    commands = []
    for model, record in ((MODEL, SAMPLE_RECORD), (TEXT_MODEL, SAMPLE_TEXT)):
        url = f"{base_url}/v1/models/{model}/predict"
        payload = {"records": [record]}
        status, answer = post_json(url, payload)
        print(f"\nPOST {url}\n{json.dumps(payload, ensure_ascii=False)}\n-> {status}", flush=True)
        print(json.dumps(answer, indent=2) if not isinstance(answer, str) else answer, flush=True)
        if status != 200:
            print(f"maas-demo: the {model} prediction failed (see above)", file=sys.stderr)
            return 1
        commands.append(curl_command(url, payload))

    print("\nrepeat them:", flush=True)
    for command in commands:
        print(f"  {command}")
    print(f"(like the deployed API, these routes need an x-api-key: locally {LOCAL_API_KEY}; on AWS a key of the "
          "stack's usage plan. GET /v1/health needs none.)")
    print(cors_note(gateway.routes))
    print("inspect the local S3/DynamoDB with the aws CLI or boto3:")
    print(f"  {export_line(stack.endpoint_url)}")
    print(f"  aws s3 ls s3://{stack.names['ModelBucket']}/models/ --recursive")
    print(f"  aws dynamodb scan --table-name {stack.names['RegistryTable']}", flush=True)
    if no_serve:
        return 0

    bucket = stack.names["ModelBucket"]
    # S3 upload -> predictions file, as the deployed S3 trigger does (moto S3 notification -> SQS -> handler);
    # S3 upload under datasets/ -> a new model version, trained in-process (no Batch locally)
    stack.client("s3").put_object(Bucket=bucket, Key=f"datasets/{MODEL}/training.json",
                                  Body=json.dumps(penguins_training_config(), indent=2).encode())
    with BatchTrigger(bucket), TrainTrigger(bucket), _large_files(large_files):
        print("batch predictions: drop a CSV or JSONL file under batch/input/<model>/, e.g.", flush=True)
        print(f"  aws s3 cp training/maas_training/datasets/penguins.csv s3://{bucket}/batch/input/{MODEL}/penguins.csv")
        print(f"  aws s3 ls s3://{bucket}/batch/output/{MODEL}/   # penguins.csv.predictions.jsonl + .errors.jsonl")
        print(f"training: drop a dataset under datasets/<model>/ (s3://{bucket}/datasets/{MODEL}/training.json is "
              "already there) and a new version is trained and promoted, e.g.", flush=True)
        print(f"  aws s3 cp training/maas_training/datasets/penguins.csv s3://{bucket}/datasets/{MODEL}/penguins.csv")
        print(f"  aws dynamodb scan --table-name {stack.names['RegistryTable']}   "
              f"# a new version; or: maas versions {MODEL}")
        local = "--local" if stack.endpoint_url == LOCAL_ENDPOINT else f"--local {stack.endpoint_url}"
        print(f"or train from another terminal (--local: publish to this stack):\n  .venv/bin/maas-train {local} "
              f"--data training/maas_training/datasets/penguins.csv --model-name {MODEL} --target species "
              "--exclude year --optional sex --promote prod", flush=True)
        if os.environ.get("POWERTOOLS_METRICS_DISABLED") == "true":
            print("(the functions' INFO logs and EMF metric lines are hidden: maas-demo --verbose shows them)")
        print(playground_note(base_url), flush=True)
        print(f"\nserving {base_url} (Ctrl-C to stop)", flush=True)
        try:
            gateway.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
