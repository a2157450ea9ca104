"""The digit-workbench command. With no arguments it opens the Textual app; subcommands run headless."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from .config import DATA_SOURCES, ENGINES, FIELDS, ConfigError, RunConfig, from_dict

from .presets import TABLE_II, Preset, find_preset, load_presets
from .format import mark, plain, setting, weights_label
from .compare_command import add_compare_parsers, cmd_compare, cmd_plot
from .networks_command import add_networks_parsers, cmd_predict, cmd_resume
from .runs_command import add_runs_parser, cmd_export, cmd_runs
from .usage import UsageError, data_flag, flag, load_digits

EXIT_USAGE = 2
DATA_DIR_HELP = "MNIST root (default: $PYTORCH_DATA_DIR or the user cache)"
RUNS_DIR_HELP = "the run records' folder (default: $DIGIT_WORKBENCH_RUNS, else ./runs)"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per config field; values are checked by the config, so errors read the same everywhere."""
    from .config import DEFAULTS
    from .format import setting

    g = p.add_argument_group("configuration (overrides the preset; without one, the defaults shown)")
    for key, spec in FIELDS.items():
        listed = spec.choices and not all(choice in spec.help for choice in spec.choices)
        text = spec.help + (f" ({', '.join(spec.choices)})" if listed else "")
        text = f"{text} (default: {setting(getattr(DEFAULTS, key))})".replace("%", "%%")
        if spec.kind is bool:
            g.add_argument(flag(key), dest=key, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            g.add_argument(flag(key), dest=key, metavar=key.upper().replace("_", "-"), default=None, help=text)
    g.add_argument("--name", help="a name for the run (default: the preset's, then what differs from it, as "
                                  "'table2-cnn-ws-aux α 0.2'; else the net and its switches); for `table`, rows are "
                                  "NAME-<preset>")
    g.add_argument("--tag", action="append", default=None, help="a tag for the run (again for more, or a,b); the "
                                                                 "results filter and `runs ls` find it")
    g.add_argument("--note", default=None, help="a note kept with the run")


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=ENGINES, default=ENGINES[0],
                   help="batched: all rounds as one stacked model (default); loop: the reference loop")
    add_data_flags(p)
    p.add_argument("--runs-dir", type=Path, default=None, help=RUNS_DIR_HELP)
    p.add_argument("--no-save", action="store_true", help="do not write run records")
    p.add_argument("--weights", choices=("all", "first", "none"), default=None,
                   help="the rounds whose trained networks the record keeps (default: all while they take under "
                        "50 MB, else the first)")
    p.add_argument("--track", default=None, metavar="URI",
                   help="also send each saved run to this MLflow tracking store (http://host:5000, sqlite:///f.db; "
                        "default: $DIGIT_WORKBENCH_TRACK; '' sends nothing)")


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", choices=DATA_SOURCES, default=None,
                   help="digit source: full MNIST when present (auto), or the embedded 5,000-digit subset")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)


def build_parser() -> Parser:
    parser = Parser(prog="digit-workbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"digit-workbench {package_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    run = sub.add_parser("run", help="train one configuration over several rounds")
    run.add_argument("--preset", help="a preset name (see 'digit-workbench presets') or a .toml file")
    add_config_flags(run)
    add_engine_flags(run)

    table = sub.add_parser("table", help="run several presets and print the comparison (default: Table II)")
    table.add_argument("presets", nargs="*", help="preset names (default: all eight rows of Table II)")
    add_config_flags(table)
    add_engine_flags(table)

    sub.add_parser("presets", help="list the presets with the paper's scores",
                   description="Every preset (a row of the paper's tables, or beyond the paper), its settings and the "
                               "paper's score. `run --preset NAME` trains one; `table NAME...` several.")

    export = sub.add_parser("export", help="write every run under runs/ to one CSV, as TensorBoard event files, or "
                                                 "to an MLflow store")
    export.add_argument("--out", type=Path, default=None, help="CSV file (default: runs-export.csv, unless only "
                                                               "--tensorboard or --mlflow is given)")
    export.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                        help="also write each run as TensorBoard event files under DIR (tensorboard --logdir DIR)")
    export.add_argument("--mlflow", default=None, metavar="URI",
                        help="also send each run to this MLflow tracking store (runs already there are skipped)")
    export.add_argument("--runs-dir", type=Path, default=None, help=RUNS_DIR_HELP)

    add_compare_parsers(sub, RUNS_DIR_HELP)
    add_networks_parsers(sub, RUNS_DIR_HELP)

    sweep = sub.add_parser("sweep", help="run a grid search from presets/sweeps (Tables III and IV)")
    sweep.add_argument("spec", nargs="?", help="a spec name (presets/sweeps/NAME.toml) or a .toml file")
    sweep.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    sweep.add_argument("--storage", default=None,
                       help="a database URL (postgresql://...) that workers on several machines share; "
                            "default: a journal file runs/sweeps/STUDY.journal")
    sweep.add_argument("--study", default=None, help="the study's name (default: the spec's name)")
    sweep.add_argument("--show", metavar="STUDY", default=None, help="print a study's trials and best configs")
    sweep.add_argument("--out", type=Path, default=None, help="CSV of all trials (default: runs/sweeps/STUDY-trials.csv)")
    sweep.add_argument("--no-final", action="store_true",
                       help="skip measuring the chosen configs on the test pairs afterwards")
    sweep.add_argument("--runs-dir", type=Path, default=None,
                       help=RUNS_DIR_HELP + "; the journal, the trials CSV and the final runs go there")
    add_data_flags(sweep)

    add_runs_parser(sub, RUNS_DIR_HELP)

    data = sub.add_parser("data", help="the digit sources")
    data_sub = data.add_subparsers(dest="data_command", parser_class=Parser)
    download = data_sub.add_parser("download", help="download full MNIST (needs the network)")
    download.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    info = data_sub.add_parser("info", help="which digits a run would use")
    add_data_flags(info)

    return parser


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key) for key in FIELDS if getattr(args, key, None) is not None}


