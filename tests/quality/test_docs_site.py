"""The docs: the mkdocs site builds with --strict, and every file the code, the README or the docs cite exists.

`mkdocs build --strict` fails on a page missing from the nav, a link to a page that is not there, a missing
anchor or an absolute link (mkdocs.yml's `validation`). What mkdocs does not see is checked here: a
repository path named in code, comments or docs (`shared/maas_core/edge/http.py`, `docs/security.md`,
`maas_core/load_checks.py`) must exist, the README's links must resolve, and nothing may cite a document kept
outside the repository or a README section that moved into docs/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve()

# what is read: the repository's own text files, not environments, caches or build output
TEXT_SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".toml", ".md", ".js", ".html", ".css", ".txt", ".cfg", ".ini"}
TEXT_NAMES = {"Makefile", "Dockerfile", "run"}
SKIPPED_DIRS = {"site", "build", "dist", "artifacts", "node_modules", "__pycache__"}
# a path cited by its top-level folder, or by its package (maas_core/... lives under shared/)
PACKAGE_ROOTS = {"maas_core": "shared", "maas_training": "training", "maas_local": "local", "maas_cli": "cli"}
TOP_LEVEL = ("functions", "shared", "training", "local", "cli", "tests", "benchmarks", "scripts", "layers", "docs",
             r"\.ci", *PACKAGE_ROOTS)
CITED_PATH = re.compile(rf"(?<![\w./$-])((?:{'|'.join(TOP_LEVEL)})/[\w./-]*)")
# a citation names a file (by its extension) or a folder (by a trailing slash); `training/serving` is prose
CITED_EXTENSIONS = {".py", ".md", ".json", ".yaml", ".yml", ".toml", ".sh", ".txt", ".js", ".html", ".css", ".csv"}
# the design brief the project started from lives outside the repository; its content is in docs/ now
OUTSIDE_DOCUMENT = re.compile(r"\bDESIGN" + r"\.md\b")
# "README, Security" / "README Performance": sections that moved to docs/*.md
README_SECTION = re.compile(r"\bREADME(?:\.md)?,?\s+[\"“]?(?:[A-Z][a-z]+)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def repository_text_files() -> Iterator[Path]:
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")
                   and (not d.startswith(".") or d == ".ci")]
        for name in files:
            path = Path(folder) / name
            if (path.suffix in TEXT_SUFFIXES or name in TEXT_NAMES) and path != THIS_FILE:
                yield path


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"


def cited_paths(text: str) -> Iterator[tuple[int, str]]:
    """(offset, repository-relative path) of every file or folder `text` cites; templates such as
    `functions/{name}/app.py` or `models/<name>/` are not citations of one path."""
    for match in CITED_PATH.finditer(text):
        cited = match.group(1).rstrip(".")
        if text[match.end():match.end() + 1] in "{<*":
            continue
        if not (cited.endswith("/") or Path(cited).suffix in CITED_EXTENSIONS):
            continue
        top = cited.split("/", 1)[0]
        yield match.start(), f"{PACKAGE_ROOTS[top]}/{cited}" if top in PACKAGE_ROOTS else cited


def test_the_docs_site_builds_with_mkdocs_strict(tmp_path: Path) -> None:
    """Given mkdocs.yml and docs/,
    When `mkdocs build --strict` builds the site into a temporary site_dir,
    Then it succeeds: every page is in the nav and every link and anchor resolves (else its output says which)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()


def test_every_docs_page_the_repository_cites_exists() -> None:
    """Given every text file of the repository,
    When each `docs/<page>.md` it names is looked up,
    Then the page is there (a comment that points at docs/security.md points at a real page)."""
    missing = [f"{where(path, text, m.start())}: {m.group(0)}"
               for path in repository_text_files() for text in [read(path)]
               for m in re.finditer(r"(?<![\w/])docs/[\w/-]+\.md\b", text) if not (ROOT / m.group(0)).is_file()]
    assert not missing, "docs pages cited but not in docs/:\n" + "\n".join(missing)


def test_every_repository_path_the_code_or_docs_cite_exists() -> None:
    """Given every text file of the repository (code, comments, docstrings, README, docs),
    When each repository path it names (a file by its extension, a folder by its slash) is looked up,
    Then it exists: a moved module or a renamed test leaves no stale citation behind."""
    missing = [f"{where(path, text, offset)}: {cited}"
               for path in repository_text_files() for text in [read(path)]
               for offset, cited in cited_paths(text) if not (ROOT / cited).exists()]
    assert not missing, "paths cited but not in the repository:\n" + "\n".join(missing)


def test_nothing_cites_a_document_outside_the_repository_or_a_readme_section() -> None:
    """Given every text file of the repository,
    When it is searched for the design brief kept outside the repository, or for a README section by name,
    Then there is none: what they held is in docs/, and citations name the docs page."""
    found = [f"{where(path, text, m.start())}: {m.group(0)}"
             for path in repository_text_files() for text in [read(path)]
             for pattern in (OUTSIDE_DOCUMENT, README_SECTION) for m in pattern.finditer(text)]
    assert not found, "cite the docs page instead (docs/<page>.md):\n" + "\n".join(found)


def test_the_readmes_links_resolve() -> None:
    """Given the README (outside the mkdocs site, so mkdocs does not check it),
    When each relative link in it is followed,
    Then the file it names exists."""
    readme = ROOT / "README.md"
    text = read(readme)
    links = [m.group(1) for m in MARKDOWN_LINK.finditer(text) if not re.match(r"[a-z]+:|#", m.group(1))]
    assert any(link.startswith("docs/") for link in links), "the README links into docs/"
    broken = [link for link in links if not (readme.parent / link.split("#", 1)[0]).exists()]
    assert not broken, f"README links to missing files: {broken}"


def test_the_architecture_page_names_every_core_module() -> None:
    """Given the architecture page and the core's modules (maas_core and maas_core/edge),
    then every module and package is named on the page: a module added or moved without the page is caught."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    core = ROOT / "shared" / "maas_core"
    names = [p.name for p in core.glob("*.py") if p.name != "__init__.py"]
    names += [f"{p.name}/" for p in core.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name != "edge"]
    names += [p.name for p in (core / "edge").glob("*.py") if p.name != "__init__.py"]
    missing = [n for n in names if f"`{n}`" not in page]
    assert not missing, f"core modules the architecture page does not name: {missing}"
