"""The package order (pyproject.toml [tool.importlinter]), checked by import-linter: the core imports neither the
training package nor the local stack nor the CLI, the training package neither of the last two, they not each
other; nothing in maas_core outside maas_core.edge imports the edge; benchmarks never import tests. Plus what
import-linter cannot see: an import hidden in an importlib.import_module("maas_...") string."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FOLDERS = ("shared", "training", "local", "cli")
LINTED = (*PACKAGE_FOLDERS, "benchmarks", "tests")
_LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` run on `tree` (a checkout: pyproject.toml and the package folders), its packages first on
    the path, so it reads that tree's code and no installed copy."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*(str(tree / d) for d in PACKAGE_FOLDERS), str(tree)])}
    return subprocess.run([sys.executable, "-c", _LINT, "--no-cache", "--no-logo"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_every_import_follows_the_package_order() -> None:
    """Given the repository's code and its import-linter contracts,
    when import-linter checks every import (function-level ones included),
    then every contract is kept; a broken one is reported with each offending import and its line."""
    result = lint_imports(ROOT)
    assert result.returncode == 0, f"imports against the package order:\n{result.stdout}{result.stderr}"
    assert "0 broken" in result.stdout, result.stdout


def test_an_upward_import_is_reported_with_its_place(tmp_path: Path) -> None:
    """Given a copy of the repository's Python files in which the registry imports the local stack inside a
    function (a lazy upward import),
    when import-linter checks the copy,
    then the layers contract is broken and the report names the importing module, the imported one and the
    line."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for folder in LINTED:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=_not_python)
    registry = tmp_path / "shared" / "maas_core" / "registry.py"
    source = registry.read_text(encoding="utf-8")
    import_line = source.count("\n") + 4  # after two blank lines and the def
    registry.write_text(source + "\n\ndef _upward() -> None:\n    from maas_local import stack  # noqa: F401\n",
                        encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "maas_core is not allowed to import maas_local" in result.stdout, result.stdout
    assert f"maas_core.registry -> maas_local.stack (l.{import_line})" in result.stdout, result.stdout


def _not_python(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or (Path(folder, n).is_file() and not n.endswith(".py"))]


def _hidden_import(call: ast.Call) -> str | None:
    """The package a call like importlib.import_module("maas_training.cli") imports by a string, else None. A
    name built from __name__ (a package loading its own modules lazily) is not hidden."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.JoinedStr) and arg.values:
        arg = arg.values[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("maas_"):
        return arg.value
    return None


def test_no_package_imports_another_by_a_string() -> None:
    """Given every module of maas_core, maas_training, maas_local and maas_cli,
    then none imports a maas package through importlib.import_module or __import__ with a literal name: such an
    import is invisible to import-linter (maas_core.training_jobs once loaded maas_training.cli that way)."""
    hidden = []
    for folder in PACKAGE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Call) and (target := _hidden_import(node)):
                    hidden.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target!r} by a string")
    assert not hidden, "\n".join(hidden)
