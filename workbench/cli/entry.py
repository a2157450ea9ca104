"""The digit-workbench command. With no arguments it opens the Textual app; subcommands run headless."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Sequence

from workbench.cli.compare import add_compare_parsers, cmd_compare, cmd_plot
from workbench.cli.networks import add_networks_parsers, cmd_predict, cmd_resume
from workbench.cli.paper import add_data_parser, add_presets_parser, cmd_data, cmd_presets
from workbench.cli.reproduce import add_report_parser, cmd_report
from workbench.cli.runs import add_export_parser, add_runs_parser, cmd_export, cmd_runs
from workbench.cli.sweep import add_sweep_parser, cmd_sweep
from workbench.cli.train import add_train_parsers, cmd_run, cmd_table
from workbench.cli.usage import EXIT_USAGE, RUNS_DIR_HELP, Parser, UsageError
from workbench.format import plain


def build_parser() -> Parser:
    parser = Parser(prog="digit-workbench", description=__doc__)
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    add_train_parsers(sub)
    add_presets_parser(sub)
    add_export_parser(sub)
    add_compare_parsers(sub, RUNS_DIR_HELP)
    add_report_parser(sub, RUNS_DIR_HELP)
    add_networks_parsers(sub, RUNS_DIR_HELP)
    add_sweep_parser(sub)
    add_runs_parser(sub, RUNS_DIR_HELP)
    add_data_parser(sub)
    return parser


class VersionAction(argparse.Action):
    """--version, looked up only when asked: reading the installed package's metadata costs every command 30 ms."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"digit-workbench {package_version()}")  # to stdout, as argparse's own action says it
        parser.exit()


def package_version() -> str:
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
                   "runs": cmd_runs, "resume": cmd_resume, "report": cmd_report}.get(args.command)
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
    from workbench.tui.app import run_app

    return run_app()


