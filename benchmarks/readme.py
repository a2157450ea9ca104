"""The measured figures of the README and the guide (docs/*.md) come from benchmarks/results/ and nowhere else.

    python benchmarks/readme.py            # list where a page and the results disagree (exit 1 if anywhere)
    python benchmarks/readme.py --write    # copy the results files into the pages' generated blocks

Two rules, both checked by tests/test_readme.py:

- A generated block, `<!-- from results/FILE -->` ... `<!-- end -->`, holds FILE's text verbatim (a benchmark
  writes FILE; `--write` copies it in).
- Any other paragraph, list item or table row that cites `results/FILE` (one or more) quotes its figures from
  those files: every figure in it (a number with decimals, or with a unit: s, %, x, GB, ...) must appear in one
  of them. Numbers inside `code` (commands, commits) and issue numbers are not figures.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def pages() -> list[Path]:
    """The README and every page of the guide: each is checked the same way."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]

RESULTS = ROOT / "benchmarks" / "results"

BLOCK = re.compile(r"<!-- from results/(?P<file>[\w.-]+) -->\n(?P<body>.*?)<!-- end -->", re.S)
CITATION = re.compile(r"results/([\w.*-]+\.(?:txt|md|csv|log))")
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(x\b|\s?(?:%|s\b|ms\b|min\b|GB\b|MB\b|MiB\b|KiB\b|GiB\b|GFLOP/s))?")
ISSUE = re.compile(r"issues? \d+(?: and \d+)?")  # issue numbers name work, they measure nothing
CODE = re.compile(r"`[^`]*`")


@dataclass
class Disagreement:
    where: str  # the README's text, shortened
    what: str

    def __str__(self) -> str:
        return f"README: {self.where!r}: {self.what}"


def numbers(text: str) -> set[str]:
    """The numbers a text states, as written without thousands commas (`1,000` is `1000`)."""
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def figures(text: str) -> set[str]:
    """The measured figures a text states: numbers with decimals, or with a unit (s, %, GB, ..., or a ratio's x as
    in 36x); a count such as '10 rounds', '24 misclassified pairs' or '768 x 512' is not one."""
    return {m[1].replace(",", "") for m in FIGURE.finditer(text) if "." in m[1] or m[2]}


def segments(text: str) -> list[str]:
    """Paragraphs and list items as one line each, and every table row on its own; generated blocks and code
    blocks are left out (the first are checked whole, the second hold commands and screens)."""
    text = BLOCK.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    out, current = [], []
    for line in text.splitlines():
        starts_item = re.match(r"\s*(?:[-*]|\d+\.)\s", line) is not None
        if not line.strip() or line.lstrip().startswith(("|", "#")) or starts_item:
            if current:
                out.append(" ".join(current))
            current = []
            if line.lstrip().startswith("|"):
                out.append(line)
                continue
        if line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    if current:
        out.append(" ".join(current))
    return out


def measured_rows(text: str) -> list[str]:
    """The body rows of every table whose header names a column `measured`: each must cite its results."""
    rows, header = [], None
    for line in BLOCK.sub("", text).splitlines():
        if not line.lstrip().startswith("|"):
            header = None
        elif header is None:
            header = line
        elif "measured" in header and not set(line.strip()) <= set("|-: "):
            rows.append(line)
    return rows


def cited_files(segment: str, results: Path) -> list[Path]:
    files = []
    for pattern in CITATION.findall(segment):
        files += sorted(results.glob(pattern))
    return files


def check(readme: str, results: Path = RESULTS) -> list[Disagreement]:
    problems = []
    for block in BLOCK.finditer(readme):
        path = results / block["file"]
        if not path.is_file():
            problems.append(Disagreement(f"from results/{block['file']}", "no such results file"))
        elif block["body"] != path.read_text(encoding="utf-8"):
            problems.append(Disagreement(f"from results/{block['file']}", "differs from the file (run "
                                         "`python benchmarks/readme.py --write`)"))
    for row in measured_rows(readme):
        if not CITATION.search(row):
            problems.append(Disagreement(row[:70], "a row of measured figures cites no results file"))
    for segment in segments(readme):
        if not CITATION.search(segment):
            continue
        files = cited_files(segment, results)
        if not files:
            problems.append(Disagreement(segment[:70], f"cites {', '.join(CITATION.findall(segment))}: no such file"))
            continue
        known = set().union(*(numbers(f.read_text(encoding="utf-8", errors="replace")) for f in files))
        stated = figures(ISSUE.sub("", CODE.sub("", segment)))
        missing = sorted(stated - known, key=float)
        if missing:
            problems.append(Disagreement(segment[:70], f"{', '.join(missing)} not in "
                                                       f"{', '.join(f.name for f in files)}"))
    return problems


def write(readme: str, results: Path = RESULTS) -> str:
    """The README with every generated block refilled from its file."""
    def refill(block: re.Match) -> str:
        path = results / block["file"]
        body = path.read_text(encoding="utf-8") if path.is_file() else block["body"]
        return f"<!-- from results/{block['file']} -->\n{body}<!-- end -->"

    return BLOCK.sub(refill, readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="refill the generated blocks from the results files")
    args = parser.parse_args()
    failed = False
    for page in pages():
        text = page.read_text(encoding="utf-8")
        if args.write:
            sys.path.insert(0, str(ROOT))
            from workbench.fsutil import atomic_write_text

            text = write(text)
            atomic_write_text(page, text)
        for problem in check(text):
            print(f"{page.relative_to(ROOT)}: {problem}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
