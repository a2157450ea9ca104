"""A run's details: per-round accuracies, its curves, its full config, and loading it into the form."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from workbench.analysis.curves import Curves
from workbench.analysis.networks import first_layer
from workbench.analysis.predictions import (PredictionsUnreadable, digit_confusion, error_grid, error_rate,
                                            load_predictions, misclassified, per_digit_accuracy, samples)
from workbench.format import duration, pct, percent, provenance_text, score_line, setting, weights_label
from workbench.paper.architecture import weight_count
from workbench.paper.config import FIELDS
from workbench.records.layout import RESUME_FILE
from workbench.records.notebook import annotate
from workbench.records.store import RunSummary, read_history
from workbench.records.weights import WeightsUnreadable, kept_rounds
from workbench.tui.confirm import NotesDialog
from workbench.tui.live import draw_curves
from workbench.tui.messages import RunUpdated
from workbench.tui.pictures import grid_text, pair_picture, weights_picture
from workbench.tui.text import markup


def notes_text(s: RunSummary) -> str:
    continues = f" · [dim]continues {markup(s.continues)}[/dim]" if s.continues else ""
    kept = s.status == "cancelled" and s.path is not None and (s.path / RESUME_FILE).exists()
    resumable = " · [dim]g resumes it[/dim]" if kept else ""
    if not s.tags and not s.note:
        return "[dim]no tags or note: t adds them[/dim]" + continues + resumable
    return ("tags: " + (markup(", ".join(s.tags)) or "—") + (f" · note: {markup(s.note)}" if s.note else "")
            + continues + resumable)


class RunDetails(ModalScreen[str | None]):
    """Dismissed with "load" when the user wants this run's config in the form."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close"), Binding("l", "load", "Load into form"),
                Binding("c", "tab('d-curves')", "Curves"), Binding("e", "tab('d-errors')", "Errors"),
                Binding("m", "tab('d-wrong')", "Misclassified"), Binding("d", "tab('d-data')", "Data"),
                Binding("w", "tab('d-learned')", "What it learned"),
                Binding("i", "learned_change", "Weights / change", show=False),
                Binding("t", "notes", "Name, tags, note"), Binding("p", "playground", "Playground"),
                Binding("g", "resume", "Resume", show=False),
                Binding("left_square_bracket", "data_round(-1)", "Previous round", show=False),
                Binding("right_square_bracket", "data_round(1)", "Next round", show=False)]

    def __init__(self, summary: RunSummary) -> None:
        super().__init__()
        self.summary = summary
        self.predictions = None
        self.data_round = 0

    def action_notes(self) -> None:
        self.app.push_screen(NotesDialog(self.summary.name, self.summary.tags, self.summary.note), self.save_notes)

    def save_notes(self, answer: tuple[str, list[str], str] | None) -> None:
        """The record rewritten with the new name, tags and note; the results table's row follows."""
        if answer is None:
            return
        name, tags, note = answer
        try:
            updated = annotate(self.summary, tags, note, name)
        except OSError as exc:
            self.notify(markup(f"cannot save the name, tags and note: {exc.strerror or exc}"), severity="error")
            return
        self.summary = updated
        self.query_one("#details-notes", Static).update(notes_text(updated))
        self.query_one("#details-title", Label).update(self.title_text())
        self.app.post_message(RunUpdated(updated))

    def title_text(self) -> str:
        s = self.summary
        return f"[b]{markup(s.name)}[/b] · {markup(s.status)}" + (f": {markup(s.reason)}" if s.reason else "")

    def compose(self) -> ComposeResult:
        s = self.summary
        with Vertical(id="details"):
            yield Label(self.title_text(), id="details-title")
            yield Static(
                score_line(s, detail=True) + f" · {duration(s.wall_time)} · {s.device} · {s.engine} engine\n"
                + f"digits: {s.data_source} · run {s.id} · {weights_label(weight_count(s.config))} weights"
                + (f"\nmade by {markup(provenance_text(s))}" if provenance_text(s) else ""),
                id="details-summary")
            yield Static(notes_text(s), id="details-notes")
            with TabbedContent(id="details-tabs", initial="d-curves"):
                with TabPane("Curves (c)", id="d-curves"):
                    with Horizontal(id="details-body"):
                        with VerticalScroll(id="details-left"):
                            yield DataTable(id="details-rounds", cursor_type="none", zebra_stripes=True)
                            yield Static(self.config_text(), id="details-config")
                        with Vertical(id="details-plots"):
                            yield PlotextPlot(id="details-loss")
                            yield PlotextPlot(id="details-acc")
                with TabPane("Errors (e)", id="d-errors"):
                    with HorizontalScroll(id="errors-body"):
                        yield Static("", id="errors-heatmap", classes="picture")
                        yield Static("", id="errors-confusion", classes="picture")
                with TabPane("Misclassified (m)", id="d-wrong"):
                    yield Static("", id="wrong-note")
                    yield VerticalScroll(id="wrong-gallery", classes="gallery")
                with TabPane("Data (d)", id="d-data"):
                    yield Static("", id="data-note")
                    yield VerticalScroll(id="data-gallery", classes="gallery")
                with TabPane("Learned (w)", id="d-learned"):
                    yield Static("", id="learned-note")
                    with VerticalScroll(id="learned-body"):
                        yield Static("", id="learned-picture")
            with Horizontal(id="details-buttons"):
                yield Button("Load into form (l)", id="load", variant="primary", compact=True)
                yield Button("Close (esc)", id="close", compact=True)

    def config_text(self) -> str:
        cfg = self.summary.config.to_dict()
        return "\n".join(f"{FIELDS[k].label:<15} {setting(v)}" for k, v in cfg.items())

    def on_mount(self) -> None:
        table = self.query_one("#details-rounds", DataTable)
        table.add_columns("round", "test %", "train %", "digits %", "loss", "epochs", "status")
        for r in self.summary.rounds:
            table.add_row(r.get("round"), pct(r.get("test_acc")), pct(r.get("train_acc")), pct(r.get("digit_acc")),
                          "—" if r.get("train_loss") is None else f"{r['train_loss']:.4f}", r.get("epochs", ""),
                          r.get("status", ""))
        history, problem = read_history(self.summary)
        if problem:  # said here: the details are where a user looks at one run
            self.notify(markup(problem), severity="warning")
        draw_curves(self.query_one("#details-loss", PlotextPlot), self.query_one("#details-acc", PlotextPlot),
                    Curves.of(history))
        self.show_predictions()

    def show_predictions(self) -> None:
        """The errors views, from the run's recorded test predictions."""
        try:
            self.predictions = load_predictions(self.summary.path)
        except PredictionsUnreadable as exc:
            self.notify(markup(exc), severity="warning")
        p = self.predictions
        if p is None:
            missing = "no test predictions recorded for this run (a cancelled or failed run, or an older record)"
            for widget in ("#errors-heatmap", "#wrong-note", "#data-note"):
                self.query_one(widget, Static).update(missing)
            return
        errors, counts = error_grid(p)
        rounds = len(p.rounds)
        self.query_one("#errors-heatmap", Static).update(grid_text(
            percent(error_rate(errors, counts)),
            f"error % by digit pair, {int(counts.sum())} test pairs of {rounds} round{'s' if rounds > 1 else ''}"))
        confusion = digit_confusion(p)
        if confusion is None:
            self.query_one("#errors-confusion", Static).update(
                "no auxiliary loss: the digit heads are untrained, so there is no digit confusion to show")
        else:
            text = grid_text(confusion.astype(float), "auxiliary heads: true digit ↓ vs predicted →",
                             top=float(np.sort(confusion, axis=None)[-11] or 1), row_label="true",
                             column_label="predicted", fmt="{:3.0f}")
            accuracy = percent(per_digit_accuracy(confusion))
            text.append("\nper-digit accuracy %\n", style="bold")
            # two rows of five: as wide as the grid above, so no digit is cut at 120 columns
            text.append("\n".join("  ".join(f"{d}: {accuracy[d]:5.1f}" for d in range(row, row + 5)) for row in (0, 5)))
            self.query_one("#errors-confusion", Static).update(text)
        wrong = misclassified(p)
        self.query_one("#wrong-note", Static).update(
            f"{int(p.wrong.sum())} misclassified test pairs over {rounds} rounds; the {len(wrong)} kept as images, "
            "most confidently wrong first (P(≤) is the net's probability that the first digit is ≤ the second)")
        self.fill_gallery("#wrong-gallery", wrong)
        self.show_data_round()

    def show_data_round(self) -> None:
        p = self.predictions
        if p is None:
            return
        self.data_round %= len(p.rounds)
        views = samples(p, self.data_round)
        self.query_one("#data-note", Static).update(
            f"round {int(p.rounds[self.data_round])}: its first {len(views)} test pairs with their targets "
            "(target 1: the first digit ≤ the second) · \\[ and ] change the round")
        self.fill_gallery("#data-gallery", views)

    def fill_gallery(self, selector: str, views) -> None:
        gallery = self.query_one(selector, VerticalScroll)
        gallery.remove_children()
        gallery.mount_all([Static(pair_picture(v), classes="pair") for v in views])

    def action_tab(self, tab: str) -> None:
        self.query_one("#details-tabs", TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "d-learned":  # read from the weights file only when asked: it can be tens of MB
            self.show_learned()

    def action_data_round(self, step: int) -> None:
        self.data_round += step
        self.show_data_round()
        if self.query_one("#details-tabs", TabbedContent).active == "d-learned":
            self.show_learned()

    learned_change = False  # the Learned tab: the weights, or what training changed (the weights less their start)

    def action_learned_change(self) -> None:
        self.learned_change = not self.learned_change
        self.query_one("#details-tabs", TabbedContent).active = "d-learned"
        self.show_learned()

    def show_learned(self) -> None:
        """The first layer of a kept round's network: what its units or filters look at."""
        note, picture = self.query_one("#learned-note", Static), self.query_one("#learned-picture", Static)
        try:
            kept = kept_rounds(self.summary.path)
        except WeightsUnreadable as exc:
            note.update(markup(str(exc)))
            picture.update("")
            return
        if not kept:
            note.update("no networks kept for this run (trained before weights were kept, with --weights none, or "
                        "cancelled or failed)")
            picture.update("")
            return
        round_index = kept[self.data_round % len(kept)]
        try:
            sides = first_layer(self.summary, round_index, self.learned_change)
        except WeightsUnreadable as exc:
            note.update(markup(str(exc)))
            picture.update("")
            return
        cnn = self.summary.config.subnet == "cnn"
        width = sides[0][1].shape[2] * (2 if cnn else 1) + 1
        per_row = max(1, (self.size.width - 8) // width)
        what = "what training changed in" if self.learned_change else "the weights of"
        note.update(f"round {round_index}: {what} the first layer's {'filters' if cnn else 'units'} (red +, blue −; "
                    "i: weights / change)"
                    + (f" · \\[ and ] change the round ({len(kept)} kept)" if len(kept) > 1 else ""))
        picture.update(weights_picture(sides, per_row, shown=64 if cnn else 4 * per_row))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss("load" if event.button.id == "load" else None)

    def action_load(self) -> None:
        self.dismiss("load")

    def action_playground(self) -> None:
        self.dismiss("playground")

    def action_resume(self) -> None:
        self.dismiss("resume")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
