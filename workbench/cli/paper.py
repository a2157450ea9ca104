"""`digit-workbench presets` and `data`: the paper's rows as presets, and the digit sources."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from workbench.cli.report import console, text
from workbench.cli.usage import DATA_DIR_HELP, Parser, UsageError, add_data_flags, data_flag
from workbench.format import mark, setting, weights_label
from workbench.paper.architecture import weight_count
from workbench.paper.config import FIELDS, ConfigError
from workbench.paper.presets import load_presets
from workbench.paper.sources import DataError, describe_source, mnist_root, source_kind


def cmd_presets(args: argparse.Namespace) -> int:
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
    if args.data_command == "download":
        from workbench.paper.data import download_mnist

        root = mnist_root(args.data_dir)
        try:
            source = download_mnist(root)
        except DataError as exc:
            print(f"digit-workbench: {exc}", file=sys.stderr)
            return 1
        print(f"MNIST ready: {source.name}")
        return 0
    if args.data_command == "info":  # from the files' headers: no torch, no tensors
        with data_flag(args.data_dir):
            print(describe_source(source_kind(args.data, args.data_dir), args.data_dir))
        return 0
    raise UsageError("digit-workbench data: choose 'download' or 'info'")


def add_presets_parser(sub) -> None:
    sub.add_parser("presets", help="list the presets with the paper's scores",
                   description="Every preset (a row of the paper's tables, or beyond the paper), its settings and the "
                               "paper's score. `run --preset NAME` trains one; `table NAME...` several.")


def add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="the digit sources")
    data_sub = data.add_subparsers(dest="data_command", parser_class=Parser)
    download = data_sub.add_parser("download", help="download full MNIST (needs the network)")
    download.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    info = data_sub.add_parser("info", help="which digits a run would use")
    add_data_flags(info)
