"""The playground: two 14x14 canvases to draw a pair on with the mouse, and, as you draw, what a run's network
answers: P(first ≤ second) and, with the auxiliary loss, each digit head's ten probabilities; a second run
answers beside it (with and without weight sharing on the same drawing, say).

Left button draws, right button erases, `c` clears, `r` fills both canvases with one of the run's recorded test
pairs to edit, `[` `]` change the round whose network answers. `predict RUN A.png B.png` gives the same numbers
headless.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Static

from workbench.analysis.networks import load_network
from workbench.analysis.predict import answer
from workbench.analysis.predictions import PredictionsUnreadable, load_predictions
from workbench.format import plain
from workbench.records.store import RunSummary
from workbench.records.weights import WeightsUnreadable, kept_rounds
from workbench.tui.text import markup

SIDE = 14  # the pooled digit the networks read
INK, HALO = 255.0, 150.0  # a stroke's centre and its four neighbours, about MNIST's stroke width once pooled


class DigitCanvas(Widget, can_focus=True):
    """A 14x14 digit, two characters to a pixel; the mouse draws (left) and erases (right)."""

    DEFAULT_CSS = "DigitCanvas { width: 30; height: 16; border: round $primary; }"

    class Changed(Message):
        pass

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pixels = np.zeros((SIDE, SIDE), np.float32)
        self.border_title = title
        self.pen: int | None = None  # the button held down: 1 draws, 3 erases

    def render(self) -> Text:
        text = Text()
        for y in range(SIDE):
            for x in range(SIDE):
                level = int(self.pixels[y, x])
                text.append("  ", style=f"on rgb({level},{level},{level})")
            if y < SIDE - 1:
                text.append("\n")
        return text

    def set_pixels(self, pixels: np.ndarray) -> None:
        self.pixels = np.clip(pixels.astype(np.float32), 0, 255)
        self.refresh()
        self.post_message(self.Changed())

    def stroke(self, x: int, y: int, erase: bool) -> None:
        """Ink (or erase) the pixel under the pointer and, more lightly, its four neighbours."""
        px, py = x // 2, y
        if not (0 <= px < SIDE and 0 <= py < SIDE):
            return
        for dx, dy, level in ((0, 0, INK), (1, 0, HALO), (-1, 0, HALO), (0, 1, HALO), (0, -1, HALO)):
            qx, qy = px + dx, py + dy
            if 0 <= qx < SIDE and 0 <= qy < SIDE:
                self.pixels[qy, qx] = 0.0 if erase else max(self.pixels[qy, qx], level)
        self.refresh()
        self.post_message(self.Changed())

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.pen = event.button
        self.capture_mouse()
        self.stroke(event.x, event.y, event.button == 3)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self.pen is not None:
            self.stroke(event.x, event.y, self.pen == 3)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self.pen = None
        self.release_mouse()


class PlaygroundScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("c", "clear", "Clear"),
                Binding("r", "random_pair", "A test pair"),
                Binding("left_square_bracket", "round(-1)", "Previous round"),
                Binding("right_square_bracket", "round(1)", "Next round")]

    def __init__(self, runs: list[RunSummary]) -> None:
        super().__init__()
        self.runs = runs[:2]
        self.round_at = 0
        self.nets: list = []
        self.kept: list[list[int] | str] = []
        self.pair_index = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="play-note")
        with Horizontal(id="play-body"):
            with Vertical(id="play-canvases"):
                yield DigitCanvas("first digit", id="play-first")
                yield DigitCanvas("second digit", id="play-second")
            with Horizontal(id="play-answers"):
                for i, _ in enumerate(self.runs):
                    yield Static("", id=f"play-answer-{i}", classes="play-answer")
        yield Footer(show_command_palette=False)  # the palette is a key in the list: its own item sat over them

    def on_mount(self) -> None:
        self.title = "Playground"
        self.kept = [self.kept_of(s) for s in self.runs]
        self.load_networks()
        self.query_one("#play-first", DigitCanvas).focus()

    @staticmethod
    def kept_of(summary) -> list[int] | str:
        """The rounds a run keeps, or why its weights cannot be read."""
        try:
            return kept_rounds(summary.path)
        except WeightsUnreadable as exc:
            return str(exc)

    def load_networks(self) -> None:
        self.nets = []
        for summary, kept in zip(self.runs, self.kept):
            if isinstance(kept, str):
                self.nets.append(kept)
                continue
            if not kept:
                self.nets.append("no networks kept for this run (trained before weights were kept, or with "
                                 "--weights none)")
                continue
            round_index = kept[self.round_at % len(kept)]
            try:
                self.nets.append((round_index, load_network(summary, round_index)))
            except WeightsUnreadable as exc:
                self.nets.append(str(exc))
        self.query_one("#play-note", Static).update(
            "draw a digit in each box: left button draws, right erases (keys below)")
        self.answer()

    SHORT = 38  # rows: below this the canvases sit side by side and each answer is a few lines under them

    def on_resize(self, event) -> None:
        short = self.size.height < self.SHORT
        if short != self.has_class("-short"):
            self.set_class(short, "-short")
            self.answer()

    def on_digit_canvas_changed(self, message: DigitCanvas.Changed) -> None:
        self.answer()

    def answer(self) -> None:
        first = self.query_one("#play-first", DigitCanvas).pixels
        second = self.query_one("#play-second", DigitCanvas).pixels
        for i, (summary, net) in enumerate(zip(self.runs, self.nets)):
            panel = self.query_one(f"#play-answer-{i}", Static)
            if isinstance(net, str):
                panel.update(Text.assemble((plain(summary.name) + "\n", "bold"), markup_free(net)))
                continue
            round_index, model = net
            panel.update(answer_text(summary, round_index, answer(model, first, second), self.has_class("-short")))

    def action_clear(self) -> None:
        for canvas in self.query(DigitCanvas):
            canvas.set_pixels(np.zeros((SIDE, SIDE)))

    def action_random_pair(self) -> None:
        """One of the run's recorded test pairs (the kept images), the next each time."""
        try:
            predictions = load_predictions(self.runs[0].path)
        except PredictionsUnreadable as exc:
            self.notify(markup(str(exc)), severity="warning")
            return
        if predictions is None or not len(predictions.images):
            self.notify("this run recorded no test pairs to draw from", severity="warning")
            return
        pair = predictions.images[self.pair_index % len(predictions.images)]
        self.pair_index += 1
        self.query_one("#play-first", DigitCanvas).set_pixels(pair[0])
        self.query_one("#play-second", DigitCanvas).set_pixels(pair[1])

    def action_round(self, step: int) -> None:
        self.round_at += step
        self.load_networks()


