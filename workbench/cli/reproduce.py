"""`digit-workbench report`: the paper reproduced from the runs a filter finds, as one self-contained HTML page
or as Markdown (export/reproduction.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.analysis.reproduction import reproduction
from workbench.cli.compare import filtered_runs
from workbench.cli.usage import UsageError, records_dir
from workbench.export.reproduction import FORMATS, write_report
from workbench.format import plain
from workbench.paper.config import ConfigError
from workbench.paper.presets import load_presets
from workbench.sweep import stage_tables


def add_report_parser(sub, runs_dir_help: str) -> None:
    report = sub.add_parser("report", help="the paper reproduced: its tables beside ours, its questions answered "
                                           "with paired estimates, and the figures, as one HTML page (or Markdown)")
    report.add_argument("runs", nargs="*", metavar="WORD", help="filter words as in `runs ls`: the runs to draw on "
                                                                "(default: all; each row takes its preset's latest)")
    report.add_argument("--out", type=Path, default=None,
                        help="the report's file (default: reproduction.html, or reproduction.md with --format md)")
    report.add_argument("--format", choices=FORMATS, default=None,
                        help="html (one file, figures inline) or md (figures in a folder beside it); "
                             "default: by --out's suffix, else html")
    report.add_argument("--runs-dir", type=Path, default=None, help=runs_dir_help)


SUFFIXES = {"html": "html", "htm": "html", "md": "md", "markdown": "md"}


def report_format(args: argparse.Namespace) -> tuple[Path, str]:
    """The file and its format: --format, else --out's suffix, else HTML; a suffix that says the other format is
    refused before anything is read."""
    said = SUFFIXES.get(args.out.suffix.lower().lstrip(".")) if args.out is not None else None
    fmt = args.format or said or "html"
    if said is not None and said != fmt:
        raise UsageError(f"--out: {args.out.name} is no {fmt} file (--format {fmt})")
    return args.out or Path(f"reproduction.{fmt}"), fmt


def cmd_report(args: argparse.Namespace) -> int:
    out, fmt = report_format(args)
    try:
        presets = load_presets()
    except ConfigError as exc:
        raise UsageError(f"presets: {exc}") from None
    rep = reproduction(filtered_runs(args), presets)
    if not rep.runs:
        found = " that the words find" if args.runs else ""
        raise UsageError(f"RUN: no finished run{found} is a row of the paper; `digit-workbench table` makes "
                         "Table II's")
    try:
        write_report(rep, out, fmt, stage_tables(records_dir(args.runs_dir)))
    except OSError as exc:
        raise UsageError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    answered = len(rep.rows) - len(rep.missing)
    print(plain(f"wrote {out} ({answered} of the paper's {len(rep.rows)} rows"
                + (f"; missing: {', '.join(r.preset for r in rep.missing)}" if rep.missing else "") + ")"))
    return 0
