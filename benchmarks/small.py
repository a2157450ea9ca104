"""What every benchmark's `--small` mode shares: the same code on a run small enough for the test suite
(tests/test_benchmarks.py runs each one), writing where results/ is not, so that a benchmark cannot rot unseen and
its small run never replaces a measured figure."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SMALL_RUN = {"epochs": 1, "rounds": 2, "pairs": 100}  # a few seconds of training, every code path taken


def add_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--small", action="store_true",
                        help="a run of seconds, written to a temporary folder: what the test suite runs")


def shrink(config, small: bool):
    """The config as measured, or as small as a run gets."""
    return config.replace(**SMALL_RUN) if small else config


def out_path(small: bool, out: Path | None, default: Path) -> Path:
    """Where a benchmark writes: the --out given, else its results file; a small run's goes to a temporary folder."""
    if out is not None:
        return out
    return Path(tempfile.mkdtemp(prefix="wb-small-")) / default.name if small else default


def small_spec() -> Path:
    """The test suite's tiny sweep spec (two stages, six trials of seconds each), in a temporary folder."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from sweep_specs import tiny_spec_text

    path = Path(tempfile.mkdtemp(prefix="wb-small-")) / "small.toml"
    path.write_text(tiny_spec_text(title="small"))
    return path