def markup_free(text: str) -> Text:
    return Text(plain(text))


def bar(p: float, width: int = 20) -> str:
    filled = int(round(p * width))
    return "█" * filled + "·" * (width - filled)


def answer_text(summary: RunSummary, round_index: int, said, short: bool = False) -> Text:
    """A run's answer: P(first ≤ second) with a bar, then each head's ten probabilities as bars (`short`: its three
    likeliest digits on one line)."""
    text = Text(plain(summary.name), style="bold")
    text.append((" · " if short else "\n") + f"round {round_index} · {summary.id[-6:]}\n" + ("" if short else "\n"),
                style="dim")
    text.append(f"P(first ≤ second) {said.p_le:5.3f}" + (f" {bar(said.p_le, 10)}\n" if short else "\n"),
                style="bold")
    if not short:
        text.append(f"{bar(said.p_le, 30)}  {said.verdict}\n\n")
    if said.heads is None:
        text.append(said.NO_HEADS, style="dim")
        return text
    if short:
        for side, probs in zip(("first", "second"), said.heads):
            likeliest = np.argsort(-probs)[:3]
            text.append(f"{side}: " + ", ".join(f"{d} ({probs[d]:.2f})" for d in likeliest) + "\n")
        return text
    for side, best, probs in said.sides():
        text.append(said.side_text(side, best, probs) + "\n", style="bold")
        for digit, p in enumerate(probs):
            text.append(f"  {digit} {bar(float(p))} {p:4.2f}\n", style="green" if digit == best else "")
    return text
