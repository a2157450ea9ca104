"""A run's network answering a pair of the user's own digits (`digit-workbench predict RUN A.png B.png`).

An image becomes a digit the way MNIST made its digits, then the way the pairs pool them: grey levels, a light
background turned dark (MNIST draws white on black), the digit's box scaled to fit 20x20 and centred by its centre
of mass in 28x28, then 2x2 average pooling to 14x14, pixels 0..255 (data.pool).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.fsutil import read_input
from workbench.paper.verdict import verdict_text

IMAGE_LIMIT = 20 << 20  # bytes: a digit's picture, even a photograph, is smaller
MAX_SIDE = 4096  # pixels: a larger picture is refused before it is decoded


class DigitImageError(Exception):
    """An image that cannot be a digit, in one line naming the file."""


def digit_from_image(path: Path) -> np.ndarray:
    """A picture file as a pooled digit (14, 14) float32 in 0..255; DigitImageError when it cannot be read or
    holds no digit (blank, one grey, too small, not finite), rather than an answer about nothing."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = read_input(Path(path), IMAGE_LIMIT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a bomb is refused below by its size, a damaged file in our words
            with Image.open(io.BytesIO(data)) as image:
                if max(image.size) > MAX_SIDE:
                    raise DigitImageError(f"{path}: {image.size[0]}x{image.size[1]} pixels; at most {MAX_SIDE} a "
                                          "side")
                if image.mode in ("F", "I", "I;16"):  # numbers, not grey levels: NaN or infinity is no ink
                    values = np.asarray(image, dtype=np.float64)
                    if not np.isfinite(values).all():
                        raise DigitImageError(f"{path}: holds no digit (pixels that are not finite numbers)")
                grey = np.asarray(on_white(image), dtype=np.float32)
    except DigitImageError:
        raise
    except UnidentifiedImageError:
        raise DigitImageError(f"{path}: not an image (PNG, JPEG, … )") from None
    except OSError as exc:
        raise DigitImageError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except (ValueError, Image.DecompressionBombError) as exc:
        raise DigitImageError(f"{path}: cannot be read: {exc}") from None
    why = no_digit(grey)
    if why:
        raise DigitImageError(f"{path}: holds no digit ({why})")
    return pooled(mnist_like(grey))


def on_white(image):
    """Grey levels, what is transparent as white paper (a fully transparent picture is a blank page)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("L")
    return image.convert("L")


MIN_SIDE = 8  # pixels: an MNIST digit is 28; below 8 a side there is no stroke to read
MIN_CONTRAST = 32  # grey levels between paper and ink: less is a blank page, or noise


def no_digit(grey: np.ndarray) -> str:
    """Why grey levels hold no digit ('' when they may): too small, or one grey (blank, uniform)."""
    if min(grey.shape) < MIN_SIDE:
        return f"{grey.shape[1]}x{grey.shape[0]} pixels; a digit needs at least {MIN_SIDE} a side"
    if float(grey.max() - grey.min()) < MIN_CONTRAST:
        return f"every pixel is nearly the same grey ({grey.min():.0f}..{grey.max():.0f}): a blank picture"
    return ""


def mnist_like(grey: np.ndarray) -> np.ndarray:
    """Grey levels (h, w) as an MNIST digit (28, 28) in 0..255: white on black, its box fitted to 20x20 and
    centred by its centre of mass."""
    from PIL import Image

    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ink = 255.0 - grey if np.median(border) > 127 else grey.copy()  # a light background: dark ink on paper
    ink -= ink.min()
    if ink.max() <= 0:
        return np.zeros((28, 28), np.float32)  # an empty drawing is an empty digit
    ink *= 255.0 / ink.max()
    rows, cols = np.nonzero(ink > 0.1 * 255)
    box = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = 20.0 / max(box.shape)
    size = (max(1, round(box.shape[1] * scale)), max(1, round(box.shape[0] * scale)))
    fitted = np.asarray(Image.fromarray(box).resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    total = fitted.sum()
    ys, xs = np.indices(fitted.shape)
    cy, cx = (ys * fitted).sum() / total, (xs * fitted).sum() / total
    top = int(np.clip(round(14 - cy), 0, 28 - fitted.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - fitted.shape[1]))
    digit = np.zeros((28, 28), np.float32)
    digit[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
    return np.clip(digit, 0, 255)


def pooled(digit28: np.ndarray) -> np.ndarray:
    """A 28x28 digit pooled as the pairs' digits are (data.pool)."""
    import torch

    from workbench.paper.data import pool

    return pool(torch.from_numpy(digit28)[None])[0].numpy()


@dataclass
class Answer:
    """What a network says of one pair: P(first ≤ second), and with digit heads each side's ten probabilities."""

    p_le: float
    heads: tuple[np.ndarray, np.ndarray] | None

    NO_HEADS = "no digit heads: the basic net reads the pair as one picture"

    @property
    def verdict(self) -> str:
        return verdict_text(self.p_le)

    def sides(self) -> list[tuple[str, int, np.ndarray]]:
        """Each side's likeliest digit and its ten probabilities (none without digit heads)."""
        return [(side, int(probs.argmax()), probs) for side, probs in zip(("first", "second"), self.heads or ())]

    @staticmethod
    def side_text(side: str, best: int, probs: np.ndarray) -> str:
        return f"{side} digit: {best} ({probs[best]:.2f})"


def answer(net, first: np.ndarray, second: np.ndarray) -> Answer:
    """The network's answer for two pooled digits (14, 14) in 0..255."""
    import torch

    device = next(net.parameters()).device
    x = torch.from_numpy(np.stack([first, second])[None].astype(np.float32)).to(device)
    with torch.no_grad():
        logit, digits = net(x)
    heads = None
    if digits is not None:
        heads = tuple(torch.softmax(d[0].float(), -1).cpu().numpy() for d in digits)
    return Answer(float(torch.sigmoid(logit[0].float())), heads)
