"""training/Dockerfile and .dockerignore, read (Docker is not available here to build them).

The image is what AWS Batch runs (template.yaml, TrainingJobDefinition): python 3.12, the project installed
with its `training` extra, `maas-train` as the entrypoint (the trigger passes only its arguments)."""

from __future__ import annotations

import fnmatch
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "training" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_builds_python312_with_the_training_extra_and_runs_maas_train() -> None:
    """Given training/Dockerfile,
    then it starts FROM python:3.12(-slim), copies the core's and the training package's folders (and not the
    local stack's or the CLI's: maas-train imports neither), installs the project with [training] (whose
    dependencies, TensorFlow included, come from pyproject.toml itself), runs as a non-root user, and its
    ENTRYPOINT is the maas-train console script pyproject.toml declares."""
    steps = instructions()
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.12"), steps[0]
    assert [s for s in steps if s[0] == "FROM"] == [steps[0]]  # one stage
    copied = {shlex.split(args)[0].rstrip("/") for word, args in steps if word == "COPY"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert {"pyproject.toml", "shared", "training"} <= copied and not copied & {"local", "cli"}, copied
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "pip install" in runs and '".[training]"' in runs
    assert "optional-dependencies']['training']" in runs  # the extra's pins, read from pyproject.toml
    user = [args for word, args in steps if word == "USER"]
    assert user and user[-1] not in ("root", "0")
    entrypoint = [args for word, args in steps if word == "ENTRYPOINT"]
    assert entrypoint == ['["maas-train"]']
    assert project["project"]["scripts"]["maas-train"] == "maas_training.cli:main"
    assert "tensorflow-cpu" in " ".join(project["project"]["optional-dependencies"]["training"])


def test_dockerignore_keeps_what_the_image_installs() -> None:
    """Given the root .dockerignore (the build context is the repository),
    then none of its patterns drops a file the Dockerfile copies, and it leaves out the git history,
    virtualenvs, tests, the local stack and the CLI."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    needed = ["pyproject.toml", "README.md", "shared/maas_core/training_jobs.py", "training/maas_training/cli.py",
              "training/maas_training/datasets/penguins.csv"]
    for path in needed:
        assert (ROOT / path).exists(), path
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        hits = [p for p in patterns for prefix in prefixes if fnmatch.fnmatch(prefix, p.removeprefix("**/"))]
        assert not hits, (path, hits)
    for excluded in (".git", ".venv", "tests", "local", "cli"):
        assert excluded in patterns
