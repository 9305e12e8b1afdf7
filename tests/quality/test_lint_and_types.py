"""The code's own checks, run by the suite so CI runs them: ruff (pyproject.toml [tool.ruff]: line length 120, its
rule set) over the whole repository, and mypy --strict over maas_core (pyproject.toml [tool.mypy]; boto3 clients
typed by the boto3 stubs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)


def test_ruff_finds_nothing() -> None:
    """Given the repository and its ruff configuration,
    when ruff checks every Python file,
    then it reports nothing (each finding is listed with its file and line)."""
    result = run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff:\n{result.stdout}{result.stderr}"


def test_the_core_is_strictly_typed() -> None:
    """Given maas_core and the mypy configuration (strict),
    when mypy checks it,
    then there is no error (each is listed with its file and line)."""
    result = run("mypy", "--no-incremental")
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
    assert "Success" in result.stdout, result.stdout
