"""The `maas` developer CLI against a moto account: listing, alias moves, delete, register, --stack."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from maas_cli.main import main
from maas_core import aws
from maas_core.manifest import Manifest, TensorInfo
from maas_core.preprocess import NumericFeature, PreprocessSpec
from tests.integration.test_registration import FEATURES, LABELS, linear_graph

SPEC = PreprocessSpec(features=[NumericFeature(name="x", scaler="none")])


class Cli:
    """Runs `maas --bucket B --table T ...` in-process; returns (exit code, stdout, stderr)."""

    def __init__(self, world, capsys: pytest.CaptureFixture[str]) -> None:
        self.world, self.capsys = world, capsys

    def __call__(self, *args: str, target: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        prefix = ["--bucket", self.world.bucket, "--table", self.world.table] if target else []
        code = main([*prefix, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> object:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


def publish_version(world, name: str = "iris", metrics: dict[str, float] | None = None) -> str:
    """Given a published, registered version of `name` (files in S3, summary in the registry)."""
    version = world.registry.next_version(name)
    manifest = Manifest(name=name, version=version, task="binary", labels=["no", "yes"],
                        input_schema=SPEC.input_schema(), metrics=metrics or {},
                        model_input=TensorInfo(name="features", dtype="float32", shape=[None, 1]),
                        model_output=TensorInfo(name="outputs", dtype="float32", shape=[None, 1]))
    files = {"model.onnx": b"onnx bytes", "preprocess.json": SPEC.to_json().encode(), "report.json": b"{}"}
    world.registry.register(world.store.publish(manifest, files))
    return version


def keys(world, prefix: str = "") -> list[str]:
    resp = world.store.s3.list_objects_v2(Bucket=world.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))


@pytest.fixture
def cli(aws_world, capsys) -> Cli:
    return Cli(aws_world, capsys)


@pytest.fixture
def iris(aws_world) -> None:
    """Given iris versions 1-3 (prod -> 2 after 1, staging -> 3) and penguins version 1."""
    for accuracy in (0.81, 0.92, 0.95):
        publish_version(aws_world, "iris", {"accuracy": accuracy, "f1_macro": accuracy - 0.01})
    publish_version(aws_world, "penguins")
    aws_world.registry.set_alias("iris", "prod", "1")
    aws_world.registry.set_alias("iris", "prod", "2")
    aws_world.registry.set_alias("iris", "staging", "3")


# --- reading ------------------------------------------------------------------------------------


def test_models_lists_latest_version_and_aliases(cli, iris) -> None:
    code, out, err = cli("models")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "LATEST", "VERSIONS", "ALIASES"]
    assert lines[1].split() == ["iris", "3", "3", "prod=2,", "staging=3"]
    assert lines[2].split() == ["penguins", "1", "1", "-"]
    listed = cli.json("models")
    assert listed[0] == {"name": "iris", "latest_version": "3", "versions": 3, "aliases": {"prod": "2", "staging": "3"}}


def test_versions_newest_first_with_created_time_metrics_and_aliases(cli, iris, aws_world) -> None:
    aws_world.registry.set_canary("iris", "prod", "3", 0.1)
    code, out, _ = cli("versions", "iris")
    assert code == 0
    versions_table, moves_table = out.split("\n\n")
    header, *rows = versions_table.splitlines()
    assert header.split()[:3] == ["VERSION", "CREATED", "(UTC)"]
    assert moves_table.splitlines()[0].split()[:3] == ["ALIAS", "MOVED", "(UTC)"]
    assert "canary 3 (10%)" in moves_table.splitlines()[-1]
    assert [r.split()[0] for r in rows] == ["3", "2", "1"]
    assert "accuracy=0.95 f1_macro=0.94" in rows[0] and rows[0].rstrip().endswith("prod (canary 10%), staging")
    assert rows[1].rstrip().endswith("prod") and rows[2].rstrip().endswith("-")
    assert rows[0].split()[1].count("-") == 2  # a date, then a time
    data = cli.json("versions", "iris")
    assert [(v["version"], v["aliases"]) for v in data["versions"]] == [
        ("3", ["prod (canary 10%)", "staging"]), ("2", ["prod"]), ("1", [])]
    assert data["versions"][0]["metrics"] == {"accuracy": 0.95, "f1_macro": 0.94}
    assert data["aliases"]["prod"]["canary_version"] == "3"


def test_show_prints_the_manifest_by_version_alias_or_latest(cli, iris) -> None:
    for args, version in ((["--version", "1"], "1"), (["--alias", "prod"], "2"), ([], "3")):
        code, out, _ = cli("show", "iris", *args)
        manifest = json.loads(out)
        assert code == 0 and (manifest["name"], manifest["version"]) == ("iris", version)
        assert set(manifest["files"]) == {"model.onnx", "preprocess.json", "report.json"}
    assert cli("show", "iris", "--version", "1", "--alias", "prod")[0] == 2  # one or the other


def test_unknown_models_versions_and_aliases_exit_1_with_the_message(cli, iris) -> None:
    assert cli("versions", "nope")[::2] == (1, "maas: model 'nope' was not found\n  - field: model, value: nope\n")
    code, out, err = cli("show", "iris", "--version", "9")
    assert (code, out) == (1, "") and err.startswith("maas: model 'iris' has no version '9'")
    assert cli("show", "iris", "--alias", "beta")[2].startswith("maas: model 'iris' has no alias 'beta'")
    assert "Traceback" not in err


# --- moving aliases ---------------------------------------------------------------------------------


def test_promote_canary_rollback_round_trip(cli, iris, aws_world) -> None:
    code, out, _ = cli("promote", "iris", "prod", "3", "--expect", "2")
    assert (code, out) == (0, "iris: alias 'prod' -> version 3 (rollback goes to version 2)\n")

    code, out, _ = cli("canary", "iris", "prod", "1", "--weight", "0.25")
    assert code == 0 and out.splitlines() == [
        "iris: alias 'prod' -> version 3, canary version 1 takes 25% (rollback goes to version 2)",
        "  watched by 3 alarm(s): maas-canary/iris/prod/1/error-rate, maas-canary/iris/prod/1/latency-p99, "
        "maas-canary/iris/prod/1/accuracy"]
    assert aws_world.registry.resolve_alias("iris", "prod").canary_weight == 0.25
    cloudwatch = boto3.client("cloudwatch")
    assert len(cloudwatch.describe_alarms(AlarmNamePrefix="maas-canary/iris/prod/")["MetricAlarms"]) == 3
    target = cli.json("canary", "iris", "prod", "1", "--weight", "0")
    assert (target["version"], target["canary_version"], target["canary_weight"]) == ("3", None, 0.0)
    assert cloudwatch.describe_alarms(AlarmNamePrefix="maas-canary/iris/prod/")["MetricAlarms"] == []

    code, out, _ = cli("rollback", "iris", "prod", "--expect", "3")
    assert (code, out) == (0, "iris: alias 'prod' -> version 2 (rollback goes to version 1)\n")
    assert cli.json("rollback", "iris", "prod")["version"] == "1"
    code, _, err = cli("rollback", "iris", "prod")
    assert code == 1 and "no earlier version to roll back to" in err
    assert aws_world.registry.resolve_alias("iris", "prod").version == "1"


def test_expect_mismatch_exits_1_with_the_conflict_and_changes_nothing(cli, iris, aws_world) -> None:
    for args in (["promote", "iris", "prod", "3", "--expect", "1"], ["canary", "iris", "prod", "3", "--weight", "0.1",
                                                                      "--expect", "1"],
                 ["rollback", "iris", "prod", "--expect", "1"]):
        code, out, err = cli(*args)
        assert (code, out) == (1, "")
        assert err.startswith("maas: alias 'prod' of model 'iris' points at version '2', not '1'; reload and retry")
    target = aws_world.registry.resolve_alias("iris", "prod")
    assert (target.version, target.canary_version, target.revision) == ("2", None, 2)


def test_promote_to_a_missing_version_exits_1_naming_it(cli, iris) -> None:
    code, _, err = cli("promote", "iris", "prod", "7")
    assert code == 1 and err.startswith("maas: model 'iris' has no version '7'")
    code, _, err = cli("canary", "iris", "prod", "3", "--weight", "1.5")
    assert code == 1 and "canary weight must be in [0, 1), got 1.5" in err
    assert cli("canary", "iris", "prod", "3", "--weight", "lots")[0] == 2
    assert cli("canary", "iris", "prod", "3")[0] == 2  # --weight is required


# --- delete -------------------------------------------------------------------------------------


def test_delete_refuses_an_aliased_version_and_deletes_an_unaliased_one_with_its_objects(cli, iris, aws_world) -> None:
    aws_world.registry.set_canary("iris", "staging", "1", 0.1)
    for version, alias in (("2", "prod"), ("1", "staging")):
        code, _, err = cli("delete", "iris", version, "--yes")
        assert code == 1 and err.startswith(f"maas: version '{version}' of model 'iris' is in use by alias(es) {alias}")
    assert len(keys(aws_world, "models/iris/1/")) == 4

    aws_world.registry.set_canary("iris", "staging", "1", 0)
    code, out, err = cli("delete", "iris", "1", "--yes")
    assert (code, err) == (0, "")
    assert out == "deleted iris version 1: registry entry and 4 object(s) under s3://test-models/models/iris/1/\n"
    assert keys(aws_world, "models/iris/1/") == []
    assert len(keys(aws_world, "models/iris/")) == 8  # versions 2 and 3 untouched
    assert [v["version"] for v in aws_world.registry.describe("iris")["versions"]] == ["3", "2"]
    code, _, err = cli("delete", "iris", "1", "--yes")
    assert code == 1 and err.startswith("maas: model 'iris' has no version '1'")


def test_delete_asks_on_a_terminal_and_needs_yes_elsewhere(cli, iris, aws_world, monkeypatch) -> None:
    code, _, err = cli("delete", "iris", "1")
    assert code == 2 and err == "maas: refusing to delete without confirmation: stdin is not a terminal, pass --yes\n"
    assert len(keys(aws_world, "models/iris/1/")) == 4
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert cli("delete", "iris", "1")[::2] == (1, "maas: not confirmed; nothing was deleted\n")
    assert len(keys(aws_world, "models/iris/1/")) == 4
    assert cli("delete", "iris", "1")[0] == 0
    assert keys(aws_world, "models/iris/1/") == []


def test_delete_in_a_versioned_bucket_removes_every_object_version(cli, iris, aws_world) -> None:
    s3 = aws_world.store.s3
    s3.put_bucket_versioning(Bucket=aws_world.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=aws_world.bucket, Key="models/iris/1/report.json", Body=b"{\"v\": 2}")
    s3.delete_object(Bucket=aws_world.bucket, Key="models/iris/1/model.onnx")  # a delete marker
    code, out, _ = cli("delete", "iris", "1", "--yes")
    assert code == 0 and "6 object(s)" in out  # 4 originals + 1 newer version + 1 delete marker
    assert s3.list_object_versions(Bucket=aws_world.bucket, Prefix="models/iris/1/").get("Versions", []) == []
    assert len(s3.list_object_versions(Bucket=aws_world.bucket, Prefix="models/iris/2/")["Versions"]) == 4


def test_delete_keeps_the_files_of_a_version_never_registered_unless_asked(cli, aws_world) -> None:
    # Given version 1's bundle uploaded but not registered (a publish in progress, or one that failed)
    from maas_local.testing.tiny_model import upload_tiny_model

    upload_tiny_model(aws_world.store, aws_world.registry, name="half")
    # When deleted without --unregistered, Then it is refused and the files stay
    code, _, err = cli("delete", "half", "1", "--yes")
    assert code == 1 and "never registered: it may be being published" in err
    assert len(keys(aws_world, "models/half/1/")) == 3
    # And with --unregistered the failed publish's files go
    code, out, err = cli("delete", "half", "1", "--yes", "--unregistered")
    assert code == 0, err
    assert out.startswith("deleted half version 1: 3 object(s)") and keys(aws_world, "models/half/1/") == []


def test_delete_finishes_an_interrupted_delete(cli, iris, aws_world) -> None:
    aws_world.registry.delete_version("iris", "1")  # the registry entry went, the objects stayed
    code, out, _ = cli("delete", "iris", "1", "--yes")
    assert code == 0 and out.startswith("deleted iris version 1: 4 object(s)")
    assert keys(aws_world, "models/iris/1/") == []


# --- register ---------------------------------------------------------------------------------------


@pytest.fixture
def model_files(tmp_path: Path) -> tuple[Path, Path]:
    onnx_file = tmp_path / "iris.onnx"
    onnx_file.write_bytes(linear_graph())
    declaration = tmp_path / "iris.json"
    declaration.write_text(json.dumps({
        "task": "multiclass", "labels": LABELS, "input_name": "input", "output_name": "scores",
        "features": [{"name": n} for n in FEATURES], "metrics": {"accuracy": 0.97}}))
    return onnx_file, declaration


def test_register_an_onnx_model_end_to_end_then_show_it(cli, aws_world, model_files) -> None:
    assert cli("models")[1] == "no models in registry table 'test-registry'\n"
    assert cli.json("models") == []
    onnx_file, declaration = model_files
    code, out, err = cli("register", "iris-ext", "--onnx", str(onnx_file), "--declaration", str(declaration),
                         "--promote", "prod")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "registered iris-ext version 1 (multiclass, 4 input fields) at s3://test-models/models/iris-ext/1/",
        "iris-ext: alias 'prod' -> version 1"]
    manifest = cli.json("show", "iris-ext", "--alias", "prod")
    assert (manifest["version"], manifest["labels"], manifest["frameworks"]["source"]) == ("1", LABELS, "external")
    assert [f["name"] for f in manifest["input_schema"]] == FEATURES
    assert manifest["model_output"] == {"name": "scores", "dtype": "float32", "shape": [None, 3]}
    assert cli.json("models")[0]["aliases"] == {"prod": "1"}


def test_register_reads_yaml_declarations_and_a_spec(cli, aws_world, model_files, tmp_path) -> None:
    onnx_file, _ = model_files
    declaration = tmp_path / "iris.yaml"
    declaration.write_text("task: multiclass\nlabels: [setosa, versicolor, virginica]\n")
    spec = tmp_path / "preprocess.json"
    spec.write_text(PreprocessSpec(features=[NumericFeature(name=n) for n in FEATURES]).to_json())
    manifest = cli.json("register", "iris-ext", "--onnx", str(onnx_file), "--declaration", str(declaration),
                        "--spec", str(spec))
    assert manifest["version"] == "1" and [f["name"] for f in manifest["input_schema"]] == FEATURES


BAD_DECLARATIONS = [
    ("{not json", "maas: declaration file '{path}' is not valid JSON: Expecting property name enclosed in double "
                  "quotes (line 1, column 2)"),
    ('["a list"]', "maas: declaration file '{path}' must hold an object"),
    ('{"labels": ["a", "b"]}', "maas: declaration file '{path}' is invalid: task: Field required"),
    ('{"task": "multiclass", "labels": ["a", "b", "c"], "features": [{"nme": "x"}]}',
     "maas: declaration file '{path}' is invalid: features.0.name: Field required; features.0.nme: Extra inputs"),
    ("task: [unclosed", "maas: declaration file '{path}' is not valid YAML: "),
]


def test_bad_declaration_files_exit_1_with_a_clear_message(cli, aws_world, model_files) -> None:
    onnx_file, declaration = model_files
    for content, message in BAD_DECLARATIONS:
        path = declaration.with_suffix(".yaml") if "YAML" in message else declaration
        path.write_text(content)
        code, out, err = cli("register", "iris-ext", "--onnx", str(onnx_file), "--declaration", str(path))
        assert (code, out) == (1, ""), content
        assert err.startswith(message.format(path=path)), err
    assert aws_world.registry.list_models() == [] and keys(aws_world) == []


def test_register_problems_with_files_and_graphs_exit_1(cli, aws_world, model_files, tmp_path) -> None:
    onnx_file, declaration = model_files
    code, _, err = cli("register", "m", "--onnx", str(tmp_path / "missing.onnx"), "--declaration", str(declaration))
    assert code == 1 and err.startswith(f"maas: cannot read ONNX model '{tmp_path / 'missing.onnx'}': No such file")
    onnx_file.write_bytes(b"garbage")
    code, _, err = cli("register", "m", "--onnx", str(onnx_file), "--declaration", str(declaration))
    assert code == 1 and err.startswith("maas: not a valid ONNX model: ")
    assert "Traceback" not in err and aws_world.registry.list_models() == []
    assert cli("register", "m", "--onnx", str(onnx_file))[0] == 2  # --declaration is required


# --- global options -----------------------------------------------------------------------------------


def test_options_may_follow_the_command_and_usage_errors_exit_2(cli, iris, aws_world) -> None:
    code, out, _ = cli("models", "--bucket", aws_world.bucket, "--table", aws_world.table, "--json", target=False)
    assert code == 0 and json.loads(out)[0]["name"] == "iris"
    assert cli("frobnicate")[0] == 2
    assert cli("models", "--bogus")[0] == 2
    assert cli("--help")[0] == 0


def test_table_and_bucket_default_to_the_environment(cli, iris, monkeypatch) -> None:
    # aws_world sets MAAS_MODEL_BUCKET / MAAS_REGISTRY_TABLE
    assert cli("versions", "iris", target=False)[0] == 0
    monkeypatch.setenv("MAAS_REGISTRY_TABLE", "no-such-table")
    code, _, err = cli("models", target=False)
    assert code == 1 and "table 'no-such-table'" in err


STACK_TEMPLATE = {
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "placeholder"}}},
    "Outputs": {"ModelBucketName": {"Value": "test-models"}, "RegistryTableName": {"Value": "test-registry"},
                "ApiUrl": {"Value": "https://example.invalid/v1"}},
}


def test_stack_resolves_the_bucket_and_table_from_cloudformation_outputs(cli, iris, monkeypatch) -> None:
    monkeypatch.setenv("MAAS_MODEL_BUCKET", "wrong-bucket")
    monkeypatch.setenv("MAAS_REGISTRY_TABLE", "wrong-table")
    aws.client("cloudformation").create_stack(StackName="maas-dev", TemplateBody=json.dumps(STACK_TEMPLATE))
    code, out, err = cli("--stack", "maas-dev", "models", "--json", target=False)
    assert (code, err) == (0, "")
    assert [m["name"] for m in json.loads(out)] == ["iris", "penguins"]
    assert json.loads(cli("show", "iris", "--stack", "maas-dev", target=False)[1])["version"] == "3"


def test_stack_problems_exit_1(cli, iris) -> None:
    code, _, err = cli("--stack", "nope", "models", target=False)
    assert code == 1 and err.startswith("maas: CloudFormation stack 'nope' was not found")
    template = {**STACK_TEMPLATE, "Outputs": {"ModelBucketName": {"Value": "test-models"}}}
    aws.client("cloudformation").create_stack(StackName="old", TemplateBody=json.dumps(template))
    code, _, err = cli("--stack", "old", "models", target=False)
    assert code == 1 and err.startswith("maas: CloudFormation stack 'old' has no output RegistryTableName")


def test_train_passes_its_arguments_to_maas_train(cli, monkeypatch) -> None:
    code, out, _ = cli("train", "--help")
    assert code == 0 and out.startswith("usage: maas-train")  # maas-train's own help
    seen: list[list[str]] = []
    monkeypatch.setattr("maas_training.cli.main", lambda argv: seen.append(argv) or 0)
    assert cli("train", "--data", "x.csv", "--model-name", "m", "--target", "y", "--table", "mine")[0] == 0
    assert seen == [["--data", "x.csv", "--model-name", "m", "--target", "y", "--table", "mine",
                     "--bucket", "test-models"]]