def config_from_args(args: argparse.Namespace, preset: Preset | None) -> RunConfig:
    try:
        return from_dict(overrides(args), base=preset.config if preset else None)
    except ConfigError as exc:
        raise UsageError(f"{flag(exc.key)}: {exc.message}") from None


def run_and_report(runs: list, args: argparse.Namespace, digits: str | None = None) -> int:
    """Train the runs with a progress bar, save their records, print the comparison; exit status 1 if any failed
    or was not saved, 130 when cancelled. With `digits`, the digits must be those (a run continued)."""
    from .engine import EngineError
    from .runs import runs_dir
    from rich.text import Text

    from .report import ProgressDisplay, results_table, text
    from .report import console as report_console
    from .networks import resolve_keep
    from .training import Group, refusal, train_and_record

    console = report_console()
    display = ProgressDisplay(console, [run.name for run in runs], [run.config for run in runs])
    with display.signals():
        source = load_digits(args.data, args.data_dir)
        if digits and source.name != digits:
            raise UsageError(f"--data: the run trained on {digits}; these digits are {source.name}")
        why = refusal([run.config for run in runs], source)  # before anything trains, naming the flag
        if why:
            raise UsageError(f"--{why}")
        if display.cancel.is_set():
            console.print(text("cancelled before training: nothing trained, nothing written", "yellow"))
            return 130
        runs_root = None if args.no_save else args.runs_dir or runs_dir()
        for run in runs if runs_root is not None else []:
            _, why = resolve_keep(run.config, run.weights)
            if why:
                console.print(text(f"{run.name}: {why}", "dim"))
        try:
            with display:
                recorded = train_and_record(Group(runs, stop=display.cancel), source, engine=args.engine,
                                            runs_root=runs_root, on_epoch=display.on_epoch, track=args.track)
        except EngineError as exc:
            raise UsageError(str(exc)) from None
    summaries = [r.summary for r in recorded]
    unsaved = [r.unsaved for r in recorded if r.unsaved]
    console.print(results_table(summaries))
    console.print(text(f"digits: {source.name} · device: {recorded[0].result.device} · engine: {args.engine}"
                       + ("" if runs_root is None or unsaved else f" · records: {runs_root}/"), "dim"))
    for s in summaries:
        if s.status == "failed":
            console.print(Text.assemble(text(f"{s.name} failed:", "red"), " ", text(s.reason)))
    for line in unsaved:  # the results are still printed; the user learns why they are not on disk
        print(f"digit-workbench: {plain(line)}", file=sys.stderr)
    for r in recorded:
        if r.said:
            print(f"digit-workbench: {plain(r.said)}")
        if r.tracked:
            print(f"digit-workbench: {plain(r.tracked)}", file=sys.stdout if r.sent else sys.stderr)
    if unsaved or any(s.status == "failed" for s in summaries):
        return 1
    return 130 if display.cancel.is_set() else 0


