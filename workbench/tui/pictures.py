"""Pictures made of characters: a 10 x 10 heatmap by digit pair, a confusion matrix, and 14 x 14 digits drawn in
half blocks (two pixel rows per text row)."""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text

from workbench.analysis.predictions import PairView
from workbench.format import plain
from workbench.paper.verdict import says_first_le_second


def shade(value: float, top: float) -> str:
    """A background from pale (0) to deep red (top); grey for no data."""
    if not math.isfinite(value):
        return "on rgb(60,60,60)"
    t = 0.0 if top <= 0 else min(max(value / top, 0.0), 1.0)
    r, g, b = int(250 - 70 * t), int(240 - 210 * t), int(200 - 170 * t)
    return f"on rgb({r},{g},{b})"


def diverging(value: float, top: float) -> str:
    """Blue where the first is lower, red where higher, pale at 0."""
    if not math.isfinite(value):
        return "on rgb(60,60,60)"
    t = 0.0 if top <= 0 else min(abs(value) / top, 1.0)
    if value >= 0:
        return f"on rgb({int(245 - 20 * t)},{int(240 - 190 * t)},{int(235 - 190 * t)})"
    return f"on rgb({int(240 - 190 * t)},{int(240 - 130 * t)},{int(245 - 20 * t)})"


def grid_text(values: np.ndarray, title: str, top: float | None = None, signed: bool = False,
              row_label: str = "first", column_label: str = "second", fmt: str = "{:3.0f}") -> Text:
    """A 10 x 10 grid of numbers on coloured cells, digits along both edges."""
    finite = values[np.isfinite(values)]
    top = top if top is not None else (float(np.abs(finite).max()) if finite.size else 1.0)
    text = Text(f"{plain(title)}\n", style="bold")
    text.append(f"{row_label} ↓  {column_label} →\n", style="dim")
    text.append("   " + "".join(f"{d:>4}" for d in range(10)) + "\n", style="dim")
    for i in range(10):
        text.append(f"{i:>3}", style="dim")
        for j in range(10):
            value = values[i, j]
            cell = "  · " if not math.isfinite(value) else " " + fmt.format(value)
            style = diverging(value, top) if signed else shade(value, top)
            text.append(cell, style=f"black {style}")
        text.append("\n")
    return text


def digit_rows(image: np.ndarray) -> list[Text]:
    """A 14 x 14 digit (0..255) as 7 rows of 14 half blocks: the upper pixel in the foreground, the lower behind."""
    rows = []
    for y in range(0, image.shape[0], 2):
        row = Text()
        for x in range(image.shape[1]):
            top = int(image[y, x])
            bottom = int(image[y + 1, x]) if y + 1 < image.shape[0] else 0
            row.append("▀", style=f"rgb({top},{top},{top}) on rgb({bottom},{bottom},{bottom})")
        rows.append(row)
    return rows


def weight_colour(value: float, top: float) -> str:
    """A weight on a diverging scale: red positive, blue negative, near black at 0 (the digits' background)."""
    t = 0.0 if top <= 0 else min(abs(value) / top, 1.0)
    strong = int(40 + 215 * t)
    return f"rgb({strong},40,40)" if value >= 0 else f"rgb(40,{int(40 + 120 * t)},{strong})"


def weight_rows(picture: np.ndarray, top: float, cell: int = 1) -> list[Text]:
    """Weights (h, w) as rows of half blocks (two weight rows per text row); a small filter (K x K) as cells of
    `cell` characters, a weight a text row, so that a 3x3 filter is still seen."""
    rows = []
    if cell > 1:
        for y in range(picture.shape[0]):
            row = Text()
            for x in range(picture.shape[1]):
                row.append(" " * cell, style=f"on {weight_colour(float(picture[y, x]), top)}")
            rows.append(row)
        return rows
    for y in range(0, picture.shape[0], 2):
        row = Text()
        for x in range(picture.shape[1]):
            upper = weight_colour(float(picture[y, x]), top)
            lower = weight_colour(float(picture[y + 1, x]), top) if y + 1 < picture.shape[0] else "rgb(0,0,0)"
            row.append("▀", style=f"{upper} on {lower}")
        rows.append(row)
    return rows


def weights_picture(sides: list[tuple[str, np.ndarray]], per_row: int, shown: int) -> Text:
    """Each side's first `shown` units or filters in rows of `per_row`, on one colour scale (± the largest
    |weight| shown), numbered."""
    text = Text()
    for label, pictures in sides:
        pictures = pictures[:shown]
        top = float(np.abs(pictures).max()) or 1.0
        small = pictures.shape[1] <= 7
        cell = 2 if small else 1
        width = pictures.shape[2] * cell
        kind = "filters" if small else "units"
        text.append(f"{plain(label)}: {len(pictures)} of its {kind}, ±{top:.3g} (red +, blue −)\n", style="bold")
        for start in range(0, len(pictures), per_row):
            group = pictures[start:start + per_row]
            text.append("".join(f"{start + i:<{width + 1}}" for i in range(len(group))) + "\n", style="dim")
            drawn = [weight_rows(p, top, cell) for p in group]
            for lines in zip(*drawn):
                for line in lines:
                    text.append_text(line)
                    text.append(" ")
                text.append("\n")
        text.append("\n")
    return text


def pair_picture(view: PairView) -> Text:
    """Both digits of a pair side by side, with what they are, the target and the predicted probability."""
    left, right = digit_rows(view.images[0]), digit_rows(view.images[1])
    text = Text()
    for a, b in zip(left, right):
        text.append_text(a)
        text.append(" ")
        text.append_text(b)
        text.append("\n")
    wrong = bool(says_first_le_second(view.prob, probability=True)) != bool(view.target)
    text.append(f"{view.digits[0]} vs {view.digits[1]}  target {view.target}\n", style="bold")
    text.append(f"P(≤) {view.prob:.2f}", style="red" if wrong else "green")
    text.append(f"  r{view.round} #{view.pair}", style="dim")
    return text
