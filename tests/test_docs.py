"""The documentation: a short README that a newcomer reads to the end, and a site under docs/
that builds in strict mode (as .ci/run builds it), where a broken link or anchor fails.

README.md holds the sections the site shares with it (the introduction, the set-up, one
selection, one job submission, the digits table) once, between snippet markers; the pages
include them by name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 220
# A Markdown link's target: [text](target), the target up to a space or the closing bracket.
LINK = re.compile(r"\]\(([^)\s]+)\)")
INCLUDE = re.compile(r'^--8<-- "README\.md:([\w-]+)"$', re.MULTILINE)
SECTION = re.compile(r"^<!-- --8<-- \[(start|end):([\w-]+)\] -->$", re.MULTILINE)


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_readme_is_a_landing_page_whose_docs_links_resolve() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    targets = [t.split("#")[0] for t in LINK.findall(text) if "://" not in t]
    docs_links = [t for t in targets if t.startswith("docs/")]
    assert docs_links, "the README points at the documentation"
    missing = [t for t in targets if t and not (ROOT / t).is_file()]
    assert not missing, f"README.md links to missing files: {missing}"
    pages = {p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md")}
    assert pages - {"docs/index.md"} <= set(docs_links), "every top-level page is listed"


def test_readme_keeps_the_set_up_commands_the_headline_job_and_cis_test_command() -> None:
    text = README.read_text()
    assert "bash scripts/run_main.sh" in text and "bash .ci/run" in text
    assert re.search(r"ray job submit .*-- python sweeps/dim_grid\.py", text)
    command = re.search(r"```bash\n(\.venv/bin/python -m pytest[^\n]*)\n```", text)
    assert command, "the README states the test command"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    runs = [line for line in ci if line.startswith(".venv/bin/python -m pytest")]
    assert len(runs) == 1 and runs[0].split()[: len(command[1].split())] == command[1].split()
    builds = [line for line in ci if ".venv/bin/mkdocs build --strict" in line]
    # --quiet would silence the warnings --strict counts: a broken link would pass.
    assert len(builds) == 1 and not re.search(r"\s(-q|--quiet)\b", builds[0])


def test_every_section_the_pages_include_is_marked_once_in_the_readme() -> None:
    markers = SECTION.findall(README.read_text())
    starts = [name for kind, name in markers if kind == "start"]
    ends = [name for kind, name in markers if kind == "end"]
    assert starts == ends and len(set(starts)) == len(starts)
    included = {name for page in DOCS.rglob("*.md") for name in INCLUDE.findall(page.read_text())}
    assert included == set(starts), "each shared section is used, and each used one exists"


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    result = mkdocs_build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "strategies" / "index.html").read_text()
    assert "make_strategy" in api, "the API reference is generated from the docstrings"
    digits = (tmp_path / "site" / "results" / "index.html").read_text()
    assert "0.942 ± 0.000" in digits, "the README's digits table is included in the page"


@pytest.mark.slow
def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(DOCS, copy / "docs")
    (copy / "alsys").symlink_to(ROOT / "alsys")
    page = copy / "docs" / "index.md"
    page.write_text(page.read_text() + "\n[gone](no-such-page.md) [here](strategies.md#nowhere)\n")
    result = mkdocs_build(copy, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr and "#nowhere" in result.stderr