def cmd_run(args: argparse.Namespace) -> int:
    from .training import NamedRun

    preset = find_preset_or_usage(args.preset) if args.preset is not None else None
    return run_and_report([NamedRun.of(config_from_args(args, preset), preset, *notes_from_args(args),
                                       weights=args.weights)], args)


def cmd_table(args: argparse.Namespace) -> int:
    from .training import NamedRun

    presets = [find_preset_or_usage(name) for name in args.presets or TABLE_II]
    # --name names the table: each row is NAME-<preset>, so its rows stay apart
    name, tags, note = notes_from_args(args)
    return run_and_report([NamedRun.of(config_from_args(args, p), p, f"{name}-{p.name}" if name else None,
                                       tags, note, args.weights) for p in presets], args)


def notes_from_args(args: argparse.Namespace) -> tuple[str | None, tuple[str, ...], str]:
    """--name, --tag and --note as a run keeps them; a bad one is refused naming its flag."""
    from .notebook import check_name, check_note, parse_tags

    try:
        name = check_name(args.name)
    except ValueError as exc:
        raise UsageError(f"--name: {exc}") from None
    try:
        tags = tuple(parse_tags(args.tag or []))
    except ValueError as exc:
        raise UsageError(f"--tag: {exc}") from None
    try:
        return name, tags, check_note(args.note or "")
    except ValueError as exc:
        raise UsageError(f"--note: {exc}") from None


def find_preset_or_usage(name: str) -> Preset:
    try:
        return find_preset(name)
    except ConfigError as exc:
        raise UsageError(f"--{exc}" if exc.source is None else str(exc)) from None


def cmd_presets(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .architecture import weight_count
    from .report import console, text

    try:
        presets = load_presets()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    table = Table(title="Presets", title_justify="left")
    # a name is what a user types: never cut, whatever the width; the settings fold instead
    table.add_column("name", no_wrap=True, min_width=max((len(n) for n in presets), default=4))
    for col in ("table", "subnet", "WS", "aux"):
        table.add_column(col, no_wrap=True)
    table.add_column("settings", overflow="fold")
    table.add_column("weights", justify="right", no_wrap=True)
    table.add_column("paper", no_wrap=True)
    for p in presets.values():
        c = p.config
        diff = {k: v for k, v in c.differences().items() if k not in ("subnet", "weight_sharing", "aux_loss")}
        table.add_row(text(p.name), text(p.paper.table) if p.paper else "", c.subnet, mark(c.weight_sharing), mark(c.aux_loss),
                      " ".join(f"{FIELDS[k].label}={setting(v)}" for k, v in diff.items()),
                      weights_label(weight_count(c)), p.paper.label() if p.paper else "")
    console().print(table)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .sources import DataError, describe_source, mnist_root, source_kind

    if args.data_command == "download":
        from .data import download_mnist

        root = mnist_root(args.data_dir)
        try:
            source = download_mnist(root)
        except DataError as exc:
            print(f"digit-workbench: {exc}", file=sys.stderr)
            return 1
        print(f"MNIST ready: {source.name}")
        return 0
    if args.data_command == "info":  # from the files' headers: no torch, no tensors
        with data_flag():
            print(describe_source(source_kind(args.data, args.data_dir), args.data_dir))
        return 0
    raise UsageError("digit-workbench data: choose 'download' or 'info'")


def cmd_sweep(args: argparse.Namespace) -> int:
    import os

    from .sweep.command import run_sweep_command

    if args.runs_dir is not None:  # read by the storage, the final runs and the worker processes alike
        os.environ["DIGIT_WORKBENCH_RUNS"] = str(args.runs_dir)

    return run_sweep_command(args)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("digit-workbench")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if not argv:
            return open_app(parser)
        args = parser.parse_args(argv)
        handler = {"run": cmd_run, "table": cmd_table, "presets": cmd_presets, "export": cmd_export,
                   "data": cmd_data, "sweep": cmd_sweep, "compare": cmd_compare, "plot": cmd_plot, "predict": cmd_predict,
                   "runs": cmd_runs, "resume": cmd_resume}.get(args.command)
        if handler is None:
            parser.print_help()
            return EXIT_USAGE
        return handler(args)
    except UsageError as exc:
        print(f"digit-workbench: error: {plain(str(exc).removeprefix('digit-workbench: '))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("digit-workbench: interrupted", file=sys.stderr)
        return 130


def open_app(parser: Parser) -> int:
    if not sys.stdout.isatty():
        parser.print_help()
        return 0
    from .tui.app import run_app

    return run_app()


if __name__ == "__main__":
    sys.exit(main())
