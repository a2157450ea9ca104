"""The README cannot drift from what was measured: its figures come from benchmarks/results/ (benchmarks/readme.py),
and it names every benchmark."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def readme():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "benchmarks" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def every_page() -> str:
    return "\n\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def test_the_readmes_figures_are_the_results_files(readme):
    pages = readme.pages()
    assert ROOT / "README.md" in pages and ROOT / "docs" / "performance.md" in pages
    for page in pages:
        problems = readme.check(page.read_text(encoding="utf-8"))
        assert problems == [], f"{page.name}: " + "\n".join(map(str, problems))


def test_a_figure_that_differs_from_its_results_file_is_caught(readme, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    text = every_page()
    assert readme.check(text, results) == []
    latency = results / "latency.txt"
    latency.write_text(latency.read_text().replace("1.63", "1.71"))  # the benchmark measured again
    problems = readme.check(text, results)
    assert len(problems) >= 1 and all("1.63 not in latency.txt" in str(p) for p in problems)
    table = results / "table2.md"
    table.write_text(table.read_text().replace("82.2 ± 1.5", "82.3 ± 1.5"))
    assert any("from results/table2.md" in str(p) for p in readme.check(text, results))
    refilled = readme.write(text, results)
    assert "82.3 ± 1.5" in refilled and not any("table2.md" in str(p) for p in readme.check(refilled, results))


def test_what_the_check_counts_as_a_figure(readme, tmp_path):
    (tmp_path / "a.txt").write_text("median 1.63 s over 5 runs; 36.3x; 1,097 MiB\n")
    ok = "Quit takes 1.63 s, 36.3x faster, 1097 MiB, over 10 rounds of 768 x 512 (`results/a.txt`).\n"
    assert readme.check(ok, tmp_path) == []
    for drifted in ("1.64 s", "37x", "1,098 MiB", "12 %"):
        text = ok.replace("1.63 s", drifted)
        assert readme.check(text, tmp_path), drifted
    assert readme.check("Took 2.5 s (`results/missing.txt`).\n", tmp_path)  # a citation of nothing
    table = "| what | measured |\n|---|---|\n| quit | 1.63 s |\n"
    assert "cites no results file" in str(readme.check(table, tmp_path)[0])
    assert readme.check(table.replace("1.63 s |", "1.63 s (`results/a.txt`) |"), tmp_path) == []


def test_the_guide_names_every_benchmark():
    """The modules' map is docs/architecture.md, checked against the tree by tests/test_architecture.py."""
    text = every_page()
    files = [p for p in (ROOT / "benchmarks").glob("*") if p.suffix in (".py", ".sh")]
    missing = sorted(str(p.relative_to(ROOT)) for p in files if p.name not in text)
    assert missing == []


def test_one_version_in_the_package_the_changelog_and_the_app():
    """The version a user reads in --version, the app's title and a record is the one the changelog's newest entry
    describes."""
    import re
    import tomllib

    import workbench
    from workbench.tui.app import WorkbenchApp

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    newest = re.search(r"^## (\d+\.\d+\.\d+) \(\d{4}-\d{2}-\d{2}\)$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert newest and declared == workbench.__version__ == newest.group(1)
    assert WorkbenchApp.TITLE == f"digit-workbench {declared}"
