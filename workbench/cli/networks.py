"""The commands over a run's kept networks: `predict` (a pair of the user's own digits) and `resume` (train it on
from where it stopped)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.analysis.networks import load_network
from workbench.analysis.predict import DigitImageError, answer, digit_from_image
from workbench.cli.train import run_and_report
from workbench.cli.usage import UsageError, add_data_flags, records_dir
from workbench.format import plain
from workbench.records.checkpoint import ResumeUnreadable
from workbench.records.folder import unfinished
from workbench.records.notebook import pick_runs
from workbench.records.store import load_runs
from workbench.records.weights import WeightsUnreadable
from workbench.training.continuing import continuation_of


def add_networks_parsers(sub, runs_dir_help: str) -> None:
    predict = sub.add_parser("predict", help="a run's network on two digit pictures of your own: P(first <= second) "
                                             "and each digit head's ten probabilities")
    predict.add_argument("run", metavar="RUN", help="a run id (or its start or end), name or preset: its latest run")
    predict.add_argument("first", type=Path, metavar="A.png", help="the first digit (any size; light or dark paper)")
    predict.add_argument("second", type=Path, metavar="B.png", help="the second digit")
    predict.add_argument("--round", type=int, default=0, help="which round's network (default 0)")
    predict.add_argument("--json", action="store_true", help="print the numbers as JSON")
    predict.add_argument("--runs-dir", type=Path, default=None, help=runs_dir_help)

    resume = sub.add_parser("resume", help="continue a cancelled or killed run to its planned epochs, or extend a "
                                           "done run by more epochs (as a new run)")
    resume.add_argument("run", metavar="RUN", help="a run id (or its start or end), name or preset: its latest run; "
                                                   "or the id of a run a killed process left")
    resume.add_argument("--epochs", type=int, default=None, help="train to this many epochs (a done run: more than "
                                                                 "it has, as a new run)")

    add_data_flags(resume)
    resume.add_argument("--runs-dir", type=Path, default=None, help=runs_dir_help)
    resume.add_argument("--track", default=None, metavar="URI", help="also send the run to this MLflow store")


def cmd_resume(args: argparse.Namespace) -> int:
    """Trains on from the run's kept state, on the engine it used, with the same digits; numbers as if it had
    never stopped (training/continuing.py)."""
    args.runs_dir = records_dir(args.runs_dir)
    try:
        run, engine, digits = continuation_of(args.run, args.runs_dir, args.epochs)
    except (LookupError, ResumeUnreadable) as exc:
        raise UsageError(str(exc) if str(exc).startswith("--") else f"RUN: {exc}") from None
    args.engine, args.no_save = engine, False
    return run_and_report([run], args, digits)


def cmd_predict(args: argparse.Namespace) -> int:
    try:
        digits = [digit_from_image(args.first), digit_from_image(args.second)]
    except DigitImageError as exc:
        raise UsageError(f"A.png/B.png: {exc}") from None
    root = records_dir(args.runs_dir)
    summaries, problems = load_runs(root)
    for problem in problems:
        print(f"digit-workbench: skipped {plain(problem)}", file=sys.stderr)
    try:
        (summary,) = pick_runs([args.run], summaries)
        net = load_network(summary, args.round)
    except LookupError as exc:
        writing = unfinished(root, args.run)
        if writing:  # a run being written has no summary yet: it is no run until it has
            raise UsageError(f"RUN: {writing[0].name} is still being written (or was stopped before its record was "
                             "whole): it has no networks to open yet") from None
        raise UsageError(f"RUN: {exc}") from None
    except WeightsUnreadable as exc:
        raise UsageError(f"RUN: {exc}") from None
    said = answer(net, *digits)
    if args.json:
        print(json.dumps({"run": summary.id, "name": summary.name, "round": args.round, "p_first_le_second": said.p_le,
                          "heads": None if said.heads is None else [h.tolist() for h in said.heads]}))
        return 0
    print(plain(f"{summary.name} ({summary.id}, round {args.round})"))
    print(f"P(first ≤ second) = {said.p_le:.3f}: {said.verdict}")
    for side, best, probs in said.sides():
        print(said.side_text(side, best, probs) + "   " + "  ".join(f"{d} {p:.2f}" for d, p in enumerate(probs)))
    if said.heads is None:
        print(f"({said.NO_HEADS})")
    return 0
