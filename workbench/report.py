"""Headless reporting with rich: a progress bar over rounds x epochs and the comparison table."""

from __future__ import annotations

import signal
import threading

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .config import RunConfig
from .format import STATUS_STYLE, duration, mark, mean_std_label, paper_label, signed_points


def results_table(summaries, title: str = "Results") -> Table:
    """Ours beside the paper's, mean ± std over rounds, in accuracy points."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0),
                  caption="test accuracy in %, mean ± std over rounds; Δ = ours − paper, points", caption_justify="left")
    table.add_column("run", overflow="fold", min_width=14)
    table.add_column("net", no_wrap=True)
    table.add_column("WS aux", justify="center", no_wrap=True)
    table.add_column("α", justify="right", no_wrap=True)
    table.add_column("ours", justify="right", no_wrap=True)
    table.add_column("paper", justify="right", no_wrap=True)
    table.add_column("Δ", justify="right", no_wrap=True)
    table.add_column("wall", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for s in summaries:
        c = s.config
        style = STATUS_STYLE.get(s.status, "")
        table.add_row(
            s.name, c.subnet, f"{mark(c.weight_sharing)}   {mark(c.aux_loss)}",
            f"{c.alpha:g}" if c.aux_loss else "—", mean_std_label(s.mean, s.std),
            paper_label(s), signed_points(s.difference),
            duration(s.wall_time), f"[{style}]{s.status}[/]" if style else s.status)
    return table


class ProgressDisplay:
    """One bar per run over rounds x epochs. The first Ctrl-C cancels the run (records are kept), a second exits."""

    def __init__(self, console: Console, names: list[str], configs: list[RunConfig]):
        self.cancel = threading.Event()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[acc]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=console, transient=False)
        self.tasks = [self.progress.add_task(name, total=c.rounds * c.epochs, acc="") for name, c in zip(names, configs)]
        self._previous_handler = None

    def on_epoch(self, rec) -> None:
        self.progress.update(self.tasks[rec.run], advance=1, acc=f"test {rec.test_acc * 100:5.1f}%")

    def _interrupt(self, signum, frame) -> None:
        if self.cancel.is_set():
            raise KeyboardInterrupt
        self.cancel.set()
        self.progress.console.print("[yellow]cancelling… (Ctrl-C again to quit at once)[/]")

    def __enter__(self) -> ProgressDisplay:
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._interrupt)
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
