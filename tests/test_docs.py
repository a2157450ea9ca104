"""The guide holds together: every link and picture a page names is there, and the script that draws the
pictures from the app runs and draws each of them (`make docs`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def targets(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # code blocks hold no links
    return [t for t in LINK.findall(text) if not t.startswith(("http://", "https://", "mailto:", "#"))]


def test_every_relative_link_and_picture_a_page_names_is_there():
    missing = [f"{page.relative_to(ROOT)}: {target}" for page in PAGES for target in targets(page)
               if not (page.parent / target.split("#", 1)[0]).exists()]
    assert missing == []
    named = {(page.parent / t).resolve() for page in PAGES for t in targets(page) if t.endswith(".svg")}
    assert named >= {(ROOT / "docs" / "pictures" / f"{p}.svg").resolve() for p in ("main", "results", "compare")}


SCREEN_PAGES = ("app", "form-and-presets", "live", "results-and-notebook", "compare", "details-and-errors",
                "learned-and-playground", "resume", "sweeps")


def test_each_screens_page_shows_a_picture_the_app_drew():
    for name in SCREEN_PAGES:
        pictures = [t for t in targets(ROOT / "docs" / f"{name}.md") if t.startswith("pictures/")]
        assert pictures, f"docs/{name}.md shows no picture"


def test_the_readme_is_read_in_five_minutes_and_points_into_the_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    linked = {t for t in targets(ROOT / "README.md")}
    guide = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert guide <= linked  # every page of the guide is reachable from the README


def test_the_pictures_script_draws_every_picture_from_the_app(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    from make_pictures import PICTURES

    done = subprocess.run([sys.executable, str(ROOT / "docs" / "make_pictures.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in PICTURES:
        svg = (tmp_path / f"{name}.svg").read_text(encoding="utf-8")
        assert svg.startswith("<svg") and "digit-workbench" in svg, name
        assert (ROOT / "docs" / "pictures" / f"{name}.svg").is_file(), f"docs/pictures/{name}.svg: run make docs"
    assert "table2-fcn-ws-aux" in (tmp_path / "results.svg").read_text(encoding="utf-8")
