"""Headless reporting with rich: a progress bar over rounds x epochs and the comparison table."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from rich import box
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from workbench.analysis.importance import label
from workbench.format import (COMPARISON_COLUMNS, STATUS_STYLE, StepRate, comparison_cells, mean_std_label, pct, plain,
                              result_cells)
from workbench.paper.config import RunConfig
from workbench.procs import handling

PIPED_WIDTH = 200  # columns of output that goes to a file or a pipe: wide enough that no name or cell is folded


def console() -> Console:
    """The commands' console: a terminal's own width, else (a pipe, a file) PIPED_WIDTH unless COLUMNS says."""
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(width=PIPED_WIDTH if piped else None)


def text(value, style: str = "") -> Text:
    """A cell or a line part that a user or a file gave: plain text, never markup, no control character."""
    return Text(plain(value), style=style)


def results_table(summaries, title: str = "Results") -> Table:
    """Ours beside the paper's, mean ± std over rounds, in accuracy points."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0),
                  caption="ours: test accuracy in %, mean ± std over rounds; Δ = ours − paper, points; "
                          "train time: the run's share of the training (runs stacked together share one clock)",
                  caption_justify="left")
    table.add_column("run", overflow="fold", min_width=14)
    table.add_column("net", no_wrap=True)
    table.add_column("WS aux", justify="center", no_wrap=True)
    table.add_column("α", justify="right", no_wrap=True)
    table.add_column("ours", justify="right", no_wrap=True)
    table.add_column("paper", justify="right", no_wrap=True)
    table.add_column("Δ", justify="right", no_wrap=True)
    table.add_column("train time", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for s in summaries:
        row = result_cells(s)
        table.add_row(text(row["name"]), row["net"], f"{row['ws']}   {row['aux']}", row["alpha"], row["ours"],
                      row["paper"], row["diff"], row["train time"], text(row["status"], STATUS_STYLE.get(s.status, "")))
    return table


class TimeLeftColumn(ProgressColumn):
    def render(self, task) -> Text:
        rate: StepRate | None = task.fields.get("rate")
        if task.finished or rate is None:
            return Text("")
        return Text(rate.left_text(), style="progress.remaining")


PROGRESS_LINE_S = 10.0  # without a terminal: a progress line at least this often, besides each round's end


class ProgressDisplay:
    """One bar per run over rounds x epochs. The first Ctrl-C or SIGTERM cancels the runs (their records are
    kept), a second exits at once."""

    def __init__(self, console: Console, names: list[str], configs: list[RunConfig]):
        self.cancel = threading.Event()
        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[acc]}"), TimeElapsedColumn(), TimeLeftColumn(),
                                 console=console, transient=False)
        self.rates = [StepRate(c.rounds * c.epochs) for c in configs]
        self.tasks = [self.progress.add_task(plain(name), total=c.rounds * c.epochs, acc="", rate=rate)
                      for name, c, rate in zip(names, configs, self.rates)]
        # output that is no terminal (a file, a pipe, CI's log) sees no bars: a line per round, and every few seconds
        self.lines = not console.is_terminal
        self.names, self.configs = [plain(n) for n in names], configs
        self.said_at = time.monotonic()

    def on_epoch(self, rec) -> None:
        task = self.tasks[rec.run]
        self.progress.update(task, advance=1, acc=f"round {rec.round + 1} epoch {rec.epoch}: test {pct(rec.test_acc):>5}%")
        self.rates[rec.run].update(int(self.progress.tasks[task].completed))
        if self.lines:
            self.say(rec)

    def say(self, rec) -> None:
        config, now = self.configs[rec.run], time.monotonic()
        ended = rec.epoch == config.epochs
        if not ended and now - self.said_at < PROGRESS_LINE_S:
            return
        self.said_at = now
        done = int(self.progress.tasks[self.tasks[rec.run]].completed)
        what = "done" if ended else f"epoch {rec.epoch} of {config.epochs}"
        self.progress.console.print(
            f"{self.names[rec.run]}: round {rec.round + 1} of {config.rounds} {what}, test {pct(rec.test_acc)}% · "
            f"{done}/{config.rounds * config.epochs} epochs · {self.rates[rec.run].left_text()}",
            markup=False, highlight=False, soft_wrap=True)

    def _interrupt(self, signum, frame) -> None:
        if self.cancel.is_set():
            raise KeyboardInterrupt
        self.cancel.set()
        what = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        self.progress.console.print(f"[yellow]{what}: cancelling, the records are kept… ({what} again quits at once)[/]")

    def signals(self):
        """The first Ctrl-C or SIGTERM cancels, a second quits at once: from the command's first moment (loading
        the digits, importing torch) to its last record written, not only while the bars show."""
        return handling((signal.SIGINT, signal.SIGTERM), self._interrupt)

    def __enter__(self) -> ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)


def comparison_table(runs, comparisons) -> Table:
    """The runs, then every pair: a − b with its interval, p and rounds won."""
    table = Table(title="Paired comparison", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="round r of two runs with the same seed, digits and pairs sees the same pairs: paired "
                          "differences in points, 95 % t interval, paired t-test, rounds won; otherwise Welch's test, "
                          "unpaired. Holm p: p adjusted for every pair tested",
                  caption_justify="left")
    names, mean_col, *numbers, pairing = COMPARISON_COLUMNS
    table.add_column(names, overflow="fold", min_width=20)
    table.add_column(mean_col, justify="right", no_wrap=True)
    for col in numbers:
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column(pairing, overflow="fold")
    for c in comparisons:
        cells = [text(cell) for cell in comparison_cells(c)]
        p = c.p if c.p_holm is None else c.p_holm  # significant after Holm's correction, when several are tested
        if p is not None and p < 0.05 and c.mean_diff is not None:
            cells[1].stylize("green" if c.mean_diff > 0 else "red")
        table.add_row(*cells)
    sources = sorted({s.data_source for s in runs})
    runs_table = Table(box=box.SIMPLE_HEAD, pad_edge=False,
                       caption=text(f"digits: {sources[0]}") if len(sources) == 1 else None, caption_justify="left")
    runs_table.add_column("run", no_wrap=True)
    runs_table.add_column("id", no_wrap=True)
    for col in ("test acc %", "rounds", "seed", "pairs"):
        runs_table.add_column(col, justify="right", no_wrap=True)
    if len(sources) > 1:
        runs_table.add_column("digits", overflow="fold")
    for s in runs:
        runs_table.add_row(text(s.name), text(s.id), mean_std_label(s.mean, s.std), str(len(s.round_acc)), str(s.config.seed),
                           str(s.config.pairs), *([text(s.data_source)] if len(sources) > 1 else []))

    return Group(runs_table, table)


def importance_table(result, rows) -> Table:
    """Each setting's importance as a number and a bar, largest first."""
    table = Table(title=f"Which settings matter: {result.rows} done runs", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, caption="importance: each setting's share of the variance of the runs' final test "
                                          "accuracy (fANOVA, Optuna; the shares sum to 1)", caption_justify="left")
    table.add_column("setting", no_wrap=True)
    table.add_column("importance", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for key, value in result.settings:
        table.add_row(text(label(key)), f"{value:.2f}", "█" * round(value * 30))
    left_out = rows.left_out()
    if left_out:
        table.add_row(text(f"left out: {left_out}"), "", "", style="dim")
    return table
