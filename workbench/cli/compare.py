"""The commands that compare runs: `compare` (the paired table, and its CSV) and `plot` (the comparison figure,
or with --scatter every run's score against one setting)."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from workbench.analysis.across_runs import COLOUR_BY, field_named, scatter
from workbench.analysis.figures import (FORMATS, write_figure, write_importance, write_parallel, write_scatter,
                                       write_weights_figure)
from workbench.analysis.importance import importances, rows_of_runs
from workbench.analysis.paired import all_pairs
from workbench.cli.report import comparison_table, console, importance_table
from workbench.cli.usage import UsageError, records_dir
from workbench.format import COMPARISON_CSV_HEADER, comparison_csv_row, plain
from workbench.fsutil import atomic_write_text
from workbench.records.filter import FilterError, parse_filter
from workbench.records.notebook import pick_runs
from workbench.records.store import load_runs, read_history
from workbench.records.weights import WeightsUnreadable


def add_compare_parsers(sub, runs_dir_help: str) -> None:
    compare = sub.add_parser("compare", help="paired comparison of runs: mean difference, 95 %% interval, p, rounds won")
    compare.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or their start), names or presets: the latest run of each")
    compare.add_argument("--csv", type=Path, default=None, help="also write the comparison table to this CSV")
    compare.add_argument("--runs-dir", type=Path, default=None, help=runs_dir_help)

    plot = sub.add_parser("plot", help="a figure comparing runs: curves with bands, every round's score, heatmaps; "
                                       "or, with --scatter, every run's score against one setting")
    plot.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or their start), names or presets; with "
                                                             "--scatter, filter words as in `runs ls` (none: all)")
    plot.add_argument("--out", type=Path, default=None, help="fig.png, fig.svg or fig.pdf (default: comparison.png, "
                                                             "or scatter-FIELD.png)")
    plot.add_argument("--scatter", metavar="FIELD", default=None,
                      help="final test accuracy against FIELD (any setting, or weights), one point per run")
    plot.add_argument("--importance", action="store_true",
                      help="which settings matter: each one's share of the final score's variance over the runs the "
                           "words find (fANOVA, Optuna)")
    plot.add_argument("--parallel", action="store_true",
                      help="parallel coordinates: each run the words find a line through its settings to its score")
    plot.add_argument("--colour-by", choices=tuple(COLOUR_BY), default="net",
                      help="net: subnet, weight sharing and aux loss together (default)")
    plot.add_argument("--weights", action="store_true",
                      help="what one run's network learned: its first layer's units or filters (--round)")
    plot.add_argument("--round", type=int, default=0, help="with --weights: which round's network (default 0)")
    plot.add_argument("--change", action="store_true",
                      help="with --weights: what training changed (the weights less their initial values)")
    plot.add_argument("--runs-dir", type=Path, default=None, help=runs_dir_help)


def picked_runs(args: argparse.Namespace, at_least: int) -> list:
    if len(args.runs) < at_least:
        raise UsageError(f"RUN: {args.command} needs at least {at_least} run{'s' if at_least > 1 else ''} "
                         f"(ids, names or presets), got {len(args.runs)}")
    summaries, problems = load_runs(records_dir(args.runs_dir))
    for problem in problems:
        print(f"digit-workbench: skipped {plain(problem)}", file=sys.stderr)
    try:
        return pick_runs(args.runs, summaries)
    except LookupError as exc:
        raise UsageError(f"RUN: {exc}") from None


def cmd_compare(args: argparse.Namespace) -> int:
    runs = picked_runs(args, 2)
    comparisons = all_pairs(runs)
    console().print(comparison_table(runs, comparisons))
    if args.csv is not None:

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COMPARISON_CSV_HEADER)
        for c in comparisons:
            writer.writerow(comparison_csv_row(c))
        try:
            atomic_write_text(args.csv, buffer.getvalue())
        except OSError as exc:
            raise UsageError(f"--csv: cannot write {args.csv}: {exc.strerror or exc}") from None
        print(plain(f"wrote {len(comparisons)} comparison{'s' if len(comparisons) != 1 else ''} to {args.csv}"))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    if not args.weights:  # what only a weights figure reads is refused elsewhere, not silently dropped
        given = [f for f, on in (("--change", args.change), ("--round", args.round != 0)) if on]
        if given:
            raise UsageError(f"{given[0]}: only with --weights (what one run's network learned)")
    views = [f for f, on in (("--scatter", args.scatter is not None), ("--importance", args.importance),
                             ("--parallel", args.parallel), ("--weights", args.weights)) if on]
    if len(views) > 1:
        raise UsageError(f"{views[1]}: one figure at a time, and {views[0]} was given too")
    if args.scatter is not None:
        return plot_scatter(args)
    if args.importance or args.parallel:
        return plot_settings(args)
    if args.weights:
        return plot_weights(args)
    args.out = figure_out(args.out or Path("comparison.png"))
    runs = picked_runs(args, 1)
    histories = []
    for s in runs:
        history, problem = read_history(s)
        histories.append(history)
        if problem:
            print(f"digit-workbench: skipped {plain(problem)}; its curves are left out", file=sys.stderr)
    try:
        problems = write_figure(runs, histories, args.out)
    except OSError as exc:
        raise UsageError(f"--out: cannot write {args.out}: {exc.strerror or exc}") from None
    for problem in problems:
        print(f"digit-workbench: skipped {plain(problem)}", file=sys.stderr)
    print(plain(f"wrote {args.out} ({', '.join(s.name for s in runs)})"))
    return 0


def figure_out(out: Path) -> Path:
    """--out as a figure file: its suffix names a format, checked before anything is read or drawn."""
    if out.suffix.lower().lstrip(".") not in FORMATS:
        raise UsageError(f"--out: a figure is .png, .svg or .pdf, got {str(out)!r}")
    return out


def plot_weights(args: argparse.Namespace) -> int:
    if len(args.runs) != 1:
        raise UsageError(f"RUN: --weights draws one run, got {len(args.runs)}")
    run = picked_runs(args, 1)[0]
    out = figure_out(args.out or Path(f"weights-{run.id}.png"))
    try:
        write_weights_figure(run, out, args.round, args.change)
    except WeightsUnreadable as exc:
        raise UsageError(f"RUN: {exc}") from None
    except OSError as exc:
        raise UsageError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    print(plain(f"wrote {out} ({run.name}, round {args.round}: its first layer)"))
    return 0


def plot_scatter(args: argparse.Namespace) -> int:
    try:
        key = field_named(args.scatter)
    except ValueError as exc:
        raise UsageError(f"--scatter: {exc}") from None
    out = figure_out(args.out or Path(f"scatter-{key}.png"))
    points = scatter(filtered_runs(args), key, args.colour_by)
    if not points.points:
        raise UsageError(f"RUN: no done run{' that the words find' if args.runs else ''} has {points.label}"
                         + (f" ({points.left_out()})" if points.left_out() else ""))
    try:
        write_scatter(points, out)
    except OSError as exc:
        raise UsageError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    left_out = points.left_out()
    print(plain(f"wrote {out} ({len(points.points)} runs against {points.label}"
                + (f"; {left_out} left out)" if left_out else ")")))
    return 0


def filtered_runs(args: argparse.Namespace) -> list:
    """The runs the filter words find (all, without words)."""
    try:
        shows = parse_filter(" ".join(args.runs))
    except FilterError as exc:
        raise UsageError(f"RUN: {exc}") from None
    summaries, problems = load_runs(records_dir(args.runs_dir))
    for problem in problems:
        print(f"digit-workbench: skipped {plain(problem)}", file=sys.stderr)
    return [s for s in summaries if shows(s)]


def plot_settings(args: argparse.Namespace) -> int:
    """--importance or --parallel: which settings matter across the runs the words find."""
    which = "importance" if args.importance else "parallel"
    out = figure_out(args.out or Path(f"{which}.png"))
    rows = rows_of_runs(filtered_runs(args))
    found = " that the words find" if args.runs else ""
    if not rows.weighable:
        raise UsageError(f"RUN: {len(rows.rows)} done run{'s' if len(rows.rows) != 1 else ''}{found}"
                         + ("" if len(rows.rows) < 2 else ", and no setting differs among them")
                         + ": nothing to weigh" + (f" (left out: {rows.left_out()})" if rows.left_out() else ""))
    words = " ".join(args.runs)
    try:
        if args.importance:
            result = importances(rows)
            if result.why_none:
                raise UsageError(f"RUN: {result.why_none}{found}")
            console().print(importance_table(result, rows))
            write_importance(result, rows, words, out)
        else:
            write_parallel(rows, words, out)
    except OSError as exc:
        raise UsageError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    print(plain(f"wrote {out} ({len(rows.rows)} runs, {len(rows.settings)} settings that differ)"))
    return 0

