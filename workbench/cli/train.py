"""`digit-workbench run` and `table`: configs from flags and presets, trained with a progress bar and recorded."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.text import Text

from workbench.cli.report import ProgressDisplay, results_table, text
from workbench.cli.report import console as report_console
from workbench.cli.usage import RUNS_DIR_HELP, UsageError, add_data_flags, flag, load_digits
from workbench.export.mlflow_tracking import TRACK_ENV, store_refusal, tracking_uri
from workbench.format import plain, setting
from workbench.paper.config import DEFAULTS, ENGINES, FIELDS, ConfigError, RunConfig, from_dict
from workbench.paper.presets import TABLE_II, Preset, find_preset
from workbench.records.folder import runs_dir
from workbench.records.notebook import check_name, check_note, parse_tags
from workbench.records.weights import resolve_keep
from workbench.training.group import Group, NamedRun
from workbench.training.train import refusal, train_and_record


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per config field; values are checked by the config, so errors read the same everywhere."""
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
    from workbench.engine import EngineError

    console = report_console()
    display = ProgressDisplay(console, [run.name for run in runs], [run.config for run in runs])
    with display.signals():
        source = load_digits(args.data, args.data_dir)
        if digits and source.name != digits:
            raise UsageError(f"--data: the run trained on {digits}; these digits are {source.name}")
        why = refusal([run.config for run in runs], source)  # before anything trains, naming the flag
        if why:
            raise UsageError(f"--{why}")
        uri = tracking_uri(args.track)
        why = store_refusal(uri) if uri else None
        if why:
            raise UsageError(f"{'--track' if args.track is not None else TRACK_ENV}: {why}")
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
    preset = find_preset_or_usage(args.preset) if args.preset is not None else None
    return run_and_report([NamedRun.of(config_from_args(args, preset), preset, *notes_from_args(args),
                                       weights=args.weights)], args)


def cmd_table(args: argparse.Namespace) -> int:
    presets = [find_preset_or_usage(name) for name in args.presets or TABLE_II]
    # --name names the table: each row is NAME-<preset>, so its rows stay apart
    name, tags, note = notes_from_args(args)
    return run_and_report([NamedRun.of(config_from_args(args, p), p, f"{name}-{p.name}" if name else None,
                                       tags, note, args.weights) for p in presets], args)


def notes_from_args(args: argparse.Namespace) -> tuple[str | None, tuple[str, ...], str]:
    """--name, --tag and --note as a run keeps them; a bad one is refused naming its flag."""
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


def add_train_parsers(sub) -> None:
    run = sub.add_parser("run", help="train one configuration over several rounds")
    run.add_argument("--preset", help="a preset name (see 'digit-workbench presets') or a .toml file")
    add_config_flags(run)
    add_engine_flags(run)

    table = sub.add_parser("table", help="run several presets and print the comparison (default: Table II)")
    table.add_argument("presets", nargs="*", help="preset names (default: all eight rows of Table II)")
    add_config_flags(table)
    add_engine_flags(table)
