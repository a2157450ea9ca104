"""The commands over run records: `runs` (list what a filter finds, move to the trash, bring back, empty it) and
`export` (one CSV, TensorBoard event files, or runs sent to an MLflow store)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from workbench.cli.report import console, text
from workbench.cli.usage import RUNS_DIR_HELP, UsageError, records_dir
from workbench.export.mlflow_tracking import store_refusal, track
from workbench.export.tensorboard import export_tensorboard
from workbench.format import counted, mean_std_label, plain, weights_label
from workbench.paper.architecture import weight_count
from workbench.records import notebook, trash
from workbench.records.filter import FilterError, parse_filter
from workbench.records.csv_export import export_csv
from workbench.records.folder import tidy_abandoned, unfinished_notes
from workbench.records.store import load_runs

STATUSES = ("done", "failed", "cancelled")


def add_runs_parser(sub, runs_dir_help: str) -> None:
    runs = sub.add_parser("runs", help="list, prune and restore run records (pruned runs go to a trash folder)")
    runs_sub = runs.add_subparsers(dest="runs_command")
    ls = runs_sub.add_parser("ls", help="the runs every word finds (words anywhere; alpha>0.3, status=done, tag=x, "
                                        "name~fcn)")
    ls.add_argument("words", nargs="*", metavar="WORD")
    ls.add_argument("--trash", action="store_true", help="list the trash instead")
    rm = runs_sub.add_parser("rm", help="move runs to the trash (runs/.trash; `runs restore` brings them back)")
    rm.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or their start), names or presets")
    rm.add_argument("--status", default=None, help="also every run of these statuses, e.g. failed,cancelled")
    restore = runs_sub.add_parser("restore", help="bring runs back from the trash")
    restore.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or their start), names or presets")
    rename = runs_sub.add_parser("rename", help="give a run a new name (plain text, one line)")
    rename.add_argument("runs", nargs=1, metavar="RUN", help="a run id (or its start or end), name or preset")
    rename.add_argument("new_name", metavar="NEW")
    runs_sub.add_parser("empty-trash", help="delete what the trash holds, for good")
    for parser in runs_sub.choices.values():
        parser.add_argument("--runs-dir", default=None, help=runs_dir_help)


def cmd_runs(args: argparse.Namespace) -> int:
    if args.runs_command is None:
        raise UsageError("runs: say ls, rm, restore, rename or empty-trash")
    root = records_dir(args.runs_dir)
    try:
        return _runs(args, root)
    except trash.TrashRefused as exc:
        for run_id in exc.done:
            print(f"{'deleted' if args.runs_command == 'empty-trash' else 'moved'} {run_id}")
        print(f"digit-workbench: {plain(exc.message)}", file=sys.stderr)
        return 1


def _runs(args: argparse.Namespace, root: Path) -> int:
    if args.runs_command == "empty-trash":
        out = trash.empty_trash(root)
        _say_left(out)
        print(f"deleted {counted(len(out.done), 'record')} from {trash.trash_dir(root)}")
        return 0
    in_trash = args.runs_command == "restore" or getattr(args, "trash", False)
    summaries, problems = (trash.trashed(root), []) if in_trash else load_runs(root)
    for problem in problems:
        print(f"digit-workbench: skipped {plain(problem)}", file=sys.stderr)
    if args.runs_command == "ls":
        try:
            shows = parse_filter(" ".join(args.words))
        except FilterError as exc:
            raise UsageError(f"WORD: {exc}") from None
        shown = [s for s in summaries if shows(s)]
        print_runs(notebook.unfinished_last(shown))
        if not in_trash:
            for note in unfinished_notes(root):
                print(f"digit-workbench: {plain(note)}", file=sys.stderr)
        return 0
    try:
        picked = notebook.pick_runs(args.runs, summaries)
    except notebook.NoSuchRun as exc:
        where = trash.whereabouts(exc.ref, root, in_trash=in_trash)
        raise UsageError(f"RUN: {exc}" + (f"; {where}" if where else "")) from None
    if args.runs_command == "rename":
        return rename_run(picked[0], args.new_name)
    if args.runs_command == "restore":
        out = trash.restore([s.id for s in picked], root)
        _say_left(out)
        print(f"restored {counted(len(out.done), 'run')} to {root}")
        return 0 if out.done or not picked else 1
    if getattr(args, "status", None):
        wanted = [w.strip() for w in args.status.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in STATUSES]
        if unknown:
            raise UsageError(f"--status: {unknown[0]!r} is no status (known: {', '.join(STATUSES)})")
        picked += [s for s in summaries if s.status in wanted and s not in picked]
    elif not picked:
        raise UsageError("RUN: name the runs to move to the trash, or give --status")
    out = trash.move_to_trash([s.id for s in picked], root)
    _say_left(out)
    print(plain(f"moved {counted(len(out.done), 'run')} to {trash.trash_dir(root)}"
                + (f"; `digit-workbench runs restore {' '.join(out.done)}` brings them back" if out.done else "")))
    return 0 if out.done or not picked else 1


def rename_run(summary, new_name: str) -> int:
    try:
        name = notebook.check_name(new_name)
    except ValueError as exc:
        raise UsageError(f"NEW: {exc}") from None
    if name is None:
        raise UsageError("NEW: a run keeps a name: give one")
    try:
        notebook.annotate(summary, summary.tags, summary.note, name)
    except OSError as exc:
        print(f"digit-workbench: cannot rename {plain(summary.id)}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(plain(f"renamed {summary.id}: {summary.name} → {name}"))
    return 0


def _say_left(out: trash.Outcome) -> None:
    for line in out.left:
        print(f"digit-workbench: {plain(line)}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    root = records_dir(args.runs_dir)
    if args.tensorboard is not None and not args.tensorboard.strip():
        raise UsageError("--tensorboard: an empty folder name (say `--tensorboard tb`; '.' for this folder)")
    why = store_refusal(args.mlflow) if args.mlflow is not None else None
    if why:
        raise UsageError(f"--mlflow: {why}")
    if args.tensorboard is not None:
        args.tensorboard = Path(args.tensorboard)
    for note in tidy_abandoned(root):
        print(f"digit-workbench: skipped {plain(note)}", file=sys.stderr)
    summaries, problems = load_runs(root)
    for problem in problems:
        print(f"digit-workbench: skipped {plain(problem)}", file=sys.stderr)
    runs = counted(len(summaries), "run")
    if args.tensorboard is not None:
        try:
            export_tensorboard(summaries, args.tensorboard)
        except OSError as exc:
            raise UsageError(f"--tensorboard: cannot write {args.tensorboard}: {exc.strerror or exc}") from None
        print(plain(f"wrote {runs} as TensorBoard event files to {args.tensorboard} "
                    f"(tensorboard --logdir {args.tensorboard})"))
    if args.mlflow is not None:

        sent = track(summaries, args.mlflow)
        for line, ok in sent:
            print(f"digit-workbench: {plain(line)}", file=sys.stdout if ok else sys.stderr)
        if not all(ok for _, ok in sent):
            return 1
    if args.out is None and (args.tensorboard is not None or args.mlflow is not None):
        return 0
    out = args.out or Path("runs-export.csv")
    try:
        export_csv(summaries, out)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--out: cannot write {out}: {getattr(exc, 'strerror', None) or exc}") from None
    print(plain(f"wrote {runs} to {out}"))
    return 0


def print_runs(summaries) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("run", "id", "status", "test acc %", "weights"):
        table.add_column(col, no_wrap=col != "run", overflow="fold")
    for s in summaries:
        table.add_row(text(s.name), text(s.id), text(s.status), mean_std_label(s.mean, s.std),
                      weights_label(weight_count(s.config)))
    console().print(table)
    print(counted(len(summaries), "run"))


def add_export_parser(sub) -> None:
    export = sub.add_parser("export", help="write every run under runs/ to one CSV, as TensorBoard event files, or "
                                                 "to an MLflow store")
    export.add_argument("--out", type=Path, default=None, help="CSV file (default: runs-export.csv, unless only "
                                                               "--tensorboard or --mlflow is given)")
    export.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="also write each run as TensorBoard event files under DIR (tensorboard --logdir DIR)")
    export.add_argument("--mlflow", default=None, metavar="URI",
                        help="also send each run to this MLflow tracking store (runs already there are skipped)")
    export.add_argument("--runs-dir", type=Path, default=None, help=RUNS_DIR_HELP)
